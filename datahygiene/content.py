"""Signals computed from image content: a batch transform that reads each row's image
and asks signal plugins (:class:`~datahygiene.signals.base.BytesHasher`) to hash it.

Where the image comes from (one per scan):

* :class:`BytesColumn` -- bytes in a manifest column: img2dataset's parquet output
  (``jpg`` binary) or a Hugging Face ``datasets`` Image struct ``{bytes, path}`` (a row
  whose bytes are null is read from its path if that is absolute or a URL, and is
  ``null`` otherwise: a relative path names a file where the dataset was made);
* :class:`PathColumn` -- local paths or fsspec URLs in a column (relative paths are
  relative to the directory the scan runs in);
* :class:`WebDataset` -- img2dataset's webdataset output: tar shards beside sidecar
  parquet files; the manifest is the sidecar parquet and each sidecar's rows are joined
  to its own shard's members by the row key (``key``), through an index of member
  offsets per shard built once in setup.

Why the work goes to processes: decoding (Pillow) releases the GIL but PDQ hashing
(``pdqhash``, Cython without ``nogil``) does not, so threads would serialise on the
hash. Each batch's images are cut into small chunks hashed by a process pool and put
back in row order, so the result does not depend on the worker count.

Fail closed: a row whose image is missing, unreadable, truncated, corrupt, not an
image, a decompression bomb... gets null in every derived column and the reason in
:func:`~datahygiene.step.reason_column`, so its check reports it ``unverified`` with
that reason. This module imports no image library itself: plugins do the decoding.
"""

from __future__ import annotations

import glob
import os
import tarfile
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.errors import ConfigError, InputError
from datahygiene.signals.base import BytesHasher, SignalType
from datahygiene.step import BatchTransform, Check, CheckOutcome, reason_column

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
DIHEDRAL = 8  # original, 3 rotations, 4 flips

# A fetch spec says where one row's image is: ("bytes", b) | ("path", str) |
# ("tar", shard, offset, size) | ("missing", reason).
Spec = tuple[Any, ...]


def content_column(signal: str, variant: int = 0) -> str:
    """Name of the column holding a signal computed from content (``variant`` > 0: the
    dihedral variant of a perceptual hash)."""
    return f"__content__{signal}" + (f"__dih{variant}" if variant else "")


# --- image sources ---------------------------------------------------------------------


class ImageSource:
    column: str

    def setup(self) -> None:
        """Build lookup state lazily (after pickling to a worker)."""

    def specs(self, batch: pa.RecordBatch | pa.Table, source_file: str | None = None) -> list[Spec]:
        raise NotImplementedError


def _as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _where(source_file: str | None) -> str:
    return f"{source_file}: " if source_file else ""


@dataclass
class BytesColumn(ImageSource):
    column: str

    def specs(self, batch: pa.RecordBatch | pa.Table, source_file: str | None = None) -> list[Spec]:
        col = _as_array(batch.column(self.column))
        paths: list[Any] = [None] * len(col)
        if pa.types.is_struct(col.type):
            names = [col.type.field(i).name for i in range(col.type.num_fields)]
            if "bytes" not in names:
                raise InputError(f"{_where(source_file)}column {self.column!r} is a struct "
                                 "without a 'bytes' field")
            if "path" in names:
                paths = pc.struct_field(col, "path").to_pylist()
            valid = col.is_valid()
            col = pc.struct_field(col, "bytes")
            if col.null_count or not pc.all(valid).as_py():
                col = pc.if_else(valid, col, pa.nulls(len(col), col.type))
        if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
            raise InputError(f"{_where(source_file)}column {self.column!r} must hold image bytes "
                             f"(binary), not {col.type}")
        # A struct without bytes is read from its path only when the path is absolute
        # or a URL. A relative one (often a bare "00001.jpg") names a file where the
        # dataset was made: read here, it was some unrelated file of that name in the
        # working directory, hashed and reported clean.
        out: list[Spec] = []
        for data, path in zip(col.to_pylist(), paths, strict=True):
            if data is not None:
                out.append(("bytes", data))
            elif path and (os.path.isabs(path) or "://" in path):
                out.append(("path", path))
            else:
                out.append(("missing", "null"))
        return out


