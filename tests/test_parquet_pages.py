"""The page reader (datahygiene/parquet_pages.py) against pyarrow's own reader.

It reads what pyarrow reads, value for value, for every encoding, page version, codec
and null pattern it claims; it refuses (``Unsupported``, so the scan reads the chunk
with pyarrow) what it does not handle and what does not add up; its hash-column
prefilter never leaves out a row the full check must see; and a scan gives the same
bytes with it as without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import core_registry, write_text_list

from datahygiene import page_kernels
from datahygiene import parquet_pages as pages
from datahygiene.config import ScanConfig
from datahygiene.errors import InputError
from datahygiene.lists.spec import ListSpec
from datahygiene.scan import EXCLUSIONS, run_scan
from datahygiene.signals.exact import SortedPrefixIndex

pytestmark = pytest.mark.usefixtures("core_only")


def _column(kind: str, n: int, nulls: float, rng: np.random.Generator) -> pa.Array:
    if kind == "hex":
        vals: list[Any] = [rng.bytes(16).hex() for _ in range(n)]
        t = pa.string()
    elif kind == "text":  # lengths 0-40: odd value starts, empty values
        vals = ["x" * int(rng.integers(0, 40)) + str(i) if i % 9 else "" for i in range(n)]
        t = pa.string()
    elif kind == "repeats":  # stays dictionary encoded
        vals = [f"k{int(rng.integers(0, 50))}" for _ in range(n)]
        t = pa.string()
    elif kind == "binary":
        vals = [rng.bytes(int(rng.integers(0, 20))) for _ in range(n)]
        t = pa.binary()
    elif kind == "fixed":
        vals = [rng.bytes(16) for _ in range(n)]
        t = pa.binary(16)
    else:
        vals = [rng.bytes(16).hex() for _ in range(n)]
        t = pa.large_string() if kind == "large" else pa.large_binary()
    if nulls:
        vals = [None if rng.random() < nulls else v for v in vals]
    return pa.array(vals, t)


def _write(path: Path, a: pa.Array, nullable: bool = True, **options: Any) -> pq.ParquetFile:
    schema = pa.schema([pa.field("c", a.type, nullable=nullable), ("o", pa.int64())])
    pq.write_table(pa.table([a, pa.array(range(len(a)))], schema=schema), path, **options)
    return pq.ParquetFile(path)


class _Keep:
    """A page filter keeping every value, or none."""

    def __init__(self, everything: bool) -> None:
        self.everything = everything

    def spans(self, buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
        return np.arange(starts.shape[0] if self.everything else 0, dtype=np.int64)

    def plain(self, buf: np.ndarray, pos: int, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        starts, lens = np.empty(count, np.int64), np.empty(count, np.int64)
        if page_kernels.plain_spans(buf, pos, buf.shape[0], count, starts, lens) != buf.shape[0]:
            return None
        keep = self.spans(buf, starts, lens)
        return keep, starts[keep]


_everything, _nothing = _Keep(True), _Keep(False)


def _check_file(path: Path, pf: pq.ParquetFile, rng: np.random.Generator) -> None:
    md = pf.metadata
    # the engine takes the Arrow schema from the footer, without building a reader
    assert md.schema.to_arrow_schema() == pf.schema_arrow
    with pa.OSFile(str(path)) as fh:
        for rg in range(md.num_row_groups):
            chunk = pages.column_chunk(md, pf.schema_arrow, rg, "c")
            want = pf.read_row_group(rg, columns=["c"]).column("c").combine_chunks()
            n = len(want)
            for size in (1, 5, n):
                rows = np.sort(rng.choice(n, size=min(size, n), replace=False)).astype(np.int64)
                got = pages.read_rows(fh, chunk, rows)
                got.validate(full=True)
                assert got.equals(want.take(pa.array(rows)))
            rows_all, values = pages.candidate_rows(fh, chunk, _everything)
            values.validate(full=True)
            assert np.array_equal(rows_all, np.arange(n)) and values.equals(want)
            rows_none, values = pages.candidate_rows(fh, chunk, _nothing)  # only the nulls remain
            assert np.array_equal(rows_none, np.flatnonzero(np.asarray(want.is_null())))
            assert values.null_count == len(values) == rows_none.shape[0]


@pytest.mark.parametrize(("kind", "nulls", "codec", "version", "dictionary"), list(itertools.product(
    ["hex", "text", "repeats", "binary", "fixed", "large", "large_binary"], [0.0, 0.2],
    ["zstd", "snappy", "none", "gzip"], ["1.0", "2.0"], [True, False])))
def test_reads_what_pyarrow_reads(tmp_path: Path, kind: str, nulls: float, codec: str, version: str,
                                  dictionary: bool) -> None:
    rng = np.random.default_rng(len(kind) * 7 + int(nulls * 10))
    a = _column(kind, 1500, nulls, rng)
    # small pages and row groups: many pages per chunk, dictionary fallback mid-chunk
    pf = _write(tmp_path / "f.parquet", a, compression=codec, data_page_version=version,
                use_dictionary=dictionary, data_page_size=700, dictionary_pagesize_limit=900,
                row_group_size=700)
    _check_file(tmp_path / "f.parquet", pf, rng)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_required_all_null_and_single_row_columns(tmp_path: Path, version: str) -> None:
    rng = np.random.default_rng(5)
    for i, (a, nullable) in enumerate([
            (_column("hex", 900, 0.0, rng), False),
            (pa.array([None] * 300, pa.string()), True),
            (pa.array(["a"], pa.string()), True),
            (pa.array([b"\x00" * 16] * 200, pa.binary(16)), False)]):
        path = tmp_path / f"f{i}.parquet"
        _check_file(path, _write(path, a, nullable, data_page_version=version, row_group_size=500),
                    rng)


def _unsupported(path: Path, column: str = "c") -> None:
    pf = pq.ParquetFile(path)
    with pytest.raises(pages.Unsupported), pa.OSFile(str(path)) as fh:
        chunk = pages.column_chunk(pf.metadata, pf.schema_arrow, 0, column)
        pages.read_rows(fh, chunk, np.array([0], np.int64))


def test_what_it_does_not_handle_is_left_to_pyarrow(tmp_path: Path) -> None:
    hexes = [hashlib.md5(str(i).encode()).hexdigest() for i in range(100)]
    cases = {
        "struct": pa.table({"c": pa.array([{"x": h} for h in hexes])}),
        "list": pa.table({"c": pa.array([[h] for h in hexes])}),
        "int": pa.table({"c": pa.array(range(100))}),
        "dictionary": pa.table({"c": pa.array(hexes).dictionary_encode()}),
    }
    for name, table in cases.items():
        pq.write_table(table, tmp_path / f"{name}.parquet")
        _unsupported(tmp_path / f"{name}.parquet")
    # a nested leaf is never taken for a top-level column of its path's name
    pq.write_table(pa.table({"s": pa.array([{"c": h} for h in hexes])}), tmp_path / "nested.parquet")
    _unsupported(tmp_path / "nested.parquet", "c")
    for encoding in ("DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY"):
        pq.write_table(pa.table({"c": hexes}), tmp_path / f"{encoding}.parquet", use_dictionary=False,
                       column_encoding={"c": encoding})
        _unsupported(tmp_path / f"{encoding}.parquet")
    pq.write_table(pa.table({"c": hexes}), tmp_path / "lz4.parquet", compression="lz4")
    _unsupported(tmp_path / "lz4.parquet")  # parquet's two LZ4 codecs are not told apart


def test_a_damaged_chunk_is_refused_not_a_crash(tmp_path: Path) -> None:
    """Flipped bytes anywhere in a chunk: the reader raises Unsupported (and the scan
    reads the chunk with pyarrow, which names the file) or returns values of the right
    count -- it never reads past a buffer or fails any other way."""
    rng = np.random.default_rng(9)
    a = _column("text", 400, 0.2, rng)
    for codec, version in itertools.product(["none", "zstd", "snappy"], ["1.0", "2.0"]):
        path = tmp_path / f"{codec}{version}.parquet"
        pf = _write(path, a, compression=codec, data_page_version=version, data_page_size=300)
        chunk = pages.column_chunk(pf.metadata, pf.schema_arrow, 0, "c")
        with pa.OSFile(str(path)) as fh:
            good = pages.read_chunk(fh, chunk)
        rows = np.arange(400, dtype=np.int64)
        for trial in range(150):
            data = good.copy()
            at = rng.integers(0, data.shape[0], size=1 + trial % 3)
            data[at] ^= rng.integers(1, 256, size=at.shape[0]).astype(np.uint8)

            class Bytes(io.BytesIO):
                def seek(self, offset: int, whence: int = 0) -> int:
                    return super().seek(0)  # the chunk's bytes stand for the file

            try:
                got = pages.read_rows(Bytes(data.tobytes()), chunk, rows)
            except pages.Unsupported:
                continue
            assert len(got) == 400
            got.validate()


def test_snappy_pages_decode_as_arrows_decoder_does() -> None:
    """Snappy pages go through cramjam, not Arrow: the same bytes for pages Arrow
    compressed (text and random bytes, empty to 1 MB), and Unsupported -- never another
    error -- for a page whose own header gives another length, or that is damaged."""
    rng = np.random.default_rng(11)
    arrow = pa.Codec("snappy")
    for size in (0, 1, 17, 4096, 65_536, 1 << 20):
        for body in (rng.integers(0, 256, size, dtype=np.uint8).tobytes(),
                     (b"0123456789abcdef" * (size // 16 + 1))[:size]):
            raw = np.frombuffer(arrow.compress(body, asbytes=True), dtype=np.uint8)
            assert pages._Decompressor("snappy")(raw, size).tobytes() == body
            with pytest.raises(pages.Unsupported):
                pages._Decompressor("snappy")(raw, size + 1)
            for _ in range(20):
                bad = raw.copy()
                at = rng.integers(0, bad.shape[0], size=3)
                bad[at] ^= rng.integers(1, 256, size=3).astype(np.uint8)
                with contextlib.suppress(pages.Unsupported):
                    assert pages._Decompressor("snappy")(bad, size).shape == (size,)


def test_short_read_is_refused(tmp_path: Path) -> None:
    pf = _write(tmp_path / "f.parquet", _column("hex", 100, 0.0, np.random.default_rng(0)))
    chunk = pages.column_chunk(pf.metadata, pf.schema_arrow, 0, "c")

    with pytest.raises(pages.Unsupported), open(tmp_path / "f.parquet", "rb") as fh:
        pages.read_rows(fh, replace(chunk, length=chunk.length + 10**6), np.array([0], np.int64))


def test_a_chunk_said_to_end_past_the_file_is_refused_before_its_buffer(tmp_path: Path) -> None:
    """A damaged footer's chunk size (here a petabyte): pyarrow names the file in a
    one-line error; the reader sized its read buffer from it first (a MemoryError)."""
    pf = _write(tmp_path / "f.parquet", _column("hex", 100, 0.0, np.random.default_rng(0)))
    chunk = replace(pages.column_chunk(pf.metadata, pf.schema_arrow, 0, "c"), length=2**50)
    fs = fsspec.filesystem("memory")
    fs.pipe("/dh-pages/f.parquet", (tmp_path / "f.parquet").read_bytes())
    for opened in (pa.OSFile(str(tmp_path / "f.parquet")), fs.open("/dh-pages/f.parquet", "rb")):
        with pytest.raises(pages.Unsupported), opened as fh:
            pages.read_rows(fh, chunk, np.array([0], np.int64))
    fs.rm("/dh-pages", recursive=True)


def test_hybrid_stops_at_the_end_of_its_runs() -> None:
    out = np.zeros(16, np.uint32)
    # an RLE run of 8 threes (width 2), then a bit-packed group of 8 ones and zeros
    runs = np.array([16, 3, 3, 0b01010101, 0], np.uint8)
    assert page_kernels.hybrid(runs, 0, runs.shape[0], 2, 16, out) == runs.shape[0]
    assert out.tolist() == [3] * 8 + [1, 1, 1, 1, 0, 0, 0, 0]
    assert page_kernels.hybrid(runs, 0, 3, 2, 16, out) == -1  # the bit-packed group cut off
    assert page_kernels.hybrid(np.array([16, 4], np.uint8), 0, 2, 2, 8, out) == -1  # 4 > width 2
    assert page_kernels.hybrid(np.array([255, 255], np.uint8), 0, 2, 1, 8, out) == -1  # varint


@pytest.mark.parametrize(("layout", "dictionary"), list(itertools.product(
    ["hex", "upper", "binary", "fixed"], [True, False])))
def test_prefilter_keeps_every_row_the_check_must_see(tmp_path: Path, layout: str,
                                                      dictionary: bool) -> None:
    rng = np.random.default_rng(17)
    listed = rng.integers(0, 256, size=(3000, 16), dtype=np.uint8)
    listed = listed[np.lexsort(listed.T[::-1])]
    index = SortedPrefixIndex(listed)
    n = 4000
    digests = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    members = rng.choice(n, 300, replace=False)
    digests[members] = listed[rng.choice(3000, 300)]
    values: list[Any] = []
    must = set(members.tolist())
    for i, d in enumerate(digests):
        raw = bytes(d)
        v: Any = raw if layout in ("binary", "fixed") else raw.hex()
        if layout == "upper":
            v = v.upper()
        if i % 97 == 0:
            v = None
        elif i % 89 == 0 and layout != "fixed":  # wrong length, padded, not hex
            v = [v[:-1], f" {v}", "g" * 32][i % 3] if isinstance(v, str) else v[:-1]
        if i % 97 == 0 or (i % 89 == 0 and layout != "fixed"):
            must.add(i)
        if i % 13 == 1:  # a value seen before: one dictionary entry for several rows
            v = values[i - 1]
            digests[i] = digests[i - 1]
            must.discard(i)
            if i - 1 in must:
                must.add(i)
        values.append(v)
    t = pa.binary(16) if layout == "fixed" else pa.binary() if layout == "binary" else pa.string()
    path = tmp_path / "f.parquet"
    pf = _write(path, pa.array(values, t), data_page_size=4096, row_group_size=n,
                use_dictionary=dictionary)
    chunk = pages.column_chunk(pf.metadata, pf.schema_arrow, 0, "c")
    hexed = t == pa.string()
    with pa.OSFile(str(path)) as fh:
        rows, got = pages.candidate_rows(fh, chunk, index.page_filter(hexed, 16))
    kept = set(rows.tolist())
    assert must <= kept
    assert len(kept) < n // 4  # the filter rules out most rows: the test means something
    assert got.equals(pa.array(values, t).take(pa.array(rows)))
    dropped = np.setdiff1d(np.arange(n), rows)
    listed_set = {bytes(r) for r in listed}
    assert not {bytes(digests[i]) for i in dropped} & listed_set


def _scan_world(base: Path) -> dict[str, Any]:
    """Inputs in every layout the reader handles and some it does not, with planted
    matches (lower and upper case), nulls, malformed values and null keys."""
    rng = np.random.default_rng(23)
    listed = [rng.bytes(16).hex() for _ in range(500)]
    files = []
    for f, (version, dictionary, codec, upper, binary) in enumerate([
            ("1.0", True, "zstd", False, False), ("2.0", False, "snappy", True, False),
            ("2.0", True, "none", False, True), ("1.0", False, "gzip", False, False)]):
        n = 3000
        md5: list[Any] = [rng.bytes(16).hex() for _ in range(n)]
        for i in rng.choice(n, 25, replace=False):
            md5[i] = listed[int(rng.integers(0, 500))]
        for i in range(0, n, 211):
            md5[i] = None
        for i in range(5, n, 307):
            md5[i] = md5[i][:-2] if md5[i] else "zz"
        if upper:
            md5 = [m.upper() if m else m for m in md5]
        col = (pa.array([bytes.fromhex(m) if m and len(m) == 32 else (m or "").encode() or None
                         for m in md5], pa.binary()) if binary else pa.array(md5, pa.string()))
        keys = [None if i % 500 == 7 else f"key-{f}-{i}" for i in range(n)]
        table = pa.table({"key": keys, "url": [f"https://example.invalid/{f}/{i}" for i in range(n)],
                          "md5": col})
        path = base / "in" / f"part-{f}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, data_page_version=version, use_dictionary=dictionary,
                       compression=codec, row_group_size=700, data_page_size=2000)
        files.append(str(path))
    return {"files": files, "list": write_text_list(base / "md5.txt", listed)}


def _scan(base: Path, world: dict[str, Any], name: str, threads: int) -> tuple[bytes, dict[str, Any]]:
    out = base / name
    cfg = ScanConfig(manifests=world["files"], lists=[ListSpec(path=str(world["list"]), signal="md5")],
                     out=str(out), threads=threads)
    run_scan(cfg, registry=core_registry())
    stub = b"".join(p.read_bytes() for p in sorted((out / "restricted").rglob("cybertipline-stub*")))
    assert b"example.invalid" in stub  # URLs came through the late read
    # the stub's time and run id are the run's own; the rest must match byte for byte
    stub = re.sub(rb'("?incidentDateTime"?[>:] ?"?)[^<"]*', rb"\1T", stub)
    stub = re.sub(rb"datahygiene run [0-9a-f]{32}", b"datahygiene run ID", stub)
    return (out / EXCLUSIONS).read_bytes() + stub, json.loads((out / "summary.json").read_text())


def test_scan_outputs_are_the_same_with_and_without_the_page_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = _scan_world(tmp_path)
    calls = {"candidates": 0, "rows": 0}
    real_candidates, real_rows = pages.candidate_rows, pages.read_rows

    def counted_candidates(*a: Any) -> Any:
        calls["candidates"] += 1
        return real_candidates(*a)

    def counted_rows(*a: Any) -> Any:
        calls["rows"] += 1
        return real_rows(*a)

    monkeypatch.setattr(pages, "candidate_rows", counted_candidates)
    monkeypatch.setattr(pages, "read_rows", counted_rows)
    monkeypatch.setenv("DATAHYGIENE_PAGE_READER", "0")
    off, off_summary = _scan(tmp_path, world, "off", 2)
    assert calls == {"candidates": 0, "rows": 0}
    monkeypatch.setenv("DATAHYGIENE_PAGE_READER", "1")
    for threads in (1, 2):
        on, on_summary = _scan(tmp_path, world, f"on{threads}", threads)
        assert on == off
        assert on_summary == off_summary
    assert calls["candidates"] > 0 and calls["rows"] > 0  # the reader did the reading
    decisions = pq.read_table(tmp_path / "on1" / EXCLUSIONS).column("decision").to_pylist()
    assert decisions.count("excluded") >= 90 and decisions.count("unverified") >= 60


# -- hand-made chunks: page headers a writer would not write ---------------------------

def _uleb(v: int) -> bytes:
    out = bytearray()
    while True:
        out.append((v & 127) | (128 if v > 127 else 0))
        v >>= 7
        if not v:
            return bytes(out)


def _struct(*fields: tuple[int, int, bytes]) -> bytes:
    """A Thrift compact struct of (field id, type, encoded value), ids ascending."""
    out, last = bytearray(), 0
    for fid, t, value in fields:
        out += bytes([(fid - last) << 4 | t]) + value
        last = fid
    return bytes(out) + b"\0"


def _i32(v: int) -> tuple[int, bytes]:
    return 5, _uleb(v << 1 ^ v >> 63)


def _page(kind: int, sub_field: int, sub: bytes, body: bytes) -> bytes:
    size = _i32(len(body))[1]
    return _struct((1, *_i32(kind)), (2, 5, size), (3, 5, size), (sub_field, 12, sub)) + body


def _chunk_of(data: bytes, rows: int) -> tuple[pages.Chunk, io.BytesIO]:
    """A chunk of these bytes (a required binary column), and a file that holds them."""

    class Bytes(io.BytesIO):
        def seek(self, offset: int, whence: int = 0) -> int:
            return super().seek(0)

    return pages.Chunk(4, len(data), None, 0, False, rows, pa.binary()), Bytes(data)


def test_a_bit_packed_run_of_absurd_length_is_cut_to_the_values_wanted() -> None:
    """A bit-packed run's group count is up to 62 bits; times 8 (values) or the bit
    width (bytes) it wrapped negative, and the kernel then read and wrote far outside
    its buffers (a segfault)."""
    for width, groups in ((8, 2**60), (32, 2**59), (3, 0x1555555555555556)):
        runs = np.array(list(_uleb(groups << 1 | 1)) + [0] * 40, np.uint8)
        out = np.ones(8, np.uint32)
        assert page_kernels.hybrid(runs, 0, runs.shape[0], width, 8, out) == runs.shape[0]
        assert not out.any()


@pytest.mark.timeout(10)
def test_a_page_header_list_longer_than_its_bytes_is_refused_at_once() -> None:
    """A Thrift list's length comes from the file: a list of 2**40 booleans (no bytes
    each) in a page header was walked element by element, for hours."""
    bools = bytes([0xF1]) + _uleb(2**40)  # 15+ elements of type 1, then the count
    header = _struct((1, *_i32(0)), (2, *_i32(4)), (3, *_i32(4)), (9, 9, bools))
    chunk, fh = _chunk_of(header + bytes(4), 1)
    with pytest.raises(pages.Unsupported):
        pages.read_rows(fh, chunk, np.array([0], np.int64))


def test_a_dictionary_page_claiming_more_values_than_bytes_is_refused() -> None:
    """A dictionary page's value count is not bounded by the row group's rows: 2**50
    of them asked numpy for petabytes (a MemoryError, not Unsupported)."""
    values = b"".join(len(v).to_bytes(4, "little") + v for v in (b"a", b"b"))
    dictionary = _page(2, 7, _struct((1, *_i32(2**50)), (2, *_i32(0))), values)
    indices = bytes([1, 2 << 1, 0])  # bit width 1, an RLE run of two zeros
    data = _page(0, 5, _struct((1, *_i32(2)), (2, *_i32(8)), (3, *_i32(3)), (4, *_i32(3))), indices)
    chunk, fh = _chunk_of(dictionary + data, 2)
    with pytest.raises(pages.Unsupported):
        pages.read_rows(fh, chunk, np.array([0, 1], np.int64))
    # the same chunk with the true count reads
    dictionary = _page(2, 7, _struct((1, *_i32(2)), (2, *_i32(0))), values)
    chunk, fh = _chunk_of(dictionary + data, 2)
    assert pages.read_rows(fh, chunk, np.array([0, 1], np.int64)).to_pylist() == [b"a", b"a"]


@pytest.mark.parametrize("indices", [bytes([2, 2 << 1, 2]), bytes([2, 2 << 1]), bytes([40, 0])],
                         ids=["past-the-dictionary", "cut-short", "bit-width"])
def test_dictionary_indices_that_do_not_fit_are_refused(indices: bytes) -> None:
    """An index past the dictionary's entries (2, of 2 entries), indices that end
    before the page's values, or a bit width over 32: the page reader leaves the
    chunk to pyarrow (which refuses it), whether it filters the values or reads
    some back."""
    values = b"".join(len(v).to_bytes(4, "little") + v for v in (b"a", b"b"))
    dictionary = _page(2, 7, _struct((1, *_i32(2)), (2, *_i32(0))), values)
    data = _page(0, 5, _struct((1, *_i32(2)), (2, *_i32(8)), (3, *_i32(3)), (4, *_i32(3))), indices)
    chunk, fh = _chunk_of(dictionary + data, 2)
    with pytest.raises(pages.Unsupported):
        pages.read_rows(fh, chunk, np.array([1], np.int64))
    for keep in (_everything, _nothing):
        with pytest.raises(pages.Unsupported):
            pages.candidate_rows(fh, chunk, keep)
    # the same chunk with an index in the dictionary reads
    fitting = _page(0, 5, _struct((1, *_i32(2)), (2, *_i32(8)), (3, *_i32(3)), (4, *_i32(3))),
                    bytes([2, 2 << 1, 1]))
    chunk, fh = _chunk_of(dictionary + fitting, 2)
    assert pages.read_rows(fh, chunk, np.array([1], np.int64)).to_pylist() == [b"b"]
    rows, got = pages.candidate_rows(fh, chunk, _everything)
    assert rows.tolist() == [0, 1] and got.to_pylist() == [b"b", b"b"]


def _with_num_values(path: Path, nth: int, value: int) -> None:
    """Rewrite the ``nth`` column chunk's num_values (a footer of 500-row chunks) to
    ``value`` < 128, keeping the footer's length: the varint stays two bytes long."""
    data = bytearray(path.read_bytes())
    # ColumnMetaData: field 4 (codec), then field 5 (num_values, i64 -> header 0x16,
    # zigzag 1000 -> e8 07), then field 6 (0x16)
    at = [m.start() + 1 for m in re.finditer(re.escape(b"\x16\xe8\x07\x16"), bytes(data))]
    data[at[nth] : at[nth] + 2] = bytes([value << 1 | 0x80, 0])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("reader", "column"), list(itertools.product("01", [0, 1])))
