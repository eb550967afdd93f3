"""Each input's footer is read once (manifest.read_footer) and serves the schema check,
the resume identity and the scan: the same metadata and identity as reading it the
usual ways, for small and large (over 64 KiB) footers, locally and on fsspec, and the
same one-line errors for files that are not parquet."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datahygiene import manifest
from datahygiene.errors import InputError
from datahygiene.manifest import (
    FOOTER_PROBE,
    LOCAL_FOOTER_PROBE,
    FooterReader,
    read_footer,
    resolve_manifests,
)


def _footer_identity(data: bytes) -> tuple[int, str]:
    """Size and SHA-256 of the footer bytes with the 8-byte tail, computed here from
    the format: what ``--resume`` has always recorded."""
    flen = int.from_bytes(data[-8:-4], "little")
    return len(data), "sha256:" + hashlib.sha256(data[-(flen + 8):]).hexdigest()


def _table(rows: int) -> pa.Table:
    return pa.table({"key": [f"{i:09d}" for i in range(rows)],
                     "md5": [f"{i:032x}" for i in range(rows)],
                     "n": np.arange(rows)})


@pytest.mark.parametrize("row_group_size", [1000, 1], ids=["small-footer", "large-footer"])
def test_footer_read_once_is_the_usual_footer(tmp_path: Path, row_group_size: int) -> None:
    p = tmp_path / "m.parquet"
    pq.write_table(_table(1500), p, row_group_size=row_group_size)
    f = resolve_manifests([str(p)])[0]
    got = read_footer(f)
    want = pq.ParquetFile(p).metadata
    assert got.metadata.equals(want)
    assert got.metadata.schema.to_arrow_schema().equals(pq.ParquetFile(p).schema_arrow,
                                                        check_metadata=True)
    assert (got.size, got.digest) == _footer_identity(p.read_bytes())
    large = want.serialized_size > max(FOOTER_PROBE, LOCAL_FOOTER_PROBE)
    assert large == (row_group_size == 1)  # both paths are exercised


def test_footer_on_an_fsspec_filesystem(tmp_path: Path) -> None:
    p = tmp_path / "m.parquet"
    pq.write_table(_table(300), p, row_group_size=100)
    fs = fsspec.filesystem("memory")
    fs.pipe("/footer-test/m.parquet", p.read_bytes())
    f = resolve_manifests(["memory://footer-test/m.parquet"])[0]
    got = read_footer(f)
    assert got.metadata.equals(pq.ParquetFile(p).metadata)
    assert (got.size, got.digest) == _footer_identity(p.read_bytes())


@pytest.mark.parametrize("content", [b"", b"PAR1", b"not parquet at all" * 10,
                                     b"PAR1" + b"\x00" * 40 + (30).to_bytes(4, "little") + b"PAR1",
                                     b"PAR1" + (10**6).to_bytes(4, "little") + b"PAR1"],
                         ids=["empty", "magic-only", "text", "bad-footer", "length-beyond-file"])
def test_not_parquet_is_a_one_line_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.parquet"
    p.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_footer(resolve_manifests([str(p)])[0])
    msg = str(err.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg and "parquet" in msg


# A child asking for every chunk's metadata of each footer given: pyarrow answers some
# damaged footers by ending the process, so it runs apart from the tests. An exception
# is an answer (the scan turns it into a one-line error); only the end of the process
# is not.
_READ_ALL = """
import sys, pyarrow.parquet as pq
for path in sys.argv[1:]:
    try:
        md = pq.read_metadata(path)
        md.schema.to_arrow_schema()
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            for j in range(md.num_columns):
                rg.column(j).to_dict()
    except Exception:
        pass
