"""The local list store: versioned, fingerprinted, owner-only, encrypted snapshots.

Layout (every directory 0700, every file 0600)::

    STORE/
      store.toml              key = { env = "NAME" } or { file = "PATH" }  (a reference, never a key)
      keycheck.bin            a sealed constant: a wrong key fails here, at once
      lists/NAME/
        index.json            what each snapshot is: version, time, counts, fingerprint (no values)
        snapshot-000001.dhs   AES-GCM sealed parquet of the entries
        snapshot-000001.index.dhs  sealed scan index: the entries as a scan loads them
        state.dhs             sealed sync state (the checkpoint of the last completed window)

Why snapshots and not one mutable file: a scan names the exact snapshot it used
(``run.json`` records ``store:NAME@N`` and its fingerprint), so an auditor can ask for
that snapshot later, and a sync that dies half way can never leave a list that is
part old and part new. A new snapshot is written to a temporary file, flushed and
renamed into place, and only then added to ``index.json`` (itself replaced
atomically): until that last rename the previous snapshot is what everyone sees.

Entries are kept as a table ``(entry_id, signal, value, category, kind, member)``: one row per
fingerprint of a partner entry, so an update or a tombstone for an entry replaces or
removes all its fingerprints together. Values of signal types this installation
knows are stored canonically (lower-case hex); unknown types are kept as open
strings so that a later plugin can use them without a re-sync.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datahygiene.config import resolve_secret
from datahygiene.errors import ConfigError, ListError
from datahygiene.store.crypto import parse_key, seal, unseal, unseal_array

STORE_ENV = "DATAHYGIENE_STORE"
DEFAULT_KEY_ENV = "DATAHYGIENE_STORE_KEY"
KEYCHECK_PLAINTEXT = b"datahygiene list store key check v1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
FINGERPRINT_DOMAIN = b"datahygiene-store-snapshot-v1\0"
ENTRY_COLUMNS = ("entry_id", "signal", "value", "category", "kind", "member")
ENTRY_SCHEMA = pa.schema([(c, pa.string()) for c in ENTRY_COLUMNS])
META_KEY = b"datahygiene.snapshot"
SCAN_INDEX_PURPOSE = "scan-index"


def default_store_root() -> Path:
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "datahygiene" / "store"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError(f"list name {name!r}: use letters, digits, '.', '_' or '-' (at most 100)")
    return name


def split_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` as a scan names a stored list."""
    name, sep, version = ref.partition("@")
    check_name(name)
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ConfigError(f"store:{ref}: the version after '@' must be a snapshot number (1, 2, ...)")
    return name, int(version)


def empty_entries() -> pa.Table:
    return ENTRY_SCHEMA.empty_table()


def canonical_entries(table: pa.Table) -> pa.Table:
    """Entries in their one canonical order, exact duplicates dropped.

    The order is total over all columns, so after sorting, exact duplicates are
    neighbours and dropping every row equal to the one before it leaves exactly the
    distinct rows, in order (cheaper than grouping first: 5M entries took 2.9 s more)."""
    table = table.select(list(ENTRY_COLUMNS)).cast(ENTRY_SCHEMA)
    if table.num_rows == 0:
        return empty_entries()
    order = _canonical_order(table)
    table = (table if order is None else table.take(order)).combine_chunks()
    if order is None:  # ids strictly increasing: every row differs from the one before
        return table
    same = np.ones(table.num_rows - 1, dtype=bool)
    for c in ENTRY_COLUMNS:
        same &= _same_as_previous(table.column(c).combine_chunks())
    if not same.any():
        return table
    return table.filter(pa.array(np.concatenate(([True], ~same))))