def test_a_chunk_counting_fewer_values_than_its_rows_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, column: int) -> None:
    """A footer whose hash (or key) column chunk counts fewer values than its row
    group has rows: pyarrow reads the chunk short without an error, and the rows it
    left out were counted as scanned and clean."""
    rng = np.random.default_rng(29)
    listed = [rng.bytes(16).hex() for _ in range(50)]
    md5 = [listed[i % 50] if i % 9 == 0 else rng.bytes(16).hex() for i in range(1000)]
    path = tmp_path / "in" / "f.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"key": [f"k{i}" for i in range(1000)], "md5": md5}), path,
                   row_group_size=500)
    _with_num_values(path, column, 0)  # row group 0's key (0) or md5 (1) chunk
    monkeypatch.setenv("DATAHYGIENE_PAGE_READER", reader)
    cfg = ScanConfig(manifests=[str(path)], out=str(tmp_path / "out"), key="key",
                     lists=[ListSpec(path=str(write_text_list(tmp_path / "l.txt", listed)),
                                     signal="md5")])
    with pytest.raises(InputError, match="row group 0 holds") as err:
        run_scan(cfg, registry=core_registry())
    assert not any(v in str(err.value) for v in [*listed, *md5])


def test_a_dictionary_no_page_uses_must_still_add_up() -> None:
    """The dictionary's entries are found only when a page needs them; a chunk whose
    pages are all PLAIN still has its dictionary checked, as pyarrow checks it."""
    values = b"".join(len(v).to_bytes(4, "little") + v for v in (b"a", b"b"))
    plain = b"".join(len(v).to_bytes(4, "little") + v for v in (b"x", b"y"))
    levels = [(3, *_i32(3)), (4, *_i32(3))]
    for entries, refused in ((2, False), (1, True)):  # 1: it holds two
        data = (_page(2, 7, _struct((1, *_i32(entries)), (2, *_i32(0))), values)
                + _page(0, 5, _struct((1, *_i32(2)), (2, *_i32(0)), *levels), plain))
        chunk, fh = _chunk_of(data, 2)
        if refused:
            with pytest.raises(pages.Unsupported):
                pages.read_rows(fh, chunk, np.array([0, 1], np.int64))
        else:
            assert pages.read_rows(fh, chunk, np.array([0, 1], np.int64)).to_pylist() == [b"x", b"y"]