@dataclass
class PathColumn(ImageSource):
    column: str

    def specs(self, batch: pa.RecordBatch | pa.Table, source_file: str | None = None) -> list[Spec]:
        col = _as_array(batch.column(self.column))
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            raise InputError(f"{_where(source_file)}column {self.column!r} must hold paths or URLs "
                             f"(strings), not {col.type}")
        return [("path", p) if p else ("missing", "null") for p in col.to_pylist()]


def _shard_stem(path: str) -> str:
    """A shard and its sidecar parquet share this: the real path without the suffix."""
    real = os.path.realpath(path)
    for suffix in (".tar", ".parquet"):
        if real.endswith(suffix):
            return real[: -len(suffix)]
    return real


@dataclass
class WebDataset(ImageSource):
    """Tar shards (a glob, local), each joined to its own sidecar parquet's rows by key.

    A row is looked up in its own shard only: two img2dataset runs both number their
    keys from ``000000000``, and an index over every shard let a row of one run be
    hashed with the other run's image. A key with more than one image member in its
    shard (a member appended twice, a ``.jpg`` and a ``.png``, the same name in two
    directories) is ambiguous: which image the row stands for cannot be known, so the
    row is ``unverified`` (``several-images``), never hashed with the first one found."""

    patterns: list[str]
    column: str = "key"
    _members: dict[str, dict[str, tuple[str, int, int] | None]] | None = field(default=None,
                                                                             repr=False)

    def shards(self) -> list[str]:
        found = sorted({p for pat in self.patterns for p in glob.glob(pat, recursive=True)})
        if not found:
            raise InputError(f"--webdataset {', '.join(self.patterns)}: no tar shard found")
        for shard in found:
            _refuse_compressed(shard)
        return found

    def setup(self) -> None:
        if self._members is not None:
            return
        by_shard: dict[str, dict[str, tuple[str, int, int] | None]] = {}
        for shard in self.shards():
            members: dict[str, tuple[str, int, int] | None] = {}
            try:
                with tarfile.open(shard, mode="r:") as tar:
                    for info in tar:
                        if not info.isfile():
                            continue
                        stem, _, ext = info.name.rpartition(".")
                        if ext.lower() not in IMAGE_EXTENSIONS or not stem:
                            continue
                        key = stem.rsplit("/", 1)[-1]
                        # None marks a key with several images: ambiguous
                        members[key] = None if key in members else (shard, info.offset_data,
                                                                    info.size)
            except (OSError, tarfile.TarError) as exc:
                raise InputError(f"{shard}: not a readable tar shard ({type(exc).__name__})") from None
            by_shard[_shard_stem(shard)] = members
        self._members = by_shard

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_members"] = None
        return state

    def specs(self, batch: pa.RecordBatch | pa.Table, source_file: str | None = None) -> list[Spec]:
        self.setup()
        assert self._members is not None
        if source_file is None:
            raise ValueError("a webdataset source needs the sidecar each batch was read from")
        members = self._members.get(_shard_stem(source_file))
        if members is None:
            raise InputError(f"{source_file}: no tar shard of --webdataset beside it")
        keys = pc.cast(_as_array(batch.column(self.column)), pa.string()).to_pylist()
        out: list[Spec] = []
        for k in keys:
            if k is None or k not in members:
                out.append(("missing", "not-in-shard"))
            else:
                where = members[k]
                out.append(("tar", *where) if where else ("missing", "several-images"))
        return out