"""


def test_no_damaged_footer_the_check_lets_through_ends_the_process(tmp_path: Path) -> None:
    """Footers damaged at random (seeded): every one pyarrow parses is either refused by
    read_footer with a one-line error, or has all its chunks' metadata readable. Without
    the chunk check (manifest._check_chunks) some of these end the process: a codec
    parquet does not have, a type other than the schema's, a level histogram of the
    wrong length, or a footer pyarrow reads by skipping what it does not know."""
    import random
    import subprocess
    import sys

    rng = random.Random(7)
    table = pa.table({"key": [f"k{i}" for i in range(300)],
                      "md5": [None if i % 7 == 0 else f"{i:032x}" for i in range(300)],
                      "n": list(range(300)), "l": [[1, 2]] * 300,
                      "s": [{"a": i, "b": [str(i)]} for i in range(300)]})
    sources = []
    for options in ({}, {"data_page_version": "2.0"}, {"write_page_index": True},
                    {"use_dictionary": False, "write_statistics": False}):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, row_group_size=100, **options)
        sources.append(sink.getvalue().to_pybytes())
    kept, refused = [], 0
    for i in range(3000):
        data = bytearray(rng.choice(sources))
        flen = int.from_bytes(data[-8:-4], "little")
        for _ in range(rng.randint(1, 3)):
            data[len(data) - 8 - flen + rng.randrange(flen)] = rng.randrange(256)
        path = tmp_path / f"{i}.parquet"
        path.write_bytes(bytes(data))
        try:
            read_footer(resolve_manifests([str(path)])[0])
        except InputError as exc:
            assert str(exc).startswith(f"{path}: not a readable parquet file (") and "\n" not in str(exc)
            refused += 1
            path.unlink()
            continue
        kept.append(str(path))
    assert refused > 1000 and len(kept) > 300
    child = subprocess.run([sys.executable, "-c", _READ_ALL, *kept], capture_output=True, text=True,
                           check=False)
    assert child.returncode == 0, child.stderr[-2000:]


def test_footer_reader_keeps_each_inputs_footer_or_error_in_order(tmp_path: Path) -> None:
    for i in range(5):
        pq.write_table(_table(10 + i), tmp_path / f"m{i}.parquet")
    (tmp_path / "m2.parquet").write_bytes(b"not parquet")
    files = resolve_manifests([str(tmp_path)])
    got = FooterReader(files).result()
    assert [type(g).__name__ for g in got] == ["Footer", "Footer", "InputError", "Footer", "Footer"]
    assert "m2.parquet" in str(got[2])
    assert [g.metadata.num_rows for g in got if not isinstance(g, InputError)] == [10, 11, 13, 14]


def test_footer_reader_tells_how_many_footers_are_read(tmp_path: Path) -> None:
    """The command's spinner shows the count before the scan starts (minutes for tens of
    thousands of remote shards): one call per input, in input order, local or remote,
    an input whose footer fails included."""
    import fsspec

    fs = fsspec.filesystem("memory")
    for i in range(5):
        pq.write_table(_table(10 + i), tmp_path / f"m{i}.parquet")
        fs.pipe(f"/dh-told/m{i}.parquet", (tmp_path / f"m{i}.parquet").read_bytes())
    (tmp_path / "m2.parquet").write_bytes(b"not parquet")
    try:
        for spec in (str(tmp_path), "memory:///dh-told"):
            told: list[int] = []
            got = FooterReader(resolve_manifests([spec]), progress=told.append).result()
            assert told == [1, 2, 3, 4, 5] and len(got) == 5, spec
    finally:
        fs.rm("/dh-told", recursive=True)


def test_footer_reader_stops_when_the_run_fails_first(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that fails before it needs the footers (a list that does not load) must
    not wait while the reader goes on through every input."""
    for i in range(50):
        pq.write_table(_table(3), tmp_path / f"m{i:02d}.parquet")
    files = resolve_manifests([str(tmp_path)])
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow(f: object, *args: object) -> object:
        calls.append(f)
        started.set()
        release.wait(5)
        raise InputError("stopped")

    monkeypatch.setattr(manifest, "read_footer", slow)
    reader = FooterReader(files)
    assert started.wait(5)
    t0 = time.perf_counter()
    reader.cancel()
    assert time.perf_counter() - t0 < 1  # cancel does not wait for the footer being read
    release.set()
    reader._pool.shutdown(wait=True)
    assert len(calls) == 1  # and no footer is read after it


def test_footers_of_different_schemas_in_turn_are_each_checked_against_their_own(tmp_path: Path) -> None:
    """The chunk check keeps the last schema's expectations (a dataset's shards share
    one): a file of another schema must not be judged by them, nor a damaged one pass."""
    rows = 20
    text = tmp_path / "text.parquet"
    pq.write_table(_table(rows), text)
    binary = tmp_path / "binary.parquet"  # md5 as 16-byte binary: another physical type
    pq.write_table(pa.table({"key": [f"{i:09d}" for i in range(rows)],
                             "md5": pa.array([bytes(16)] * rows, pa.binary(16)),
                             "n": np.arange(rows)}), binary)
    required = tmp_path / "required.parquet"  # the same types, no nulls allowed: other levels
    schema = pa.schema([pa.field("key", pa.string(), nullable=False),
                        pa.field("md5", pa.string(), nullable=False), pa.field("n", pa.int64())])
    pq.write_table(_table(rows).cast(schema), required)
    files = {f.path: f for f in resolve_manifests([str(tmp_path)])}
    for path in (text, binary, required, text, required, binary):
        footer = read_footer(files[str(path)])
        assert footer.metadata.num_rows == rows