def _canonical_order(table: pa.Table) -> pa.Array | None:
    """The row order of :func:`canonical_entries`: ascending on every column in turn
    (nulls last), as ``table.sort_by`` gives it; None when the rows are in it already
    with no two ids the same (as :func:`datahygiene.store.source.hashlists_to_entries`
    gives a list's entries numbered by line).

    Otherwise sorted on ``entry_id`` alone first, which decides the order wherever ids
    differ; only the rows of ids that occur more than once (an entry with several
    fingerprints, a duplicate line) are then sorted on all the columns, and put back
    in the places their ids took."""
    ids = table.column("entry_id").combine_chunks()
    if ids.null_count == 0 and (len(ids) < 2 or pc.all(pc.less(ids.slice(0, len(ids) - 1),
                                                               ids.slice(1))).as_py()):
        return None
    order = pc.sort_indices(ids)
    tie = _same_as_previous(ids.take(order))
    if not tie.any():
        return order
    grouped = np.zeros(table.num_rows, dtype=bool)  # rows whose id a neighbour shares
    grouped[1:] |= tie
    grouped[:-1] |= tie
    at = np.flatnonzero(grouped)
    rows = order.to_numpy()[at]
    within = pc.sort_indices(table.take(pa.array(rows)),
                             sort_keys=[(c, "ascending") for c in ENTRY_COLUMNS]).to_numpy()
    out = order.to_numpy().copy()
    out[at] = rows[within]  # each id's rows stay in the block its id sorted to
    return pa.array(out)


def _same_as_previous(col: pa.Array) -> np.ndarray:
    """Per row after the first: whether it equals the row before it (two nulls are
    the same; a null and a value are not)."""
    a, b = col.slice(1), col.slice(0, len(col) - 1)
    equal = pc.fill_null(pc.equal(a, b), False)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return np.asarray(pc.or_(equal, both_null).to_numpy(zero_copy_only=False), dtype=bool)


def distinct_sorted(col: pa.Array | pa.ChunkedArray) -> int:
    """How many distinct values a sorted column holds (nulls count as one value)."""
    if len(col) == 0:
        return 0
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return int(len(col) - np.count_nonzero(_same_as_previous(col)))


def _column_digest(h: Any, col: pa.Array) -> None:
    """Feed ``h`` a column's validity (one byte per row), lengths (uint32 per row, 0
    for a null) and the bytes of its values, in order."""
    n = len(col)
    if pa.types.is_string(col.type) and col.null_count in (0, n):
        # the usual columns, read from Arrow's buffers without copies: every value
        # present (ids, signals, values) or none (an unused optional column)
        if col.null_count == n:
            h.update(np.zeros(n, np.uint8).data)
            h.update(np.zeros(n, "<u4").data)
            return
        offs32 = np.frombuffer(col.buffers()[1], dtype=np.int32)[col.offset: col.offset + n + 1]
        h.update(np.ones(n, np.uint8).data)
        h.update(np.diff(offs32).astype("<u4").data)
        data = col.buffers()[2]
        if n and data is not None:
            h.update(memoryview(data)[int(offs32[0]): int(offs32[-1])])
        return
    col = col.cast(pa.large_string())
    valid = np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=np.uint8)
    filled = pc.fill_null(col, "")
    lens = np.asarray(pc.binary_length(filled).to_numpy(zero_copy_only=False), dtype="<u4")
    h.update(valid.tobytes())
    h.update(lens.tobytes())
    if len(filled):
        offs = np.frombuffer(filled.buffers()[1], dtype=np.int64)[
            filled.offset: filled.offset + len(filled) + 1]
        data = filled.buffers()[2]
        if data is not None:
            h.update(memoryview(data)[int(offs[0]): int(offs[-1])])


def fingerprint_entries(table: pa.Table) -> str:
    """SHA-256 over the canonical entries, column by column (lengths, then bytes)."""
    return _digest_in_order(canonical_entries(table))


def _digest_in_order(table: pa.Table) -> str:
    """The fingerprint's digest over ``table`` in the order it is in: the fingerprint
    itself when ``table`` is canonical (as every snapshot is written)."""
    h = hashlib.sha256(FINGERPRINT_DOMAIN)
    h.update(np.uint64(table.num_rows).tobytes())
    for c in ENTRY_COLUMNS:
        h.update(c.encode() + b"\0")
        _column_digest(h, table.column(c).combine_chunks())
    return "sha256:" + h.hexdigest()