def test_a_page_header_missing_a_required_field_is_refused() -> None:
    """The dictionary page's encoding and a v1 data page's level encodings are
    required fields: pyarrow refuses a header without them (a damaged byte that turns
    a field id into another), where the reader took them as PLAIN and RLE and read on
    -- the scan succeeded with the reader and failed without it."""
    values = b"".join(len(v).to_bytes(4, "little") + v for v in (b"a", b"b"))
    indices = bytes([1, 2 << 1, 0])  # bit width 1, an RLE run of two zeros
    levels = [(3, *_i32(3)), (4, *_i32(3))]
    for dict_fields, data_fields in (
            ([(1, *_i32(2)), (6, *_i32(0))], levels),  # the encoding's id damaged (2 -> 6)
            ([(1, *_i32(2)), (2, *_i32(0))], levels[1:]),
            ([(1, *_i32(2)), (2, *_i32(0))], levels[:1])):
        data = (_page(2, 7, _struct(*dict_fields), values)
                + _page(0, 5, _struct((1, *_i32(2)), (2, *_i32(8)), *data_fields), indices))
        chunk, fh = _chunk_of(data, 2)
        with pytest.raises(pages.Unsupported):
            pages.read_rows(fh, chunk, np.array([0, 1], np.int64))


def test_a_footer_naming_an_unknown_codec_is_a_one_line_error(tmp_path: Path) -> None:
    """pyarrow reads such a footer, but asking it for that chunk's codec ends the
    process (an untranslated C++ exception); the footer check refuses the file first."""
    from datahygiene.errors import InputError
    from datahygiene.manifest import read_footer, resolve_manifests

    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"md5": [hashlib.md5(b"x").hexdigest()] * 10}), path,
                   compression="zstd", write_statistics=False)
    data = bytearray(path.read_bytes())
    flen = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - flen : -8]
    assert _codecs(bytes(footer)) == {6}
    # ColumnMetaData: path_in_schema ["md5"] (field 3), then codec (field 4, i32): ZSTD
    pattern = b"\x18\x03md5\x15\x0c"
    at = bytes(footer).find(pattern) + len(pattern) - 1
    assert bytes(footer).count(pattern) == 1
    data[len(data) - 8 - flen + at] = 0x64  # codec 50, one zigzag byte like ZSTD's
    path.write_bytes(bytes(data))
    assert _codecs(bytes(data[-8 - flen : -8])) == {50}
    with pytest.raises(InputError, match="unknown compression codec"):
        read_footer(resolve_manifests([str(path)])[0])


