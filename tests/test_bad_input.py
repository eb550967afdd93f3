"""Bad input through the CLI: a one-line error naming the file, column or line at
fault, never a value, a documented exit code, and no output that looks complete.

Exit codes (datahygiene/errors.py, docs/curator.md#exit-codes): 2 config, 3 input,
4 list, 5 plugin, 6 output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import hexes, rand_bytes, write_manifest, write_text_list

pytestmark = pytest.mark.usefixtures("core_only")

KNOWN = ("md5", "sha1", "sha256", "url-md5", "url-sha1", "url-sha256")


def fails(cli, code: int, *args: Any, secrets: list[str] = ()) -> str:  # type: ignore[assignment]
    """Run, expect exit ``code`` and exactly one error line; return that line."""
    res = cli(*args, ok=False)
    assert res.exit_code == code, f"exit {res.exit_code}, want {code}:\n{res.output}"
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"want one error line, got:\n{res.stderr}"
    assert lines[0].startswith("datahygiene: error: ")
    for s in secrets:
        assert s not in res.output, "an error quoted a value"
    return lines[0]


def incomplete(out: Path) -> bool:
    return not (out / "run.json").exists() and not (out / "summary.json").exists() and \
        not (out / "restricted" / "exclusions.parquet").exists()


@pytest.fixture
def setup(small_manifest: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {**small_manifest, "out": tmp_path / "out",
            "secrets": small_manifest["list_values"] + small_manifest["md5"]}


def scan_args(s: dict[str, Any], manifest: Any = None, lst: str | None = None, *extra: Any) -> list[Any]:
    return ["scan", "--manifest", manifest if manifest is not None else s["path"],
            "--list", lst or f"md5={s['list']}", "--out", s["out"], "-q", *extra]


def test_missing_manifest(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    line = fails(cli, 3, *scan_args(setup, missing), secrets=setup["secrets"])
    assert str(missing) in line and "not found" in line
    assert not setup["out"].exists()
    fails(cli, 3, *scan_args(setup, tmp_path / "nothing-*.parquet"))
    empty_dir = tmp_path / "emptydir"
    empty_dir.mkdir()
    assert "no .parquet files" in fails(cli, 3, *scan_args(setup, empty_dir))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_manifest(cli, setup: dict[str, Any]) -> None:
    os.chmod(setup["path"], 0)
    try:
        line = fails(cli, 3, *scan_args(setup), secrets=setup["secrets"])
    finally:
        os.chmod(setup["path"], 0o644)
    assert str(setup["path"]) in line
    assert incomplete(setup["out"])


def test_not_parquet(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    p = tmp_path / "fake.parquet"
    p.write_text("key,md5\nk1,0123\n")
    line = fails(cli, 3, *scan_args(setup, p), secrets=setup["secrets"])
    assert str(p) in line and "not a readable parquet file" in line
    assert incomplete(setup["out"])


def test_truncated_parquet(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    data = setup["path"].read_bytes()
    p = tmp_path / "trunc.parquet"
    p.write_bytes(data[: len(data) // 2])
    line = fails(cli, 3, *scan_args(setup, p), secrets=setup["secrets"])
    assert str(p) in line
    assert incomplete(setup["out"])


def test_a_chunk_whose_type_contradicts_the_schema(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    """pyarrow parses such a footer, and asking it for that chunk's metadata ends the
    process (an untranslated C++ exception): the footer check refuses the file first."""
    p = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"key": ["a", "b"], "md5": hexes(rand_bytes(2, 16, seed=1))}), p)
    data = bytearray(p.read_bytes())
    flen = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - flen
    # each chunk's ColumnMetaData opens with its type (field 1, i32): BYTE_ARRAY, zigzag
    # 12, then its encodings (field 2, a list); the second is md5's
    first = bytes(data[start:]).find(b"\x15\x0c\x19")
    at = bytes(data[start:]).find(b"\x15\x0c\x19", first + 1)
    assert first >= 0 and at > first
    data[start + at + 1] = 0x02  # INT32
    p.write_bytes(bytes(data))
    line = fails(cli, 3, *scan_args(setup, p), secrets=setup["secrets"])
    assert line.endswith(f"{p}: not a readable parquet file (a column chunk's type contradicts the schema)")
    assert incomplete(setup["out"])


def test_corrupt_pages_with_a_readable_footer(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    n = 3000
    t = pa.table({"key": [f"{i}" for i in range(n)], "md5": hexes(rand_bytes(n, 16, seed=5))})
    good = tmp_path / "good.parquet"
    pq.write_table(t, good, row_group_size=500, compression="zstd")
    # overwrite the md5 column chunk of row group 2 (page headers included) with noise
    chunk = pq.ParquetFile(good).metadata.row_group(2).column(1)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(good.read_bytes())
    data[start: start + chunk.total_compressed_size] = bytes(
        rand_bytes(1, chunk.total_compressed_size, seed=6)[0])
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(bytes(data))
    line = fails(cli, 3, *scan_args(setup, bad), secrets=setup["secrets"])
    assert str(bad) in line and "row group 2" in line
    assert incomplete(setup["out"])


def test_missing_key_column(cli, setup: dict[str, Any]) -> None:
    line = fails(cli, 3, *scan_args(setup, None, None, "--key", "image_id"), secrets=setup["secrets"])
    assert str(setup["path"]) in line and "'image_id'" in line and "row key" in line
    assert not setup["out"].exists()


@pytest.mark.parametrize("kind", ["list", "fixed_size_binary", "binary", "uuid"])
def test_a_nested_or_binary_key_column_is_named_not_called_corrupt(
        cli, setup: dict[str, Any], tmp_path: Path, kind: str) -> None:
    t = pq.read_table(setup["path"])
    values = {"list": pa.array([[k] for k in t.column(0).to_pylist()]),
              "fixed_size_binary": pa.array([bytes([i]) * 16 for i in range(t.num_rows)],
                                            pa.binary(16)),
              "binary": pa.array([b"\xff" + bytes([i]) for i in range(t.num_rows)], pa.binary()),
              # 16 bytes stored as fixed_size_binary: was "the file may be corrupt"
              "uuid": pa.array([bytes([255, i % 256]) * 8 for i in range(t.num_rows)], pa.uuid())}
    bad = tmp_path / "oddkey.parquet"
    pq.write_table(t.set_column(0, "key", values[kind]), bad)
    line = fails(cli, 3, *scan_args(setup, bad), secrets=setup["secrets"])
    shown = {"list": "list<", "fixed_size_binary": "fixed_size_binary[16];", "binary": "binary;",
             "uuid": "extension<arrow.uuid>;"}
    assert f"row key column 'key' is {shown[kind]}" in line and "corrupt" not in line
    assert not setup["out"].exists()


def test_a_list_without_a_signal_says_so(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    """A CSV with a column named like a signal and no signal given: the error is the
    missing signal (with the likely spelling), not which column holds the values."""
    lst = tmp_path / "mixed.csv"
    lst.write_text("id,md5\n" + "".join(f"E{i},{v}\n" for i, v in enumerate(setup["list_values"])))
    line = fails(cli, 4, *scan_args(setup, None, str(lst)), secrets=setup["secrets"])
    assert "signal is unknown" in line and f"md5={lst}" in line


def test_missing_hash_column(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    p = write_manifest(tmp_path / "nohash.parquet", {"key": ["a"], "url": ["https://example.invalid/a"]})
    line = fails(cli, 3, *scan_args(setup, p), secrets=setup["secrets"])
    assert str(p) in line and "'md5'" in line and "hash column" in line
    line = fails(cli, 3, *scan_args(setup, None, None, "--column", "md5=img_md5"))
    assert "'img_md5'" in line
    assert not setup["out"].exists()


def test_a_missing_column_error_hides_manifest_columns_named_like_values(
        cli, setup: dict[str, Any], tmp_path: Path) -> None:
    """A manifest made from a header-less file is named by its first row: a column named
    like a listed hash (or a URL) is counted in the error, not shown; it was listed."""
    listed = setup["list_values"][0]
    p = write_manifest(tmp_path / "headless.parquet", {
        "key": ["a"], listed: [listed], listed.upper(): ["x"],
        "https://example.invalid/a.jpg": ["x"], "caption": ["x"]})
    for extra in ([], ["--key", "image_id"]):
        line = fails(cli, 3, *scan_args(setup, p, None, *extra),
                     secrets=[listed, listed.upper(), listed[:16], listed[-16:], "example.invalid"])
        assert "(columns: key, caption, 3 not shown (named like a value))" in line


def test_missing_column_in_a_later_file(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    d = tmp_path / "two"
    write_manifest(d / "a.parquet", {"key": ["a"], "md5": [setup["md5"][0]]})
    write_manifest(d / "b.parquet", {"key": ["b"], "sha1": ["00" * 20]})
    line = fails(cli, 3, *scan_args(setup, d))
    assert str(d / "b.parquet") in line and "'md5'" in line


@pytest.mark.parametrize("row_groups", [0, 1])
def test_empty_manifest_is_valid(cli, setup: dict[str, Any], tmp_path: Path, row_groups: int) -> None:
    schema = pa.schema([("key", pa.string()), ("md5", pa.string())])
    p = tmp_path / "empty.parquet"
    if row_groups:
        pq.write_table(schema.empty_table(), p)
    else:
        pq.ParquetWriter(p, schema).close()
    assert pq.ParquetFile(p).metadata.num_row_groups == row_groups
    res = cli(*scan_args(setup, p, None, "--write-clean"))
    assert "scanned 0 rows" in res.output
    s = json.loads((setup["out"] / "summary.json").read_text())
    assert s["rows"] == {"scanned": 0, "clean": 0, "excluded": 0, "unverified": 0}
    assert pq.read_table(setup["out"] / "restricted" / "exclusions.parquet").num_rows == 0
    clean = list((setup["out"] / "clean").glob("*.parquet"))
    assert len(clean) == 1 and pq.read_table(clean[0]).schema.equals(schema)


def test_list_with_a_malformed_line(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    vals = setup["list_values"]
    bad_value = "not-a-hash-" + "x" * 21
    lst = write_text_list(tmp_path / "bad.txt", [vals[0], "# comment", "", bad_value, vals[1]], header="")
    line = fails(cli, 4, *scan_args(setup, None, f"md5={lst}"), secrets=[*setup["secrets"], bad_value])
    assert str(lst) in line and "line 4" in line
    assert not setup["out"].exists()
    # on_bad_entry = "skip": the scan runs and run.json counts the skips
    cli(*scan_args(setup, None, f"md5={lst}", "--on-bad-entry", "skip"))
    run = json.loads((setup["out"] / "run.json").read_text())
    stats = run["lists"][0]["stats"]
    assert stats["skipped_bad_entries"] == 1 and stats["bad_entry_lines"] == [4]
    assert bad_value not in (setup["out"] / "run.json").read_text()
    # the same from a config file
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[scan]\nmanifest = "{setup["path"]}"\nout = "{tmp_path / "o2"}"\n\n'
                   f'[[lists]]\npath = "{lst}"\nsignal = "md5"\non_bad_entry = "skip"\n')
    cli("scan", "--config", cfg, "-q")
    assert json.loads((tmp_path / "o2" / "run.json").read_text())["lists"][0]["stats"][
        "skipped_bad_entries"] == 1


def test_list_entries_of_another_length(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    sha = hexes(rand_bytes(3, 32, seed=8))
    lst = write_text_list(tmp_path / "sha256.txt", sha)
    # said as a whole list of another signal, in either mode (the default one used to
    # suggest on_bad_entry = "skip", which then refused the list too); skipping bad
    # entries does not skip a whole list: that would call every row clean
    for mode in ("fail", "skip"):
        line = fails(cli, 4, *scan_args(setup, None, f"md5={lst}", "--on-bad-entry", mode),
                     secrets=[*setup["secrets"], *sha])
        assert f"{lst}: all 3 entries are bad for signal md5 (first: wrong-length, line 2)" in line
        assert not setup["out"].exists()


def test_skipped_entries_and_empty_lists_are_said_on_the_console(cli, setup: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    vals = setup["list_values"]
    lst = write_text_list(tmp_path / "some-bad.txt", [vals[0], "zz" * 16, vals[1]], header="")
    res = cli(*scan_args(setup, None, f"md5={lst}", "--on-bad-entry", "skip"))
    assert "1 bad entry skipped (on_bad_entry = skip" in res.stderr
    empty = write_text_list(tmp_path / "empty.txt", [], header="# only a comment\n")
    res = cli(*scan_args(setup, None, f"md5={empty}"))
    assert "has no entries: nothing can match it" in res.stderr


def test_duplicate_list_entries_are_counted_once(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    vals = setup["list_values"]
    lst = write_text_list(tmp_path / "dup.txt", [*vals, vals[0], vals[1].upper(), vals[0]])
    cli(*scan_args(setup, None, f"md5={lst}"))
    run = json.loads((setup["out"] / "run.json").read_text())
    assert run["lists"][0]["entries"] == len(vals) and run["lists"][0]["stats"]["duplicates"] == 3
    ex = pq.read_table(setup["out"] / "restricted" / "exclusions.parquet").to_pydict()
    for key, m in zip(ex["key"], ex["matches"], strict=True):
        assert len(m) == (1 if key in setup["excluded"] else 0), "a duplicate entry matches once"


def test_unknown_signal_lists_the_known_ones(cli, setup: dict[str, Any]) -> None:
    line = fails(cli, 2, *scan_args(setup, None, f"md4={setup['list']}"), secrets=setup["secrets"])
    assert "md4" in line and all(k in line for k in KNOWN)
    assert not setup["out"].exists()
    line = fails(cli, 2, "lists", "inspect", f"md4={setup['list']}", secrets=setup["secrets"])
    assert all(k in line for k in KNOWN)
    line = fails(cli, 2, *scan_args(setup, None, None, "--column", "md6=x"))
    assert "unknown signal 'md6'" in line and all(k in line for k in KNOWN)


def test_an_empty_list_path_is_named_as_such(cli, setup: dict[str, Any]) -> None:
    line = fails(cli, 2, *scan_args(setup, None, "md5="))
    assert "--list md5=: no list file named" in line


def test_missing_list_file(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    line = fails(cli, 4, *scan_args(setup, None, f"md5={tmp_path / 'none.txt'}"))
    assert str(tmp_path / "none.txt") in line


def test_config_errors(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    assert "--out" in fails(cli, 2, "scan", "--manifest", setup["path"], "--list", f"md5={setup['list']}")
    assert "--list" in fails(cli, 2, "scan", "--manifest", setup["path"], "--out", setup["out"])
    assert "--manifest" in fails(cli, 2, "scan", "--list", f"md5={setup['list']}", "--out", setup["out"])
    line = fails(cli, 2, *scan_args(setup, None, None, "--column", "sha1=x"))
    assert "sha1" in line
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[scan]\nbatch_size = 'big'\n")
    assert "scan.batch_size" in fails(cli, 2, "scan", "--config", cfg)
    cfg.write_text("[scan]\nflavour = 1\n")
    line = fails(cli, 2, "scan", "--config", cfg)
    assert "flavour" in line and "known: " in line and "write_clean" in line
    cfg.write_text("[scan\n")
    assert str(cfg) in fails(cli, 2, "scan", "--config", cfg)
    assert "not found" in fails(cli, 2, "scan", "--config", tmp_path / "missing.toml")
    assert not setup["out"].exists()


def test_output_location_not_writable(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = fails(cli, 6, *scan_args(setup)[:-3], "--out", blocker / "sub", "-q")
    assert str(blocker / "sub") in line


def test_out_inside_a_manifest_directory_is_refused(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    """Its clean/ and restricted/ parquet files would be read back as input next time."""
    d = setup["path"].parent
    line = fails(cli, 2, "scan", "--manifest", d, "--list", f"md5={setup['list']}",
                 "--out", d / "run", "--write-clean", "-q")
    assert "inside manifest directory" in line
    assert not (d / "run").exists()
    # a glob that picks up files inside OUT
    out = tmp_path / "o"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "x.parquet").write_bytes(setup["path"].read_bytes())
    line = fails(cli, 2, "scan", "--manifest", f"{out}/*/*.parquet", "--list", f"md5={setup['list']}",
                 "--out", out, "-q")
    assert "inside the output directory" in line
    # a link to a file inside OUT, beside a file that is not: each directory is decided
    # once, but a link is followed on its own
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.parquet").write_bytes(setup["path"].read_bytes())
    (elsewhere / "b.parquet").symlink_to(out / "sub" / "x.parquet")
    line = fails(cli, 2, "scan", "--manifest", elsewhere, "--list", f"md5={setup['list']}",
                 "--out", out, "-q")
    assert "b.parquet: manifest file lies inside the output directory" in line
    # a recursive glob reads everything below its base: OUT there is refused on the first run
    line = fails(cli, 2, "scan", "--manifest", f"{d}/**/*.parquet", "--list", f"md5={setup['list']}",
                 "--out", d / "deep" / "run", "-q")
    assert "inside manifest directory" in line


def test_out_holding_other_files_is_refused(cli, setup: dict[str, Any]) -> None:
    """A run replaces OUT/clean/ whole: a directory of someone's own files, with no
    earlier run in it, is refused instead of having its clean/ deleted."""
    out = setup["out"]
    (out / "clean").mkdir(parents=True)
    (out / "clean" / "important.txt").write_text("mine")
    line = fails(cli, 2, *scan_args(setup))
    assert "already holds files (clean) and no earlier run" in line
    assert (out / "clean" / "important.txt").read_text() == "mine"
    (out / "clean" / "important.txt").unlink()
    (out / "clean").rmdir()
    cli(*scan_args(setup))  # an empty directory is fine, and then a rerun into it too
    cli(*scan_args(setup))
    # a run whose commit was cut short (run.json goes first) and whose work area was
    # deleted, as the docs say to abandon it, is still recognised as a run's OUT
    (out / "run.json").unlink()
    cli(*scan_args(setup))
    assert (out / "run.json").exists()


def test_same_list_twice_is_a_config_error(cli, setup: dict[str, Any]) -> None:
    line = fails(cli, 2, *scan_args(setup, None, None, "--list", f"md5={setup['list']}"))
    assert "given twice" in line


@pytest.mark.parametrize(("magic", "name"), [(b"\x1f\x8b\x08\x00", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd")])
def test_compressed_webdataset_shard(cli, setup: dict[str, Any], tmp_path: Path, magic: bytes,
                                     name: str) -> None:
    """Images are read at their offsets in a shard: a compressed tar is refused with the
    fix, before any sidecar lookup, instead of 'not a readable tar shard'."""
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "00000.tar.gz").write_bytes(magic + bytes(100))
    line = fails(cli, 3, "scan", "--webdataset", shards / "*.tar.gz", "--list", f"md5={setup['list']}",
                 "--compute", "md5", "--out", setup["out"], "-q")
    assert f"00000.tar.gz: a {name}-compressed tar shard" in line and "decompress it first" in line
    assert incomplete(setup["out"])


@pytest.mark.parametrize("body", ["md5,md5\n{v},{v}\n", '{{"md5": ["{v}"]}}\n', '{{"md5": {{"x": "{v}"}}}}\n',
                                  '{{"md5": "{v}", "id": [1, 2]}}\n'],
                         ids=["repeated-column", "json-array", "json-object", "nested-id"])
def test_odd_list_tables_are_one_line_errors(cli, setup: dict[str, Any], tmp_path: Path,
                                             body: str) -> None:
    """These were tracebacks (exit 1): a repeated column name, nested JSON values."""
    v = setup["list_values"][0]
    lst = tmp_path / ("l.csv" if body.startswith("md5,") else "l.jsonl")
    lst.write_text(body.format(v=v))
    line = fails(cli, 4, "lists", "inspect", f"md5={lst}", secrets=setup["secrets"])
    assert str(lst) in line and ("more than once" in line or "not one value per entry" in line)


def test_a_manifest_column_given_twice_is_named(cli, setup: dict[str, Any], tmp_path: Path) -> None:
    t = pq.read_table(setup["path"])
    bad = tmp_path / "dup.parquet"
    pq.write_table(t.rename_columns([c if c != "url" else "md5" for c in t.column_names]), bad)
    line = fails(cli, 3, *scan_args(setup, bad), secrets=setup["secrets"])
    assert "column 'md5' appears 2 times" in line


def test_a_string_column_that_is_not_utf8_is_scanned(cli, setup: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """Parquet writers do not check that a string column holds UTF-8. In a manifest such
    a row is malformed and the scan goes on (it stopped: 'row group 0 cannot be read;
    the file may be corrupt'); in a parquet list it is an error naming its row, as text
    that is not UTF-8 is in every list format (it was a traceback)."""
    t = pq.read_table(setup["path"])
    raw = [None if v is None else v.encode() for v in t.column("md5").to_pylist()]
    raw[8] = b"\xff" + raw[3][1:]  # a listed value spoiled by one byte that is not UTF-8
    md5 = pa.array(raw, pa.binary()).view(pa.string())
    bad = tmp_path / "m" / "latin.parquet"
    pq.write_table(t.set_column(t.schema.get_field_index("md5"), "md5", md5), bad)
    cli(*scan_args({**setup, "out": tmp_path / "out1"}, bad))
    ex = pq.read_table(tmp_path / "out1" / "restricted" / "exclusions.parquet")
    decided = dict(zip(ex.column("key").to_pylist(), ex.column("reasons").to_pylist(), strict=True))
    assert decided["k008"] == ["md5:malformed"]
    assert {k for k, r in decided.items() if r == ["md5:match"]} == setup["excluded"]
    assert set(decided) == setup["excluded"] | setup["unverified"]
    lst = tmp_path / "l.parquet"
    pq.write_table(pa.table({"md5": pa.array([setup["list_values"][0].encode(), b"\xff" * 32],
                                             pa.binary()).view(pa.string())}), lst)
    line = fails(cli, 4, *scan_args(setup, None, f"md5={lst}"), secrets=setup["secrets"])
    assert str(lst) in line and "row 2: the hash value is not UTF-8 text" in line


@pytest.mark.parametrize("extra", [[], ["--write-clean"]], ids=["late-key", "key-in-batch"])
def test_a_string_key_that_is_not_utf8_is_a_one_line_error(cli, setup: dict[str, Any],
                                                           tmp_path: Path, extra: list[str]) -> None:
    """A key column of type string may hold bytes that are not UTF-8 (parquet writers do
    not check); an excluded row's key is written as text, so that is an input error
    naming the column (it was a traceback from the summary reporter, exit 1)."""
    t = pq.read_table(setup["path"])
    keys = [k.encode() for k in t.column("key").to_pylist()]
    keys[3] = b"k\xff03"  # row 3 is excluded
    bad = tmp_path / "latinkey.parquet"
    pq.write_table(t.set_column(0, "key", pa.array(keys, pa.binary()).view(pa.string())), bad)
    line = fails(cli, 3, *scan_args(setup, bad, None, *extra), secrets=setup["secrets"])
    assert "row key column 'key' holds a value that is not UTF-8" in line and str(bad) in line
    assert incomplete(setup["out"])