_COMPRESSED = ((b"\x1f\x8b", "gzip", "gunzip"), (b"BZh", "bzip2", "bunzip2"),
               (b"\xfd7zXZ\x00", "xz", "unxz"), (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"))


def _refuse_compressed(shard: str) -> None:
    """Images are read straight from their offsets in a shard, which a compressed tar
    does not have: say so, and how to fix it, instead of 'not a readable tar shard'."""
    try:
        with open(shard, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return  # tarfile's own error names the file
    for magic, name, tool in _COMPRESSED:
        if head.startswith(magic):
            raise InputError(f"{shard}: a {name}-compressed tar shard; images are read from their "
                             f"offsets in uncompressed shards, so decompress it first ({tool})")


def shard_manifests(patterns: Sequence[str]) -> list[str]:
    """The sidecar parquet beside each tar shard (img2dataset writes ``00000.parquet``
    next to ``00000.tar``)."""
    out = []
    for shard in WebDataset(list(patterns)).shards():
        side = shard[: -len(".tar")] + ".parquet" if shard.endswith(".tar") else shard + ".parquet"
        if not os.path.exists(side):
            raise InputError(f"{shard}: no sidecar parquet {side} beside it")
        out.append(side)
    return out


# --- the work done per image (in a worker process) -------------------------------------


class Unreadable(ValueError):
    """An image that cannot be read; ``str(exc)`` is a short reason code."""


def read_spec(spec: Spec) -> bytes:
    """The image bytes a spec points at; :class:`Unreadable` with a reason code if they
    cannot be read -- whatever went wrong (a filesystem that is not installed, a URL
    that does not resolve, a NUL in a path): never another exception, whose text
    (naming the row's path) would become a reason in summary.json or stop the scan."""
    kind = spec[0]
    if kind == "bytes":
        return bytes(spec[1])
    if kind == "missing":
        raise Unreadable(spec[1])
    try:
        if kind == "tar":
            _, shard, offset, size = spec
            with open(shard, "rb") as fh:
                fh.seek(offset)
                data = fh.read(size)
            if len(data) != size:
                raise Unreadable("truncated")
            return data
        path = str(spec[1])
        if "://" in path:
            import fsspec

            with fsspec.open(path, "rb") as fh:
                return bytes(fh.read())
        with open(path, "rb") as fh:
            return fh.read()
    except Unreadable:
        raise
    except FileNotFoundError:
        raise Unreadable("not-found") from None
    except IsADirectoryError:
        raise Unreadable("not-a-file") from None
    except PermissionError:
        raise Unreadable("permission-denied") from None
    except Exception:  # any other failure to read is this row's, not the scan's
        raise Unreadable("read-error") from None


# per signal: (values, quality) where values has 1 or 8 entries; or a reason string
Result = list[tuple[list[bytes], int | None] | str]


def hash_one(spec: Spec, signals: Sequence[SignalType], dihedral: Sequence[bool]) -> Result | str:
    try:
        data = read_spec(spec)
    except Unreadable as exc:
        return str(exc) or "read-error"
    if not data:
        return "empty"
    out: Result = []
    for sig, dih in zip(signals, dihedral, strict=True):
        try:
            if dih:
                values, quality = sig.hash_bytes_dihedral(data)  # type: ignore[attr-defined]
                out.append((list(values), quality))
            else:
                value, q = sig.hash_bytes(data)  # type: ignore[attr-defined]
                out.append(([value], q))
        except ValueError as exc:
            out.append(_reason(exc))
        except Exception as exc:
            out.append(f"hash-error:{type(exc).__name__}")
    return out


def _reason(exc: ValueError) -> str:
    text = str(exc)
    # reasons are short codes; anything else (a library's message) is not shown
    return text if text and len(text) <= 40 and text.replace("-", "").isalnum() else "decode-error"


def hash_chunk(specs: list[Spec], signals: Sequence[SignalType], dihedral: Sequence[bool]
               ) -> list[Result | str]:
    return [hash_one(s, signals, dihedral) for s in specs]


# --- the transform ---------------------------------------------------------------------


@dataclass
class ContentHashes(BatchTransform):
    """Adds ``content_column(name)`` (and dihedral variants) for each signal."""

    source: ImageSource
    signals: list[SignalType]
    dihedral: bool = False
    workers: int = 0  # 0: one per core; 1: in the calling thread
    chunk: int = 8
    _pool: Executor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for s in self.signals:
            if not isinstance(s, BytesHasher):
                raise ConfigError(f"signal {s.name} cannot be computed from image bytes")

    def _dih(self, sig: SignalType) -> bool:
        return self.dihedral and hasattr(sig, "hash_bytes_dihedral")

    def variants(self, sig: SignalType) -> list[str]:
        return [content_column(sig.name, v) for v in range(DIHEDRAL if self._dih(sig) else 1)]

    @property
    def columns(self) -> list[str]:
        return [self.source.column]

    @property
    def produces(self) -> list[str]:
        out = []
        for s in self.signals:
            out += self.variants(s)
            out.append(reason_column(content_column(s.name)))
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pool"] = None
        return state

    def setup(self) -> None:
        self.source.setup()

    def _workers(self) -> int:
        return self.workers or (os.cpu_count() or 1)

    def _map(self, fn: Callable[..., Any], chunks: list[list[Spec]]) -> list[Any]:
        sigs, dih = self.signals, [self._dih(s) for s in self.signals]
        if self._workers() <= 1 or len(chunks) <= 1:
            return [fn(c, sigs, dih) for c in chunks]
        if self._pool is None:
            # spawn, not fork: the scan runs threads, and forking a threaded process is unsafe
            self._pool = ProcessPoolExecutor(self._workers(), mp_context=get_context("spawn"))
        futures = [self._pool.submit(fn, c, sigs, dih) for c in chunks]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __call__(self, batch: pa.RecordBatch | pa.Table, source_file: str | None = None
                 ) -> pa.RecordBatch | pa.Table:
        specs = self.source.specs(batch, source_file)
        n = len(specs)
        # small chunks for small batches, so every worker gets some
        size = max(1, min(self.chunk, -(-n // (4 * self._workers()))))
        chunks = [specs[i:i + size] for i in range(0, n, size)]
        results: list[Result | str] = [r for part in self._map(hash_chunk, chunks) for r in part]
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        for si, sig in enumerate(self.signals):
            k = len(self.variants(sig))
            values: list[list[bytes | None]] = [[None] * n for _ in range(k)]
            quality: list[int | None] = [None] * n
            reasons: list[str | None] = [None] * n
            for i, res in enumerate(results):
                one = res if isinstance(res, str) else res[si]
                if isinstance(one, str):
                    reasons[i] = one
                    continue
                vals, q = one
                for v in range(k):
                    values[v][i] = vals[v]
                quality[i] = q
            value_type = pa.binary(sig.width)
            with_quality = getattr(sig, "quality_struct", False)
            for v, name in enumerate(self.variants(sig)):
                arr = pa.array(values[v], type=value_type)
                if with_quality:
                    arr = pa.StructArray.from_arrays(
                        [arr, pa.array(quality, type=pa.int32())], names=["value", "quality"],
                        mask=pa.array(np.array([x is None for x in values[v]], dtype=bool)))
                table = table.append_column(name, arr)
            table = table.append_column(reason_column(content_column(sig.name)),
                                        pa.array(reasons, type=pa.string()))
        return table


@dataclass
class DihedralCheck(Check):
    """A perceptual signal checked through all eight rotations/flips of each image: one
    shared index, queried once per variant column; a row matches if any variant does
    (the distance kept is the smallest over variants)."""

    variant_columns: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [self.column, *self.variant_columns]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "dihedral": True}

    def run(self, batch: pa.RecordBatch | pa.Table) -> CheckOutcome:
        base = super().run(batch)
        parts = [base]
        for col in self.variant_columns:
            sub = Check(self.signal, col, self.list_group, self._index, self._entry_list,
                        self._list_starts, self._entry_threshold)
            parts.append(sub.run(batch))
        if not any(p.match_rows.size for p in parts[1:]):
            return base
        t = pa.table({
            "row": pa.array(np.concatenate([p.match_rows for p in parts]), pa.int64()),
            "list": pa.concat_arrays([p.match_list.cast(pa.string()) for p in parts]),
            "ref": pa.concat_arrays([p.match_ref.cast(pa.string()) for p in parts]),
            "distance": pa.array(np.concatenate([p.match_distance for p in parts]), pa.int32()),
        })
        t = t.group_by(["row", "list", "ref"], use_threads=False).aggregate([("distance", "min")])
        t = t.sort_by([("row", "ascending"), ("list", "ascending"), ("ref", "ascending")])
        return CheckOutcome(base.signal, base.invalid_rows, base.invalid_reasons,
                            t.column("row").to_numpy(), t.column("list").combine_chunks(),
                            t.column("ref").combine_chunks(),
                            t.column("distance_min").to_numpy().astype(np.int32))


@dataclass
class PackQuality(BatchTransform):
    """Packs a precomputed hash column and its quality column into one struct column
    ``{value, quality}``, the form a signal with a quality score (PDQ) reads."""

    value_column: str
    quality_column: str

    @property
    def out(self) -> str:
        return f"__quality__{self.value_column}"

    @property
    def columns(self) -> list[str]:
        return [self.value_column, self.quality_column]

    @property
    def produces(self) -> list[str]:
        return [self.out]

    def __call__(self, batch: pa.RecordBatch | pa.Table, source_file: str | None = None
                 ) -> pa.RecordBatch | pa.Table:
        value = _as_array(batch.column(self.value_column))
        quality = _as_array(batch.column(self.quality_column))
        try:
            quality = quality.cast(pa.int32())
        except pa.ArrowInvalid:
            raise InputError(f"quality column {self.quality_column!r} must hold integers") from None
        packed = pa.StructArray.from_arrays([value, quality], names=["value", "quality"])
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        return table.append_column(self.out, packed)


def attach_content(checks: list[Check], config: Any) -> tuple[list[Check], list[BatchTransform]]:
    """Rewire the plan's checks for an image source (``--image-column``,
    ``--image-path-column``, ``--webdataset``), ``--dihedral`` and quality columns.

    Signals computed from content: those named by ``compute``, else every perceptual
    (non-exact) signal that can hash bytes and was not given a column with
    ``--column`` -- exact digests are usually precomputed (img2dataset's ``md5``)."""
    transforms: list[BatchTransform] = []
    source: ImageSource | None = None
    given = [name for name, v in (("--webdataset", config.webdataset),
                                  ("--image-path-column", config.image_path_column),
                                  ("--image-column", config.image_column)) if v]
    if len(given) > 1 and not config.services:  # a service reads --image-column itself
        raise ConfigError(f"{' and '.join(given)} both name where the images are; give one "
                          "(run.json would record both, and only one would be read)")
    if config.webdataset:
        source = WebDataset(list(config.webdataset), config.key or "key")
    elif config.image_path_column:
        source = PathColumn(config.image_path_column)
    elif config.image_column:
        source = BytesColumn(config.image_column)
    by_name = {c.signal.name: c for c in checks}
    unknown = sorted(set(config.compute) - set(by_name))
    if unknown:
        raise ConfigError(f"--compute names signal(s) with no list: {', '.join(unknown)}")
    if config.compute:
        chosen = [by_name[n] for n in sorted(set(config.compute))]
    elif source is not None:
        chosen = [c for c in checks if isinstance(c.signal, BytesHasher) and not c.signal.exact
                  and c.signal.name not in config.columns]
    else:
        chosen = []
    if chosen and source is None:
        raise ConfigError("--compute needs an image source (--image-column, --image-path-column "
                          "or --webdataset)")
    if config.dihedral and not any(hasattr(c.signal, "hash_bytes_dihedral") for c in chosen):
        raise ConfigError("--dihedral needs a perceptual signal computed from images "
                          "(e.g. --list pdq=... with --image-column)")
    out: list[Check] = []
    chosen_ids = {id(c) for c in chosen}
    if chosen:
        assert source is not None
        transform = ContentHashes(source, [c.signal for c in chosen], dihedral=config.dihedral,
                                  workers=config.hash_workers)
        transforms.append(transform)
    for c in checks:
        if id(c) in chosen_ids:
            cols = transform.variants(c.signal)
            why = reason_column(cols[0])  # the transform says why a value is missing
            if len(cols) > 1:
                out.append(DihedralCheck(c.signal, cols[0], c.list_group, reasons_column=why,
                                         variant_columns=cols[1:]))
            else:
                out.append(Check(c.signal, cols[0], c.list_group, reasons_column=why))
            continue
        qcol = c.signal.options.get("quality_column")
        if qcol:
            pack = PackQuality(c.column, str(qcol))
            transforms.append(pack)
            out.append(Check(c.signal, pack.out, c.list_group))
            continue
        out.append(c)
    return out, transforms