def _codecs(footer: bytes) -> set[int]:
    return set(pages.footer_chunks(footer)[:, page_kernels.CHUNK_CODEC].tolist())


def test_footer_chunks_names_each_chunks_place_type_and_codec() -> None:
    """Three row groups, a codec per column: the footer walk finds each chunk's row
    group, place, physical type and codec, in order."""
    path = io.BytesIO()
    n = 300
    table = pa.table({"a": [f"a{i}" for i in range(n)], "b": [f"b{i}" for i in range(n)],
                      "c": list(range(n))})
    pq.write_table(table, path, row_group_size=100,
                   compression={"a": "snappy", "b": "gzip", "c": "zstd"})
    data = path.getvalue()
    flen = int.from_bytes(data[-8:-4], "little")
    chunks = pages.footer_chunks(data[-8 - flen : -8])
    k = page_kernels
    got = chunks[:, [k.CHUNK_ROW_GROUP, k.CHUNK_COLUMN, k.CHUNK_TYPE, k.CHUNK_CODEC]].tolist()
    # BYTE_ARRAY (6), BYTE_ARRAY, INT64 (2); SNAPPY (1), GZIP (2), ZSTD (6)
    assert got == [
        row for g in range(3) for row in ([g, 0, 6, 1], [g, 1, 6, 2], [g, 2, 2, 6])]
    assert pq.read_metadata(io.BytesIO(data)).num_row_groups == 3
    with pytest.raises(pages.Unsupported):
        pages.footer_chunks(data[-8 - flen : -20])  # cut short


