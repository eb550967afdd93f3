"""List files: every format, sidecar metadata, duplicates, bad entries, fingerprints."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import core_registry, hexes, rand_bytes, write_text_list

from datahygiene.errors import ConfigError, ListError
from datahygiene.lists.files import load_list_file
from datahygiene.lists.model import fingerprint, sort_rows
from datahygiene.lists.spec import ListSpec

REG = core_registry()


def load(path: Path, **kw: object) -> list:
    return load_list_file(ListSpec(path=str(path), **kw), REG)  # type: ignore[arg-type]


def one(path: Path, **kw: object):
    lists = load(path, **kw)
    assert len(lists) == 1
    return lists[0]


def canonical(values: list[str]) -> set[bytes]:
    return {bytes.fromhex(v.strip()) for v in values}


def as_set(hl) -> set[bytes]:
    return {bytes(r) for r in hl.values}


@pytest.fixture
def values() -> list[str]:
    return hexes(rand_bytes(12, 16, seed=40))


def test_text_with_comments_blank_lines_and_case(tmp_path: Path, values: list[str]) -> None:
    body = ["# header comment", "", values[0], values[1].upper() + "  # trailing comment",
            "   ", "\t" + values[2], *values[3:]]
    p = write_text_list(tmp_path / "l.txt", body, header="")
    hl = one(p, signal="md5")
    assert as_set(hl) == canonical(values)
    assert hl.stats["lines"] == len(body)
    assert hl.stats["comment_or_blank_lines"] == 3
    assert hl.id == "local/l@unversioned"


def test_text_with_crlf_and_no_final_newline(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "crlf.txt"
    p.write_bytes(("# c\r\n\r\n" + "\r\n".join(values)).encode())
    assert as_set(one(p, signal="md5")) == canonical(values)


@pytest.mark.parametrize("body", ["# c\r{}\r", "{}", "\ufeff{}\r"])
def test_text_with_cr_only_line_ends_is_refused_saying_so(tmp_path: Path, values: list[str],
                                                          body: str) -> None:
    """Old Mac line ends: one line, so "all entries are bad" without saying why, or, after
    a comment, an empty list and exit 0."""
    p = tmp_path / "cr.txt"
    p.write_bytes(body.format("\r".join(values)).encode())
    with pytest.raises(ListError) as err:
        load(p, signal="md5")
    assert str(err.value) == (f"{p}: the file uses CR line endings (classic Mac OS), which are "
                              "not line breaks here; convert it to LF or CRLF line endings")
    # one entry and its line end is one line, read as before
    p.write_bytes(f"{values[0]}\r".encode())
    assert as_set(one(p, signal="md5")) == canonical(values[:1])


def test_empty_text_list_is_valid_with_zero_entries(tmp_path: Path) -> None:
    p = tmp_path / "empty.txt"
    p.write_text("# nothing yet\n")
    hl = one(p, signal="md5")
    assert len(hl) == 0 and hl.fingerprint.startswith("sha256:")


@pytest.mark.parametrize("name, body", [("e.csv", ""), ("e.tsv", "\n"), ("e.jsonl", ""),
                                        ("e.jsonl", "\n\n")])
def test_a_tabular_file_without_any_line_names_no_column(tmp_path: Path, name: str,
                                                         body: str) -> None:
    """An empty JSON Lines file was "cannot read as jsonl: ArrowInvalid", and an empty CSV
    or a blank JSON Lines file "name it with hash_column (columns: )": nothing to name."""
    p = tmp_path / name
    p.write_text(body)
    with pytest.raises(ListError, match=rf"{name}: no (header line|column): the file holds no "
                                        "entry and names no column"):
        load(p, signal="md5")
    header_only = tmp_path / "h.csv"
    header_only.write_text("id,hash\n")
    assert len(one(header_only, signal="md5")) == 0


def test_csv_with_header_id_and_category(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "l.csv"
    p.write_text("id,hash,category\n" + "".join(f"E{i},{v},cat{i % 2}\n" for i, v in enumerate(values)))
    hl = one(p, signal="md5")
    assert as_set(hl) == canonical(values)
    # the reference of an entry is its partner id, never its value
    idx = next(i for i, r in enumerate(hl.values) if bytes(r) == bytes.fromhex(values[5]))
    assert hl.ref_strings(np.array([idx])).to_pylist() == ["E5"]
    assert hl.categories is not None and set(hl.categories.to_pylist()) == {"cat0", "cat1"}
    # references and categories stay in file order; each value row still finds its own
    # (the first line's, for a value given twice)
    cats = hl.aligned_categories()
    assert cats is not None
    for i, row in enumerate(hl.values):
        line = values.index(bytes(row).hex())
        assert hl.ref_strings(np.array([i])).to_pylist() == [f"E{line}"]
        assert cats[i].as_py() == f"cat{line % 2}"


def test_tsv_with_named_hash_column(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "l.tsv"
    p.write_text("entry_id\tdigest_md5\tclassification\n"
                 + "".join(f"X{i}\t{v}\tA\n" for i, v in enumerate(values)))
    with pytest.raises(ListError, match="hash_column"):
        load(p, signal="md5")
    hl = one(p, signal="md5", hash_column="digest_md5")
    assert as_set(hl) == canonical(values)
    assert hl.ref_strings(np.array([0])).to_pylist()[0].startswith("X")


def test_csv_hash_column_named_after_signal(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "l.csv"
    p.write_text("md5,note\n" + "".join(f"{v},n\n" for v in values))
    assert as_set(one(p, signal="md5")) == canonical(values)


@pytest.mark.parametrize("sep", [",", "\t"])
def test_csv_header_names_are_read_without_surrounding_spaces(tmp_path: Path, values: list[str],
                                                             sep: str) -> None:
    """"md5 , id": "md5 " was no hash column (an error listing no column), and in
    "md5, id" the partner ids of " id" were dropped for line numbers without a word."""
    p = tmp_path / ("l.csv" if sep == "," else "l.tsv")
    p.write_text(f"md5 {sep} id {sep}category\n"
                 + "".join(f"{v}{sep}E{i}{sep}A\n" for i, v in enumerate(values)))
    hl = one(p, signal="md5")
    assert as_set(hl) == canonical(values)
    assert sorted(hl.ref_strings(np.arange(len(values))).to_pylist()) == sorted(
        f"E{i}" for i in range(len(values)))
    # names given with their spaces (as the earlier error asked) still find the columns
    hl = one(p, signal="md5", hash_column="md5 ", id_column=" id ")
    assert as_set(hl) == canonical(values) and hl.ref_strings(np.arange(1)).to_pylist()[0][0] == "E"
    # two names equal once stripped: which to read cannot be told
    p.write_text(f"md5{sep}md5 {sep}id\n{values[0]}{sep}{values[1]}{sep}E0\n")
    with pytest.raises(ListError, match=r"column name\(s\) given more than once: md5;"):
        load(p, signal="md5")


def test_csv_with_signal_column_splits_into_lists(tmp_path: Path, values: list[str]) -> None:
    sha = hexes(rand_bytes(3, 32, seed=41))
    p = tmp_path / "mixed.csv"
    p.write_text("signal,hash\n" + "".join(f"md5,{v}\n" for v in values)
                 + "".join(f"sha256,{v}\n" for v in sha))
    lists = {hl.signal: hl for hl in load(p)}
    assert set(lists) == {"md5", "sha256"}
    assert as_set(lists["md5"]) == canonical(values)
    assert as_set(lists["sha256"]) == canonical(sha)
    only = load(p, signal="sha256")
    assert [hl.signal for hl in only] == ["sha256"]


@pytest.mark.parametrize("signal", [None, "md5"])
def test_a_signal_field_is_read_without_regard_to_case_or_spaces(
        tmp_path: Path, values: list[str], signal: str | None) -> None:
    """An "MD5" row was another signal's: under md5= it was left out without a word, and a
    manifest row holding its entry was called clean."""
    p = tmp_path / "mixed.csv"
    p.write_text("signal,hash\n" + f"md5,{values[0]}\n" + f"MD5,{values[1]}\n"
                 + f'" Md5 ",{values[2]}\n')
    [hl] = load(p, signal=signal)
    assert hl.signal == "md5" and as_set(hl) == canonical(values[:3])


def test_a_signal_field_of_spaces_is_an_error(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "mixed.csv"
    p.write_text("signal,hash\n" + f"md5,{values[0]}\n" + f'"  ",{values[1]}\n')
    with pytest.raises(ListError, match=r"mixed\.csv: line 3: no signal type in the signal column"):
        load(p, signal="md5")


@pytest.mark.parametrize("signal", [None, "md5"])
@pytest.mark.parametrize("on_bad_entry", ["fail", "skip"])
def test_a_row_without_a_signal_in_the_signal_column_is_an_error(
        tmp_path: Path, values: list[str], signal: str | None, on_bad_entry: str) -> None:
    """A row whose signal field is empty was in none of the lists: its entry silently
    dropped (exit 0, no problem shown), and a manifest row holding it called clean."""
    p = tmp_path / "mixed.csv"
    p.write_text("signal,hash\n" + "".join(f"md5,{v}\n" for v in values[:3]) + f",{values[3]}\n")
    with pytest.raises(ListError, match=r"mixed\.csv: line 5: no signal type in the signal column "
                                        r"\(1 row in all\)") as err:
        load(p, signal=signal, on_bad_entry=on_bad_entry)
    assert values[3] not in str(err.value)


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_csv_field_longer_than_a_read_block_is_a_bad_entry(tmp_path: Path, values: list[str],
                                                              suffix: str) -> None:
    """A field over 1 MiB (Arrow's CSV block) failed the whole file with "cannot read as
    csv: ArrowInvalid", no line named, even with on_bad_entry = "skip"; a text or JSON
    Lines list calls such a line a wrong-length entry."""
    sep = "\t" if suffix == ".tsv" else ","
    p = tmp_path / f"huge{suffix}"
    p.write_text(f"id{sep}hash\n" + "".join(f"E{i}{sep}{v}\n" for i, v in enumerate(values[:2]))
                 + f"E2{sep}{'a' * (2 << 20)}\n" + f"E3{sep}{values[2]}\n")
    with pytest.raises(ListError, match=rf"huge\{suffix}: line 4: wrong-length entry"):
        load(p, signal="md5")
    hl = one(p, signal="md5", on_bad_entry="skip")
    assert as_set(hl) == canonical(values[:3])
    assert hl.stats["bad_entry_lines"] == [4]


def test_jsonl(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "l.jsonl"
    p.write_text("".join(json.dumps({"hash": v, "id": f"J{i}"}) + "\n" for i, v in enumerate(values)))
    hl = one(p, signal="md5")
    assert as_set(hl) == canonical(values)


@pytest.mark.parametrize("binary", [False, True])
def test_parquet(tmp_path: Path, values: list[str], binary: bool) -> None:
    p = tmp_path / "l.parquet"
    col = (pa.array([bytes.fromhex(v) for v in values], pa.binary(16)) if binary
           else pa.array(values))
    pq.write_table(pa.table({"hash": col, "id": [f"P{i}" for i in range(len(values))]}), p)
    hl = one(p, signal="md5")
    assert as_set(hl) == canonical(values)


@pytest.mark.parametrize("layout", [pa.large_binary(), pa.binary_view(), "dictionary"])
def test_parquet_binary_of_any_layout(tmp_path: Path, values: list[str], layout: object) -> None:
    # large_binary (what some writers produce for bytes), binary_view (polars, DuckDB) and
    # dictionary-encoded binary are bytes like binary: they were cast to text, a traceback
    raw = [bytes.fromhex(v) for v in values]
    col = (pa.array(raw, pa.binary()).dictionary_encode() if layout == "dictionary"
           else pa.array(raw, layout))
    p = tmp_path / "l.parquet"
    pq.write_table(pa.table({"hash": col}), p)
    hl = one(p, signal="md5")
    assert as_set(hl) == canonical(values)
    assert hl.fingerprint == one(write_text_list(tmp_path / "l.txt", values), signal="md5").fingerprint


def test_single_column_table_needs_no_column_name(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "l.parquet"
    pq.write_table(pa.table({"whatever": values}), p)
    assert as_set(one(p, signal="md5")) == canonical(values)


@pytest.mark.parametrize("suffix", [".meta.toml", ".meta.json"])
def test_sidecar_gives_identity_and_signal(tmp_path: Path, values: list[str], suffix: str) -> None:
    p = write_text_list(tmp_path / "partner.txt", values)
    meta = {"partner": "synthetic-partner", "name": "placeholder", "version": "2026-11-01",
            "signal": "md5", "retrieved_at": "2026-11-01T00:00:00Z"}
    side = Path(str(p) + suffix)
    if suffix == ".meta.toml":
        side.write_text("".join(f'{k} = "{v}"\n' for k, v in meta.items()))
    else:
        side.write_text(json.dumps(meta))
    hl = one(p)
    assert hl.id == "synthetic-partner/placeholder@2026-11-01"
    assert hl.signal == "md5"
    d = hl.describe()
    assert d["retrieved_at"] == "2026-11-01T00:00:00Z" and d["version"] == "2026-11-01"
    # explicit values win over the sidecar
    assert one(p, name="override").identity.name == "override"


@pytest.mark.parametrize("source, refused", [("store", True), ("file", False)])
def test_a_sidecar_cannot_choose_another_source(tmp_path: Path, values: list[str], source: str,
                                                refused: bool) -> None:
    """The sidecar is read by the file source: its source = "store" was ignored without a
    word, and the list read as a file."""
    p = write_text_list(tmp_path / "l.txt", values)
    Path(str(p) + ".meta.toml").write_text(f'signal = "md5"\nsource = "{source}"\n')
    if refused:
        with pytest.raises(ConfigError, match=r"l\.txt\.meta\.toml: source cannot be set in a "
                                              r"sidecar"):
            load(p)
    else:
        assert len(one(p)) == len(values)


def test_sidecar_with_unknown_key_is_a_config_error(tmp_path: Path, values: list[str]) -> None:
    p = write_text_list(tmp_path / "l.txt", values)
    Path(str(p) + ".meta.toml").write_text('signal = "md5"\nsecret_sauce = 1\n')
    with pytest.raises(ConfigError, match="secret_sauce"):
        load(p)


def test_a_key_named_like_a_list_value_is_counted_not_shown(tmp_path: Path,
                                                            values: list[str]) -> None:
    """A list value pasted as a key of a sidecar, a config block or [scan] was quoted
    back in the "unknown key" error."""
    from datahygiene.config import load_config

    p = write_text_list(tmp_path / "l.txt", values)
    Path(str(p) + ".meta.toml").write_text(f'signal = "md5"\n"{values[0]}" = 1\nsecret_sauce = 1\n')
    with pytest.raises(ConfigError) as err:
        load(p)
    assert "secret_sauce, 1 not shown (named like a value)" in str(err.value)
    cfg = tmp_path / "c.toml"
    for body in (f'[scan]\n"{values[0].upper()}" = 1\n',
                 f'[[lists]]\npath = "{p}"\n"{values[0]}" = 1\n',
                 f'["{values[0]}"]\nx = 1\n'):
        cfg.write_text(body)
        with pytest.raises(ConfigError) as err:
            load_config(str(cfg))
        assert "1 not shown (named like a value)" in str(err.value)
        assert values[0] not in str(err.value).lower()


@pytest.mark.parametrize("line", ["retrieved_at = 2026-11-01T06:00:00Z", 'name = ["a"]',
                                  "partner = 5", 'options = "x"', "threshold = true"])
def test_sidecar_and_config_values_of_the_wrong_type_are_config_errors(
        tmp_path: Path, values: list[str], line: str) -> None:
    # a TOML date-time reached run.json unconverted (a traceback after the scan), options
    # that are no table were a traceback, and an array became the list's id as a repr (an
    # unquoted date as the version is the text of the date: see the curator-docs tests)
    key = line.split(" = ")[0]
    p = write_text_list(tmp_path / "l.txt", values)
    Path(str(p) + ".meta.toml").write_text(f'signal = "md5"\n{line}\n')
    with pytest.raises(ConfigError, match=rf"l\.txt\.meta\.toml: {key} must be"):
        load(p)
    block = tomllib.loads(f'path = "{p}"\nsignal = "md5"\n{line}\n')
    with pytest.raises(ConfigError, match=rf"cfg: {key} must be"):
        ListSpec.from_mapping(block, "cfg")


def test_duplicates_counted_once(tmp_path: Path, values: list[str]) -> None:
    body = [*values, values[0].upper(), values[1], values[1]]
    hl = one(write_text_list(tmp_path / "dup.txt", body), signal="md5")
    assert len(hl) == len(values)
    assert hl.stats["duplicates"] == 3


def test_fingerprint_stable_under_reordering_case_duplicates_and_format(tmp_path: Path,
                                                                       values: list[str]) -> None:
    a = one(write_text_list(tmp_path / "a.txt", values), signal="md5")
    shuffled = [*values[::-1], values[3].upper()]
    random.Random(1).shuffle(shuffled)
    b = one(write_text_list(tmp_path / "b.txt", shuffled), signal="md5")
    c_path = tmp_path / "c.csv"
    c_path.write_text("id,hash\n" + "".join(f"Z{i},{v}\n" for i, v in enumerate(values)))
    c = one(c_path, signal="md5")
    assert a.fingerprint == b.fingerprint == c.fingerprint
    changed = one(write_text_list(tmp_path / "d.txt", [*values[:-1], "00" * 16]), signal="md5")
    assert changed.fingerprint != a.fingerprint
    fewer = one(write_text_list(tmp_path / "e.txt", values[:-1]), signal="md5")
    assert fewer.fingerprint != a.fingerprint


def test_fingerprint_definition_matches_the_docs() -> None:
    """docs/list-formats.md#fingerprint: SHA-256 over a domain tag, the signal name and
    a NUL, the entry count as little-endian uint64, then the sorted unique entries."""
    import hashlib

    v = rand_bytes(5, 16, seed=42)
    v = v[sort_rows(v)]
    want = hashlib.sha256(b"datahygiene-list-v1\0" + b"md5\0" + (5).to_bytes(8, "little")
                          + v.tobytes()).hexdigest()
    assert fingerprint("md5", v) == "sha256:" + want
    assert fingerprint("sha1", np.zeros((0, 20), np.uint8)) != fingerprint("md5", np.zeros((0, 16), np.uint8))


def test_malformed_line_fails_naming_the_line_never_the_value(tmp_path: Path, values: list[str]) -> None:
    bad = "q" * 32
    p = write_text_list(tmp_path / "bad.txt", [values[0], "", "# c", values[1], bad, values[2]],
                        header="")
    with pytest.raises(ListError) as exc:
        load(p, signal="md5")
    msg = str(exc.value)
    assert "line 5" in msg and str(p) in msg and "malformed" in msg
    assert bad not in msg and all(v not in msg for v in values)
    assert "\n" not in msg


def test_malformed_line_skipped_and_counted(tmp_path: Path, values: list[str]) -> None:
    p = write_text_list(tmp_path / "bad.txt", [values[0], "q" * 32, values[1], "0" * 10], header="")
    hl = one(p, signal="md5", on_bad_entry="skip")
    assert as_set(hl) == canonical(values[:2])
    assert hl.stats["skipped_bad_entries"] == 2
    assert hl.stats["bad_entry_lines"] == [2, 4]
    assert hl.stats["bad_entry_reasons"] == {"malformed": 1, "wrong-length": 1}


def test_csv_bad_row_names_the_file_line(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "l.csv"
    p.write_text("id,hash\n" + "".join(f"E{i},{v}\n" for i, v in enumerate(values[:3])) + "E9,nothex\n")
    with pytest.raises(ListError, match="line 5"):
        load(p, signal="md5")


def assert_lines(p: Path, values: list[str], bad: int, refs: tuple[int, int]) -> None:
    """Loaded with bad entries skipped: the bad entry's line, and the lines the entries
    ``values[0]`` and ``values[1]`` are referenced by."""
    hl = one(p, signal="md5", on_bad_entry="skip")
    assert hl.stats["bad_entry_lines"] == [bad]
    order = {bytes(v): i for i, v in enumerate(hl.values)}
    got = hl.ref_strings(np.arange(2)).to_pylist()
    assert [got[order[bytes.fromhex(v)]] for v in values[:2]] == [f"line:{n}" for n in refs]


@pytest.mark.parametrize("sep", [",", "\t"])
def test_csv_errors_and_refs_name_the_right_line_despite_blank_lines(tmp_path: Path, values: list[str],
                                                                     sep: str) -> None:
    """The CSV reader skips blank lines; line numbers must still be the file's."""
    p = tmp_path / ("l.csv" if sep == "," else "l.tsv")
    p.write_text(f"hash{sep}category\n\n{values[0]}{sep}a\n\n\n{values[1]}{sep}b\nnothex{sep}c\n")
    with pytest.raises(ListError, match="line 7"):
        load(p, signal="md5")
    assert_lines(p, values, bad=7, refs=(3, 6))


def test_csv_refs_name_the_line_a_record_starts_on_despite_quoted_newlines(
        tmp_path: Path, values: list[str]) -> None:
    """A quoted field holding a newline makes one record of two lines: every later entry
    reference (and bad-entry line) was one line short."""
    p = tmp_path / "q.csv"
    p.write_text(f'hash,category\n{values[0]},"a\nb"\n\n{values[1]},c\nnothex,d\n')
    with pytest.raises(ListError, match="line 6"):
        load(p, signal="md5")
    assert_lines(p, values, bad=6, refs=(2, 5))


def test_entries_of_another_signal_length(tmp_path: Path) -> None:
    sha = hexes(rand_bytes(4, 32, seed=43))
    p = write_text_list(tmp_path / "sha.txt", sha)
    with pytest.raises(ListError) as exc:
        load(p, signal="md5")
    msg = str(exc.value)
    assert "wrong-length" in msg and "line 2" in msg and "32 hex characters" in msg
    assert all(v not in msg for v in sha)
    assert len(one(p, signal="sha256")) == 4


def test_unknown_signal_lists_the_known_ones(tmp_path: Path, values: list[str]) -> None:
    p = write_text_list(tmp_path / "l.txt", values)
    with pytest.raises(ConfigError) as exc:
        load(p, signal="md6")
    msg = str(exc.value)
    assert "md6" in msg
    for known in ("md5", "sha1", "sha256", "url-md5", "url-sha1", "url-sha256"):
        assert known in msg


def test_text_list_without_signal_is_an_error(tmp_path: Path, values: list[str]) -> None:
    p = write_text_list(tmp_path / "l.txt", values)
    with pytest.raises(ListError, match="needs its signal"):
        load(p)


def test_missing_list_file(tmp_path: Path) -> None:
    with pytest.raises(ListError, match="not found"):
        load(tmp_path / "nope.txt", signal="md5")


def test_listspec_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="colour"):
        ListSpec.from_mapping({"path": "x", "colour": "red"}, "cfg")
    with pytest.raises(ConfigError, match="on_bad_entry"):
        ListSpec.from_mapping({"path": "x", "on_bad_entry": "ignore"}, "cfg")
    with pytest.raises(ConfigError, match="format"):
        ListSpec.from_mapping({"path": "x", "format": "xml"}, "cfg")
    with pytest.raises(ConfigError, match="path"):
        ListSpec.from_mapping({"signal": "md5"}, "cfg")