def test_footers_alike_but_for_a_groups_name_each_keep_their_own_schema(tmp_path: Path) -> None:
    """Consecutive footers share what their schema gives (its Arrow schema, its column
    paths) only where the schema's bytes are the same: pyarrow's ParquetSchema.equals
    compares the leaf columns, not the names of the groups above them, and a file
    written without Arrow's stored schema takes its column names from those."""
    one = pa.table({"key": ["a", None], "tags": [[1, 2], None], "n": [1, 2]})
    other = one.rename_columns(["key", "labels", "n"])  # the list column's group renamed
    for name, table in (("a", one), ("b", other), ("c", one)):
        pq.write_table(table, tmp_path / f"{name}.parquet", store_schema=False)
    files = resolve_manifests([str(tmp_path)])
    got = [read_footer(f, ["key", "n"]) for f in files]
    assert [g.schema.names for g in got] == [["key", "tags", "n"], ["key", "labels", "n"],
                                             ["key", "tags", "n"]]
    assert all(g.null_counts == {"key": 1, "n": 0} for g in got)

def test_footers_past_the_first_are_kept_as_bytes_and_parse_again_alike(tmp_path: Path) -> None:
    """Memory: a reader keeps the parsed footers of its first ``keep_parsed`` inputs
    only. The others parse again, when asked, to the same metadata, and what the scan
    asks of every input before it starts -- schema, row counts, the key's nulls -- is
    there without a parse."""
    for i in range(5):
        t = _table(10 + i)
        t = t.set_column(0, "key", pa.array([None if j < i else f"{j:09d}" for j in range(t.num_rows)]))
        pq.write_table(t, tmp_path / f"m{i}.parquet", row_group_size=4)
    pq.write_table(_table(3).replace_schema_metadata({"origin": "another writer"}), tmp_path / "m5.parquet")
    files = resolve_manifests([str(tmp_path)])
    got = FooterReader(files, ["key"], keep_parsed=2).result()
    assert all(isinstance(g, manifest.Footer) for g in got)
    footers = [g for g in got if isinstance(g, manifest.Footer)]
    assert [ft._parsed is not None for ft in footers] == [True, True, False, False, False, False]
    for f, ft in zip(files, footers, strict=True):
        usual = pq.ParquetFile(f.fs_path).metadata
        assert ft.num_rows == usual.num_rows
        assert ft.row_group_rows == tuple(usual.row_group(r).num_rows for r in range(usual.num_row_groups))
        assert ft.schema.equals(usual.schema.to_arrow_schema(), check_metadata=True)
        assert ft.metadata.equals(usual)  # parsed again where it was released
    assert [ft.null_counts["key"] for ft in footers] == [0, 1, 2, 3, 4, 0]
    assert [ft.nulls("n") for ft in footers] == [0] * 6  # not asked for when read: parsed
    # inputs written alike share one schema object; other metadata, another
    assert all(ft.schema is footers[0].schema for ft in footers[1:5])
    assert footers[5].schema is not footers[0].schema
    assert footers[5].schema.metadata == {b"origin": b"another writer"}


def test_scan_with_released_footers_writes_the_same_outputs(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks of inputs whose footers were released parse them again: the outputs are
    the same bytes as with every footer kept parsed."""
    from dhtest import core_registry

    from datahygiene.config import ScanConfig
    from datahygiene.lists.spec import ListSpec
    from datahygiene.scan import run_scan
    from datahygiene.synth import SynthSpec, write_synthetic

    truth = write_synthetic(tmp_path / "w", SynthSpec(rows=3000, files=6, list_size=200, planted=12,
                                                      malformed=3, seed=5, row_group_size=400))
    outs = []
    for keep in (1024, 0):
        monkeypatch.setattr(manifest, "PARSED_FOOTERS", keep)
        out = tmp_path / f"o{keep}"
        cfg = ScanConfig(manifests=[str(tmp_path / "w" / "manifest")],
                         lists=[ListSpec(path=truth["lists"]["md5"])], out=str(out), write_clean=True)
        res = run_scan(cfg, registry=core_registry())
        assert res.summary["rows"]["excluded"] == 12
        outs.append(out)
    for name in ("restricted/exclusions.parquet", "summary.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    cleans = sorted(p.relative_to(outs[0]) for p in (outs[0] / "clean").rglob("*.parquet"))
    assert cleans and all((outs[0] / c).read_bytes() == (outs[1] / c).read_bytes() for c in cleans)