def _plain_page(values: list[bytes]) -> np.ndarray:
    """PLAIN BYTE_ARRAY bytes: each value's 4-byte little-endian length, then its bytes
    (two leading bytes, so that values sit at even offsets as after levels)."""
    return np.frombuffer(b"\0\0" + b"".join(len(v).to_bytes(4, "little") + v for v in values),
                         np.uint8).copy()


def _walked(values: list[bytes], width: int, hexed: bool) -> tuple[list[int], list[int], list[int]]:
    """What a page's values must give, worked out in Python: each value's start, whether
    it is a well-formed digest, and its first 8 bytes as an integer."""
    starts, bad, keys, p = [], [], [], 2
    for v in values:
        p += 4
        starts.append(p)
        p += len(v)
        try:
            raw = bytes.fromhex(v.decode("ascii")) if hexed else v
            ok = len(v) == (2 * width if hexed else width) and len(raw) == width
        except (UnicodeDecodeError, ValueError):
            ok, raw = False, b""
        bad.append(int(not ok))
        keys.append(int.from_bytes(raw[:8], "big") if ok else -1)
    return starts, bad, keys


@pytest.mark.parametrize("case", ["one-length", "lengths-that-still-add-up", "not-hex", "binary",
                                  "sha256-hex", "one-value"])