def test_a_cr_within_a_text_line_is_kept(tmp_path: Path, values: list[str]) -> None:
    """Only LF and CRLF end a line. A CR inside a line was dropped: ``<16 hex>\\r<16 hex>``
    became an MD5 entry nobody wrote, where a manifest column calls it wrong-length."""
    p = tmp_path / "cr.txt"
    v = values[1]
    p.write_bytes(f"{values[0]}\r\n{v[:16]}\r{v[16:]}\r\n{values[2]}\r\n".encode())
    with pytest.raises(ListError, match=r"cr\.txt: line 2: wrong-length entry"):
        load(p, signal="md5")
    assert as_set(one(p, signal="md5", on_bad_entry="skip")) == canonical([values[0], values[2]])


def test_a_line_of_unicode_whitespace_is_blank(tmp_path: Path, values: list[str]) -> None:
    """A line holding only a no-break space, U+3000 or a vertical tab is blank, like a
    line of spaces (docs: whitespace is Unicode whitespace). Read by the general parser
    (any non-ASCII line sends the file there), such a line was a wrong-length entry: in
    fail mode the whole list was refused for a blank line."""
    body = [values[0], "\u00a0", "\u3000", "\x0b", " \u00a0 ", "\u00a0" + values[1], values[2]]
    p = tmp_path / "ws.txt"
    p.write_text("\n".join(body) + "\n", encoding="utf-8")
    hl = one(p, signal="md5")
    assert as_set(hl) == canonical(values[:3])
    assert hl.stats["comment_or_blank_lines"] == 4