@dataclass
class Snapshot:
    name: str
    version: int
    info: dict[str, Any]  # the index.json record
    meta: dict[str, Any]  # sealed metadata (origin, checkpoint at snapshot time)
    entries: pa.Table = field(repr=False)  # the list's contents: never in a repr

    @property
    def fingerprint(self) -> str:
        return str(self.info["fingerprint"])


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, owner-only, flushed to disk."""
    tmp = path.parent / f".tmp-{uuid.uuid4().hex[:12]}-{path.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


class ListStore:
    """An opened store: its root and its key (checked). See the module docstring."""

    def __init__(self, root: Path, key: bytes) -> None:
        self.root = root
        self._key = key
        self._held: set[str] = set()  # lists whose write lock this process holds

    def __repr__(self) -> str:  # never show the key
        return f"ListStore({str(self.root)!r})"

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a ListStore holds a key and is not pickled; open it where it is used")

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None, create: bool = False,
             key_ref: dict[str, str] | None = None) -> ListStore:
        """Open (or with ``create`` make) a store. ``key_ref`` is only used on creation."""
        path = Path(root) if root is not None else default_store_root()
        conf = path / "store.toml"
        if not conf.is_file():
            if not create:
                raise ConfigError(f"{path}: no list store here (create one with `datahygiene lists "
                                  "import ... --store DIR`, or set DATAHYGIENE_STORE)")
            return cls._create(path, key_ref or {"env": DEFAULT_KEY_ENV})
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(f"{path}: list store is accessible to other users (mode {mode:o}); "
                              f"run chmod 700 {path}")
        try:
            data = tomllib.loads(conf.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{conf}: cannot read store config ({type(exc).__name__})") from None
        ref = data.get("key")
        key = parse_key(resolve_secret(_relative_ref(ref, path), f"{conf}: key"), f"{conf}: key")
        store = cls(path, key)
        try:
            blob = (path / "keycheck.bin").read_bytes()
        except OSError:
            raise ListError(f"{path}/keycheck.bin: missing; the store is damaged") from None
        try:
            ok = unseal(key, blob, "keycheck", "", 0, str(path)) == KEYCHECK_PLAINTEXT
        except ListError:
            ok = False
        if not ok:
            raise ListError(f"{path}: wrong store key (the key named in store.toml does not open "
                            "this store)")
        return store

    @classmethod
    def _create(cls, path: Path, key_ref: dict[str, str]) -> ListStore:
        if set(key_ref) not in ({"env"}, {"file"}):
            raise ConfigError("the store key is given as { env = \"NAME\" } or { file = \"PATH\" }")
        key = parse_key(resolve_secret(_relative_ref(key_ref, path), "store key"), "store key")
        _mkdir_private(path)
        _mkdir_private(path / "lists")
        (kind, value), = key_ref.items()
        text = ("# datahygiene list store. The key is named here by reference, never written here.\n"
                f"key = {{ {kind} = {json.dumps(value)} }}\n")
        _write_private(path / "store.toml", text.encode())
        _write_private(path / "keycheck.bin", seal(key, KEYCHECK_PLAINTEXT, "keycheck", "", 0))
        return cls(path, key)

    # -- index ---------------------------------------------------------------------------
    def list_dir(self, name: str) -> Path:
        return self.root / "lists" / check_name(name)

    def names(self) -> list[str]:
        d = self.root / "lists"
        return sorted(p.name for p in d.iterdir() if (p / "index.json").is_file()) if d.is_dir() else []

    def index(self, name: str) -> dict[str, Any]:
        p = self.list_dir(name) / "index.json"
        if not p.is_file():
            return {"name": name, "snapshots": []}
        try:
            data: dict[str, Any] = json.loads(p.read_text())
        except (OSError, ValueError):
            raise ListError(f"{p}: cannot read the store index") from None
        return data

    def _write_index(self, name: str, data: dict[str, Any]) -> None:
        d = self.list_dir(name)
        _mkdir_private(d)
        _write_private(d / "index.json", (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def latest_version(self, name: str) -> int | None:
        snaps = self.index(name)["snapshots"]
        return int(snaps[-1]["version"]) if snaps else None

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[None]:
        """Hold the list's write lock (``flock`` on its directory; nothing is left behind)
        for a read-modify-write of its index: two imports or syncs at once each read the
        index, and the one that wrote last dropped the other's snapshot record (reported
        as stored, then missing), or both numbered theirs the same. A second writer is
        refused at once. Re-entrant within this process."""
        if name in self._held:
            yield
            return
        d = self.list_dir(name)
        _mkdir_private(d)
        fd = os.open(d, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"{name}: another import or sync of this stored list is running; "
                                  "wait for it to finish") from None
            except OSError:
                pass  # a filesystem without locks: unlocked, as before
            self._held.add(name)
            try:
                yield
            finally:
                self._held.discard(name)
        finally:
            os.close(fd)

    def set_sync_config(self, name: str, source: str, config: dict[str, Any]) -> None:
        _refuse_inline_secrets(config, f"sync config for {name}")
        with self.writing(name):
            idx = self.index(name)
            idx["sync"] = {"source": source, "config": config}
            self._write_index(name, idx)

    # -- snapshots -----------------------------------------------------------------------
    def write_snapshot(self, name: str, entries: pa.Table, meta: dict[str, Any],
                       only_if_changed: bool = True,
                       scan_index: Callable[[Snapshot], bytes] | None = None,
                       ) -> tuple[dict[str, Any], bool]:
        """Store a new snapshot; returns (its index record, whether it is new).

        With ``only_if_changed`` a snapshot whose fingerprint equals the latest one is
        not written again (the latest record is returned). ``scan_index`` derives, from
        the snapshot, the bytes of its scan index (datahygiene/store/source.py): sealed
        beside it and written before the snapshot becomes visible, so a visible
        snapshot that has one always has it complete. Under the list's write lock."""
        with self.writing(name):
            return self._write_snapshot(name, entries, meta, only_if_changed, scan_index)

    def _write_snapshot(self, name: str, entries: pa.Table, meta: dict[str, Any],
                        only_if_changed: bool, scan_index: Callable[[Snapshot], bytes] | None
                        ) -> tuple[dict[str, Any], bool]:
        entries = canonical_entries(entries)
        fp = _digest_in_order(entries)
        idx = self.index(name)
        snaps: list[dict[str, Any]] = idx["snapshots"]
        if only_if_changed and snaps and snaps[-1]["fingerprint"] == fp:
            if scan_index is not None and not snaps[-1].get("scan_index"):
                # a snapshot from before scan indexes: unchanged, but it gains one now
                latest = snaps[-1]
                self._write_scan_index(name, Snapshot(name, int(latest["version"]), latest,
                                                      self.read_snapshot(name).meta, entries),
                                       scan_index)
                self._write_index(name, idx)
            return snaps[-1], False
        d = self.list_dir(name)
        _mkdir_private(d)
        on_disk = [int(m.group(1)) for p in d.glob("snapshot-*.dhs")
                   if (m := re.match(r"snapshot-(\d+)\.dhs$", p.name))]
        version = max([0, *on_disk, *(int(s["version"]) for s in snaps)]) + 1
        created = datetime.now(UTC).isoformat(timespec="seconds")
        full_meta = {**meta, "name": name, "version": version, "created_at": created}
        schema = entries.schema.with_metadata({META_KEY: json.dumps(full_meta, sort_keys=True).encode()})
        buf = io.BytesIO()
        pq.write_table(entries.cast(schema), buf, compression="zstd")
        blob = seal(self._key, buf.getvalue(), "snapshot", name, version)
        fname = f"snapshot-{version:06d}.dhs"
        _write_private(d / fname, blob)
        del buf, blob
        signals = entries.group_by("signal").aggregate([("signal", "count")]).to_pylist()
        record = {
            "version": version,
            "created_at": created,
            "file": fname,
            "entries": distinct_sorted(entries.column("entry_id")),  # sorted on it first
            "fingerprints": entries.num_rows,
            "signals": {r["signal"]: int(r["signal_count"])
                        for r in sorted(signals, key=lambda r: str(r["signal"]))},
            "fingerprint": fp,
            "origin": {k: v for k, v in meta.items() if k in ("source", "partner", "upstream_name",
                                                             "upstream_version", "retrieved_at")},
        }
        if scan_index is not None:
            self._write_scan_index(name, Snapshot(name, version, record, full_meta, entries), scan_index)
        idx["snapshots"] = [*snaps, record]
        self._write_index(name, idx)  # the snapshot becomes visible only here
        return record, True

    def _write_scan_index(self, name: str, snap: Snapshot, scan_index: Callable[[Snapshot], bytes]
                          ) -> None:
        """Seal the scan index of ``snap`` beside it and name it in ``snap.info`` (its
        index record, which the caller then writes)."""
        payload = scan_index(snap)
        index_name = f"snapshot-{snap.version:06d}.index.dhs"
        _write_private(self.list_dir(name) / index_name,
                       seal(self._key, payload, SCAN_INDEX_PURPOSE, name, snap.version))
        snap.info["scan_index"] = index_name

    def record(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The index record of snapshot ``version`` (None: the latest)."""
        snaps = self.index(name)["snapshots"]
        if not snaps:
            raise ListError(f"{self.root}: no stored list named {name!r} (stored: "
                            f"{', '.join(self.names()) or 'none'})")
        if version is None:
            return dict(snaps[-1])
        found = [s for s in snaps if int(s["version"]) == version]
        if not found:
            have = ", ".join(str(s["version"]) for s in snaps)
            raise ListError(f"{self.root}: stored list {name} has no snapshot {version} (has: {have})")
        return dict(found[0])

    def read_scan_index(self, name: str, version: int | None = None
                        ) -> tuple[dict[str, Any], np.ndarray] | None:
        """(the snapshot's index record, its scan index's bytes as a writable uint8
        array); None when the snapshot has none (written before scan indexes existed)."""
        rec = self.record(name, version)
        if not rec.get("scan_index"):
            return None
        path = self.list_dir(name) / rec["scan_index"]
        try:
            blob = path.read_bytes()
        except OSError:
            raise ListError(f"{path}: scan index missing or unreadable") from None
        return rec, unseal_array(self._key, blob, SCAN_INDEX_PURPOSE, name, int(rec["version"]), str(path))

    def read_snapshot(self, name: str, version: int | None = None) -> Snapshot:
        rec = self.record(name, version)
        path = self.list_dir(name) / rec["file"]
        try:
            blob = path.read_bytes()
        except OSError:
            raise ListError(f"{path}: snapshot file missing or unreadable") from None
        plain = unseal(self._key, blob, "snapshot", name, int(rec["version"]), str(path))
        table = pq.read_table(io.BytesIO(plain))
        meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
        entries = table.replace_schema_metadata(None).cast(ENTRY_SCHEMA)
        # Snapshots are written in canonical order, so the digest of the rows as stored is
        # the fingerprint; canonicalising again (seconds for millions of entries) is only
        # needed for a file whose rows are in another order.
        if (_digest_in_order(entries) != rec["fingerprint"]
                and fingerprint_entries(entries) != rec["fingerprint"]):
            raise ListError(f"{path}: snapshot content does not match its recorded fingerprint")
        return Snapshot(name, int(rec["version"]), rec, meta, entries)

    # -- sync state ----------------------------------------------------------------------
    def read_state(self, name: str) -> dict[str, Any] | None:
        path = self.list_dir(name) / "state.dhs"
        if not path.is_file():
            return None
        plain = unseal(self._key, path.read_bytes(), "state", name, 0, str(path))
        state: dict[str, Any] = json.loads(plain)
        return state

    def write_state(self, name: str, state: dict[str, Any]) -> None:
        d = self.list_dir(name)
        _mkdir_private(d)
        _write_private(d / "state.dhs", seal(self._key, json.dumps(state, sort_keys=True).encode(),
                                             "state", name, 0))


_SECRET_KEY_RE = re.compile(r"pass|secret|token|api_?key|subscription|credential", re.I)


def _refuse_inline_secrets(config: dict[str, Any], what: str) -> None:
    for k, v in config.items():
        if isinstance(v, dict):
            if set(v) in ({"env"}, {"file"}):
                continue
            _refuse_inline_secrets(v, what)
        elif _SECRET_KEY_RE.search(k):
            raise ConfigError(f"{what}: {k} must be a reference ({{ env = \"NAME\" }} or "
                              "{ file = \"PATH\" }), never the secret itself")


def _relative_ref(ref: Any, root: Path) -> Any:
    """Key files named relative to the store are relative to its directory. A key file
    others can read is refused, as a store directory others can read is: it would undo
    the encryption at rest."""
    if isinstance(ref, dict) and set(ref) == {"file"}:
        path = Path(str(ref["file"]))
        if not path.is_absolute():
            path = root / path
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0  # missing: resolve_secret says so
        if mode & 0o077:
            raise ConfigError(f"{path}: store key file is accessible to other users (mode {mode:o}); "
                              f"run chmod 600 {path}")
        return {"file": str(path)}
    return ref