def test_values_of_one_length_are_found_by_their_stride_as_by_walking(case: str) -> None:
    """Values all of one length are found where the stride puts them, each length
    checked there; lengths that differ but fill the page exactly as many values of one
    length would (31 and 33 in turn) send the kernels back to walking. Either way the
    starts, the malformed values and the keys are the walk's."""
    rng = np.random.default_rng(11)
    width, hexed = (32, True) if case == "sha256-hex" else (16, case != "binary")

    def digest() -> bytes:
        raw = rng.integers(0, 256, width, dtype=np.uint8).tobytes()
        return raw.hex().upper().encode() if hexed and rng.random() < 0.5 else (
            raw.hex().encode() if hexed else raw)

    values = [digest() for _ in range(1 if case == "one-value" else 257)]
    if case == "lengths-that-still-add-up":
        for i in range(1, 101, 2):  # the first value of the right length
            values[i], values[i + 1] = values[i][:-1], values[i + 1] + b"0"
    if case == "not-hex":
        values[7] = b"g" + values[7][1:]
        values[200] = b" " * len(values[200])
    buf = _plain_page(values)
    n, end = len(values), buf.shape[0]
    starts, bad, keys = _walked(values, width, hexed)

    # where the values lie (late reads)
    got_starts, got_lens = np.zeros(n, np.int64), np.zeros(n, np.int64)
    assert page_kernels.plain_spans(buf, 2, end, n, got_starts, got_lens) == end
    assert got_starts.tolist() == starts and got_lens.tolist() == [len(v) for v in values]

    # the candidates: with a filter that holds nothing, exactly the malformed values
    from datahygiene.kernels import HEX_PAIRS

    words = np.zeros(2, np.uint64)
    k_bad, k_keys = np.zeros(n, np.uint8), np.zeros(n, np.uint64)
    k_starts, out = np.zeros(n, np.int64), np.zeros(n, np.int64)
    kept = page_kernels.plain_digest_candidates(buf, buf.view(np.uint16), 2, end, n, hexed, width,
                                                HEX_PAIRS, words, np.uint64(63), k_bad, k_keys,
                                                k_starts, out)
    assert out[:kept].tolist() == [i for i in range(n) if bad[i]]
    assert k_starts.tolist() == starts
    assert [int(b != 0) for b in k_bad] == bad
    assert [int(k) for k, b in zip(k_keys, bad, strict=True) if not b] == [k for k in keys if k >= 0]
    # and a value running past the page is refused, whatever the path
    assert page_kernels.plain_spans(buf[:-1], 2, end - 1, n, got_starts, got_lens) == -1