def test_text_list_with_a_byte_order_mark(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(values).encode() + b"\r\n")
    hl = one(p, signal="md5")
    assert as_set(hl) == canonical(values)
    assert hl.stats["lines"] == len(values)


def test_jsonl_errors_name_the_right_line_despite_blank_lines(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "l.jsonl"
    p.write_text(json.dumps({"hash": values[0]}) + "\n\n  \n" + json.dumps({"hash": values[1]}) + "\n"
                 + json.dumps({"hash": "zz"}) + "\n")
    with pytest.raises(ListError, match="line 5"):
        load(p, signal="md5")
    hl = one(p, signal="md5", on_bad_entry="skip")
    assert hl.stats["bad_entry_lines"] == [5]
    assert hl.ref_strings(np.arange(2)).to_pylist() in (["line:1", "line:4"], ["line:4", "line:1"])


@pytest.mark.parametrize("sep", [",", "\t"])
def test_headerless_csv_is_refused_without_quoting_the_entry(tmp_path: Path, values: list[str],
                                                             sep: str) -> None:
    """Read with its first entry taken for a header, the entry would never match (and
    would be quoted in messages listing the columns)."""
    p = tmp_path / ("l.csv" if sep == "," else "l.tsv")
    p.write_text("".join(f"{v}{sep}E{i}\n" for i, v in enumerate(values)))
    with pytest.raises(ListError) as exc:
        load(p, signal="md5")
    assert "line 1" in str(exc.value) and "header" in str(exc.value)
    assert all(v not in str(exc.value) for v in values)
    single = tmp_path / "single.csv"
    single.write_text("\n".join(values) + "\n")
    with pytest.raises(ListError, match="header"):
        load(single, signal="md5")
    assert as_set(one(single, signal="md5", format="text")) == canonical(values)


@pytest.mark.parametrize("name, text, where", [
    ("cut.jsonl", '{"hash": "%s"}\n\n{"hash": "%s"\n', "line 3: not a JSON object"),
    ("num.jsonl", '{"hash": "%s"}\n{"hash": 12}\n{"hash": "%s"}\n',
     "line 2: field 'hash' holds a number, earlier lines a string"),
    ("key.jsonl", '{"hash": "%s"}\n{"%s": 1, "hash": 2}\n', "line 2: field 'hash' holds a number"),
    ("twice.jsonl", '{"hash": "%s"}\n\n{"hash": "%s", "hash": "%s"}\n',
     "line 3: field 'hash' appears twice in one object"),
    ("ragged.csv", 'id,hash\n1,%s\n2,%s,extra\n', "line 3: 3 fields, the header has 2"),
    ("ragged.tsv", 'id\thash\n1\t%s\n\n2\t%s\textra\n', "line 4: 3 fields, the header has 2"),
])
def test_unreadable_line_is_named_without_quoting_it(tmp_path: Path, values: list[str], name: str,
                                                     text: str, where: str) -> None:
    """Arrow refuses the file as a whole; the error still names the line at fault, and
    never a value (not even one used as a field name)."""
    p = tmp_path / name
    p.write_text(text % tuple(values[: text.count("%s")]))
    with pytest.raises(ListError) as err:
        load(p, signal="md5")
    assert where in str(err.value)
    assert not any(v in str(err.value) for v in values)


def test_a_key_given_twice_is_named_by_its_line_never_quoted(tmp_path: Path,
                                                            values: list[str]) -> None:
    """Python keeps the last of two equal keys where Arrow refuses the file: the error had
    no line. A key that could be a list value is not shown."""
    p = tmp_path / "twice.jsonl"
    p.write_text(json.dumps({"hash": values[0]}) + "\n"
                 + f'{{"{values[1]}": 1, "hash": "{values[2]}", "{values[1]}": 2}}\n')
    with pytest.raises(ListError) as err:
        load(p, signal="md5")
    assert f"{p}: line 2: a field appears twice in one object" in str(err.value)
    assert not any(v in str(err.value) for v in values)


@pytest.mark.parametrize("sep", [",", "\t"])
def test_an_over_long_field_in_a_ragged_row_is_named_by_its_line(tmp_path: Path, values: list[str],
                                                                   sep: str) -> None:
    """Python's csv reader stops at a field over its limit: the error had no line at all."""
    p = tmp_path / ("l.csv" if sep == "," else "l.tsv")
    long = values[2] * (300_000 // len(values[2]))
    rows = [f"E1{sep}{values[0]}", f"E2{sep}{long}{sep}extra", f"E3{sep}{values[1]}"]
    p.write_text(f"id{sep}hash\n\n" + "\n".join(rows) + "\n" + f"E4{sep}{values[3]}\n" * 40_000)
    assert p.stat().st_size > 1 << 20  # past Arrow's block: the row is read whole
    with pytest.raises(ListError) as err:
        load(p, signal="md5")
    message = str(err.value)
    assert message.startswith(f"{p}: line 4: a field over 131,072 characters long"), message
    assert not any(v in message for v in values)


@pytest.mark.parametrize("layout", ["jsonl-keyed-by-value", "csv-0x-no-header", "csv-base64-no-header",
                                    "signal-column-holds-values"])
def test_errors_about_columns_never_quote_an_entry(tmp_path: Path, layout: str) -> None:
    """A header-less file's column "names" are its first entries, and a swapped signal
    column holds values: the errors must name neither."""
    import base64

    v1, v2 = hexes(rand_bytes(2, 16))
    spellings = {v1, v2, v1.upper(), "0x" + v1,
                 base64.b64encode(bytes.fromhex(v1)).decode().rstrip("=")}
    if layout == "jsonl-keyed-by-value":
        path, signal = tmp_path / "k.jsonl", "md5"
        path.write_text(json.dumps({v1: "E1"}) + "\n" + json.dumps({v2: "E2"}) + "\n")
    elif layout == "csv-0x-no-header":
        path, signal = tmp_path / "h.csv", "md5"
        path.write_text(f"0x{v1},E1\n0x{v2},E2\n")
    elif layout == "csv-base64-no-header":
        path, signal = tmp_path / "b.csv", "md5"
        b1 = base64.b64encode(bytes.fromhex(v1)).decode().rstrip("=")
        path.write_text(f"{b1},E1\n")
    else:
        path, signal = tmp_path / "s.csv", None
        path.write_text(f"signal,hash\n{v1},md5\n")
    with pytest.raises(ListError) as exc:
        load(path, signal=signal)
    message = str(exc.value)
    assert str(path) in message
    assert not any(s in message or s.lower() in message.lower() for s in spellings), message


def test_a_csv_line_in_another_delimiter_is_not_taken_for_a_header(tmp_path: Path,
                                                                   values: list[str]) -> None:
    """``E1;<md5>`` in a .csv was read as the header of an empty one-column table: an
    empty list, exit 0, and the entry never checked."""
    p = tmp_path / "semi.csv"
    p.write_text(f"E1;{values[0]}\n")
    with pytest.raises(ListError, match="holds an entry, not a header"):
        load(p, signal="md5")


def test_a_text_list_that_is_not_utf8_names_the_line(tmp_path: Path, values: list[str]) -> None:
    p = tmp_path / "b.txt"
    p.write_bytes(f"{values[0]}\n{values[1]}\n".encode() + b"\xff\xfe" + values[2].encode() + b"\n")
    with pytest.raises(ListError, match=r"b\.txt: line 3: not UTF-8 text") as err:
        load(p, signal="md5")
    assert values[2] not in str(err.value)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("column", ["hash", "id", "category", "signal"])
def test_a_tabular_value_that_is_not_utf8_names_the_line(tmp_path: Path, values: list[str],
                                                          fmt: str, column: str) -> None:
    """Arrow's JSON and parquet readers take text as stored: bytes that are not UTF-8 were
    a traceback where the hash was parsed or an id cast to text, or, in an id column read
    as text, once a report named the entry after the scan."""
    rows = [{"hash": v.encode(), "id": f"E{i}".encode(), "category": b"A", "signal": b"md5"}
            for i, v in enumerate(values[:3])]
    rows[1][column] = rows[1][column][:-1] + b"\xff"
    p = tmp_path / f"b.{fmt}"
    if fmt == "jsonl":
        p.write_bytes(b"".join(b"{" + b", ".join(b'"%s": "%s"' % (k.encode(), v) for k, v in r.items())
                               + b"}\n" for r in rows))
    else:  # as written by a tool that does not check: string columns, or binary ids
        cols = {k: pa.array([r[k] for r in rows], pa.binary()) for k in rows[0]}
        pq.write_table(pa.table({k: c if k == "id" else c.view(pa.string())
                                 for k, c in cols.items()}), p)
    where = "line 2" if fmt == "jsonl" else "row 2"
    with pytest.raises(ListError, match=rf"b\.{fmt}: {where}: the .* is not UTF-8 text") as err:
        load(p)
    assert values[1][:16] not in str(err.value).lower()


@pytest.mark.parametrize("rows", [1, 5000])
def test_a_csv_that_is_not_utf8_names_the_line(tmp_path: Path, values: list[str], rows: int) -> None:
    """It said "cannot read as csv: UnicodeDecodeError" (or ArrowInvalid), no line named."""
    p = tmp_path / "b.csv"
    p.write_bytes(b"id,hash\n" + b"".join(b"E%d,%s\n" % (i, values[i % 3].encode()) for i in range(rows))
                  + b"E\xff," + values[3].encode() + b"\n")
    with pytest.raises(ListError, match=rf"b\.csv: line {rows + 2}: not UTF-8 text") as err:
        load(p, signal="md5")
    assert values[3] not in str(err.value)


def test_two_sidecars_are_refused(tmp_path: Path, values: list[str]) -> None:
    p = write_text_list(tmp_path / "two.txt", values[:2])
    (tmp_path / "two.txt.meta.toml").write_text('signal = "md5"\n')
    (tmp_path / "two.txt.meta.json").write_text('{"signal": "md5", "partner": "p"}')
    with pytest.raises(ConfigError, match=r"both a \.meta\.toml and a \.meta\.json"):
        load(p)