@pytest.mark.parametrize("layout", ["flat", "nested-before", "one-child-struct"])
def test_a_column_chunk_is_its_own_column_whatever_else_the_file_holds(tmp_path: Path, layout: str) -> None:
    """The flat-schema shortcut (one leaf per field) and the general search find the
    same chunk; a nested column is never taken for a flat one."""
    n = 50
    cols: dict[str, pa.Array] = {"key": pa.array([f"k{i}" for i in range(n)])}
    if layout == "nested-before":  # two leaves before the wanted columns: leaves != fields
        cols["meta"] = pa.array([{"w": i, "h": i} for i in range(n)])
    if layout == "one-child-struct":  # as many leaves as fields, one of them nested
        cols["s"] = pa.array([{"md5": "x"} for _ in range(n)])
    cols["md5"] = pa.array([hashlib.md5(str(i).encode()).hexdigest() for i in range(n)])
    cols["url"] = pa.array([f"https://example.invalid/{i}" for i in range(n)])
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table(cols), path)
    pf = pq.ParquetFile(path)
    md = pf.metadata
    for name in ("key", "md5", "url"):
        chunk = pages.column_chunk(md, pf.schema_arrow, 0, name)
        j = next(j for j in range(md.num_columns) if md.schema.column(j).path == name)
        meta = md.row_group(0).column(j)
        assert chunk.length == meta.total_compressed_size
        with open(path, "rb") as fh:
            assert pages.read_rows(fh, chunk, np.arange(n)).to_pylist() == cols[name].to_pylist()
    for nested in [c for c in cols if c in ("meta", "s")]:
        with pytest.raises(pages.Unsupported):
            pages.column_chunk(md, pf.schema_arrow, 0, nested)


# -- the compiled page header parser against a plain reading of the Thrift -------------

def _thrift_value(b: bytes, p: int, t: int) -> tuple[Any, int]:
    """A reference reader of Thrift's compact protocol: integers, booleans and structs
    (as dicts by field id) kept, everything else walked over."""
    if t in (1, 2):
        return t == 1, p
    if t == 3:
        return b[p], p + 1
    if t in (4, 5, 6):
        v, p = pages._varint(b, p)
        return (v >> 1) ^ -(v & 1), p
    if t == 7:
        return None, p + 8
    if t == 8:
        n, p = pages._varint(b, p)
        return None, p + n
    if t in (9, 10):
        n, et = b[p] >> 4, b[p] & 15
        p += 1
        if n == 15:
            n, p = pages._varint(b, p)
        for _ in range(n):
            p = p + 1 if et in (1, 2) else _thrift_value(b, p, et)[1]
        return None, p
    assert t == 12
    out: dict[int, Any] = {}
    fid = 0
    while b[p]:
        h = b[p]
        p += 1
        fid = fid + (h >> 4) if h >> 4 else (lambda v: (v >> 1) ^ -(v & 1))(pages._varint(b, p)[0])
        if not h >> 4:
            p = pages._varint(b, p)[1]
        out[fid], p = _thrift_value(b, p, h & 15)
    return out, p + 1


def _fields_by_id(fields: np.ndarray) -> dict[int, Any]:
    """page_header's fields as a dict by Thrift field id, the nested headers as dicts."""
    k = page_kernels
    values = [None if v == k.PAGE_ABSENT else v for v in fields.tolist()]
    out: dict[int, Any] = {f + 1: values[k.PAGE_TYPE + f] for f in range(3)}
    for fid, has, first, count in ((5, k.HAS_DATA, k.DATA_VALUES, 4), (7, k.HAS_DICT, k.DICT_VALUES, 2),
                                   (8, k.HAS_V2, k.V2_VALUES, 7)):
        if values[has] == 1:
            out[fid] = {f + 1: values[first + f] for f in range(count)}
    if 8 in out and out[8][7] is not None:
        out[8][7] = bool(out[8][7])
    return {fid: ({f: v for f, v in x.items() if v is not None} if isinstance(x, dict) else x)
            for fid, x in out.items() if x is not None}


def _wanted_fields(h: dict[int, Any]) -> dict[int, Any]:
    out = {k: h[k] for k in (1, 2, 3) if k in h}
    for k, fields in ((5, 4), (7, 2), (8, 7)):
        if isinstance(h.get(k), dict):
            out[k] = {f: v for f, v in h[k].items() if f <= fields}
    return out


@pytest.mark.parametrize("options", [
    {}, {"data_page_version": "2.0"}, {"use_dictionary": False, "compression": "snappy"},
    {"write_page_checksum": True, "write_statistics": True, "write_page_index": True},
    {"data_page_version": "2.0", "use_dictionary": False, "write_page_checksum": True},
], ids=["default", "v2", "plain-snappy", "checksums-statistics", "v2-plain-checksums"])
def test_page_headers_parse_as_a_plain_thrift_reading_does(tmp_path: Path, options: dict[str, Any]) -> None:
    """Every page header of files written with statistics, checksums, v1 and v2 data
    pages, with and without dictionaries: the kernel's fields are the reference's."""
    hexes = [hashlib.md5(str(i % 700).encode()).hexdigest() if i % 5 else None for i in range(5000)]
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"c": hexes}), path, data_page_size=4096, **options)
    pf = pq.ParquetFile(path)
    chunk = pages.column_chunk(pf.metadata, pf.schema_arrow, 0, "c")
    with open(path, "rb") as fh:
        data = pages.read_chunk(fh, chunk)
    raw = data.tobytes()
    fields = np.empty(page_kernels.PAGE_FIELDS, np.int64)
    p, seen = 0, 0
    while p < len(raw):
        expected, q = _thrift_value(raw, p, 12)
        assert page_kernels.page_header(data, p, fields) == q
        assert _fields_by_id(fields) == _wanted_fields(expected)
        p = q + expected[3]
        seen += 1
    assert seen >= 2


def test_a_damaged_page_header_is_refused_or_read_within_its_bytes() -> None:
    """Random damage to real page headers: the kernel returns -1 or a position inside
    the buffer, never reads past it (each header is cut to its own bytes first)."""
    rng = np.random.default_rng(5)
    buf = io.BytesIO()
    pq.write_table(pa.table({"c": [f"{i:032x}" for i in range(3000)]}), buf, data_page_size=2048,
                   write_page_checksum=True)
    pf = pq.ParquetFile(io.BytesIO(buf.getvalue()))
    chunk = pages.column_chunk(pf.metadata, pf.schema_arrow, 0, "c")
    data = pages.read_chunk(io.BytesIO(buf.getvalue()), chunk)
    fields = np.empty(page_kernels.PAGE_FIELDS, np.int64)
    header_end = page_kernels.page_header(data, 0, fields)
    assert header_end > 0
    header = data[:header_end]
    for _ in range(3000):
        damaged = header.copy()
        for at in rng.integers(0, header_end, int(rng.integers(1, 4))):
            damaged[at] = rng.integers(0, 256)
        cut = damaged[: int(rng.integers(1, header_end + 1))]
        end = page_kernels.page_header(cut, 0, fields)
        assert end == -1 or 0 < end <= cut.shape[0]
