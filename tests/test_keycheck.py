"""Row keys: ``--check-keys`` refuses a run where a flagged row's key also names another
row (two img2dataset runs both numbered from 000000000), null keys are counted from
the footers, and ``verify --released`` says why an untouched clean/ fails by key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import hexes, rand_bytes, write_manifest, write_text_list

pytestmark = pytest.mark.usefixtures("core_only")


@pytest.fixture
def two_runs(tmp_path: Path) -> dict[str, Any]:
    """Two manifests keyed 000..039 each; rows 3 and 11 of ``a`` are in the list, so
    keys 003 and 011 also name clean rows of ``b``."""
    md5 = hexes(rand_bytes(80, 16, seed=11))
    keys = [f"{i:03d}" for i in range(40)]
    a = write_manifest(tmp_path / "m" / "a" / "part.parquet", {"key": keys, "md5": md5[:40]},
                       row_group_size=16)
    b = write_manifest(tmp_path / "m" / "b" / "part.parquet", {"key": keys, "md5": md5[40:]},
                       row_group_size=16)
    lst = write_text_list(tmp_path / "list.txt", [md5[3], md5[11]])
    return {"a": a, "b": b, "list": lst, "dir": tmp_path / "m"}


def scan(cli, d: dict[str, Any], out: Path, *extra: str, ok: bool = True):
    return cli("scan", "--manifest", d["dir"], "--list", f"md5={d['list']}", "--out", out, "-q",
               *extra, ok=ok)


def test_a_flagged_key_shared_with_another_row_is_refused(cli, two_runs: dict[str, Any],
                                                          tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = scan(cli, two_runs, out, "--check-keys", ok=False)
    assert res.exit_code == 3
    assert ("key column 'key' is not unique: 2 more row(s) carry the key of an excluded or "
            "unverified row (2 input(s) hold such keys)") in res.output
    assert "003" not in res.output and "011" not in res.output  # keys of matched rows stay restricted
    assert not (out / "run.json").exists()
    # the way on is said once: a new --key (which --resume would refuse), or this key kept
    assert "--resume --no-check-keys" in res.output and "kept in" not in res.output
    scan(cli, two_runs, out, "--resume", "--no-check-keys")
    assert json.loads((out / "run.json").read_text())["key"]["flagged_keys_unique"] is None


def test_unique_keys_and_file_row_keys_pass_the_check(cli, two_runs: dict[str, Any],
                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan(cli, two_runs, out, "--check-keys", "--key", "")  # FILE:ROW names each row once
    assert json.loads((out / "run.json").read_text())["key"]["column"] is None
    # unique keys: one manifest alone
    cli("scan", "--manifest", two_runs["a"], "--list", f"md5={two_runs['list']}", "--out", out,
        "-q", "--check-keys")
    run = json.loads((out / "run.json").read_text())
    assert run["key"] == {"column": "key", "null_rows": 0, "flagged_keys_unique": True}
    assert "check_keys" in run["timings_s"]


def test_the_check_is_off_by_default_and_on_with_keys(cli, two_runs: dict[str, Any],
                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan(cli, two_runs, out)
    assert json.loads((out / "run.json").read_text())["key"]["flagged_keys_unique"] is None
    keydir = tmp_path / "keys"
    cli("keys", "init", "--dir", keydir)
    res = scan(cli, two_runs, out, "--keys", keydir, ok=False)
    assert res.exit_code == 3 and "is not unique" in res.output
    scan(cli, two_runs, out, "--keys", keydir, "--no-check-keys")


def test_verify_says_why_an_untouched_clean_output_fails(cli, two_runs: dict[str, Any],
                                                         tmp_path: Path) -> None:
    out, keydir = tmp_path / "run", tmp_path / "keys"
    cli("keys", "init", "--dir", keydir)
    scan(cli, two_runs, out, "--keys", keydir, "--no-check-keys", "--write-clean")
    res = cli("verify", out, "--released", out / "clean", "--hmac-key", keydir / "hmac.key", ok=False)
    assert res.exit_code == 7
    assert "2 of them are in files byte-identical to this run's clean outputs" in res.output
    assert "--check-keys" in res.output


def test_verify_of_a_re_encoded_release_says_the_keys_were_not_checked(
        cli, two_runs: dict[str, Any], tmp_path: Path) -> None:
    out, keydir = tmp_path / "run", tmp_path / "keys"
    cli("keys", "init", "--dir", keydir)
    scan(cli, two_runs, out, "--keys", keydir, "--no-check-keys", "--write-clean")
    release = tmp_path / "release"
    release.mkdir()
    for i, p in enumerate(sorted((out / "clean").rglob("*.parquet"))):
        pq.write_table(pq.read_table(p), release / f"{i}.parquet", row_group_size=7,
                       compression="gzip")
    res = cli("verify", out, "--released", release, "--hmac-key", keydir / "hmac.key", ok=False)
    assert res.exit_code == 7 and "2 released row(s) are excluded" in res.output
    assert "did not check that its flagged rows' keys name no other row" in res.output


def test_null_keys_without_footer_statistics_are_said_to_be_uncounted(cli, tmp_path: Path) -> None:
    md5 = hexes(rand_bytes(30, 16, seed=13))
    m = tmp_path / "m.parquet"
    pq.write_table(pa.table({"key": [None if i % 7 == 0 else f"k{i}" for i in range(30)], "md5": md5}),
                   m, write_statistics=False)
    lst = write_text_list(tmp_path / "list.txt", [md5[1]])
    out = tmp_path / "run"
    res = cli("scan", "--manifest", m, "--list", f"md5={lst}", "--out", out)
    assert json.loads((out / "run.json").read_text())["key"]["null_rows"] is None
    assert "were not counted: the inputs' footers have no statistics" in res.output


def test_null_keys_are_counted_and_noted(cli, tmp_path: Path) -> None:
    md5 = hexes(rand_bytes(30, 16, seed=12))
    keys = [None if i % 7 == 0 else f"k{i}" for i in range(30)]
    m = write_manifest(tmp_path / "m.parquet", {"key": keys, "md5": md5}, row_group_size=8)
    lst = write_text_list(tmp_path / "list.txt", [md5[0], md5[5]])  # row 0 has no key
    out = tmp_path / "run"
    res = cli("scan", "--manifest", m, "--list", f"md5={lst}", "--out", out, "--check-keys")
    run = json.loads((out / "run.json").read_text())
    assert run["key"] == {"column": "key", "null_rows": 5, "flagged_keys_unique": True}
    assert "note: 5 row(s) have no key (column 'key' is null there)" in res.output


def test_an_empty_input_does_not_make_null_keys_uncounted(cli, tmp_path: Path) -> None:
    """img2dataset writes an empty shard when every download of it failed; its one row
    group has no null count, and that made the whole run's null_rows None."""
    md5 = hexes(rand_bytes(30, 16, seed=14))
    keys = [None if i % 7 == 0 else f"k{i}" for i in range(30)]
    m = write_manifest(tmp_path / "m" / "a.parquet", {"key": keys, "md5": md5})
    write_manifest(tmp_path / "m" / "b.parquet", {"key": pa.array([], pa.string()),
                                                  "md5": pa.array([], pa.string())})
    lst = write_text_list(tmp_path / "list.txt", [md5[1]])
    out = tmp_path / "run"
    res = cli("scan", "--manifest", m.parent, "--list", f"md5={lst}", "--out", out)
    assert json.loads((out / "run.json").read_text())["key"]["null_rows"] == 5
    assert "note: 5 row(s) have no key" in res.output


@pytest.mark.parametrize("keep_unverified", [False, True])
def test_a_key_shared_by_two_flagged_rows_is_refused(cli, two_runs: dict[str, Any], tmp_path: Path,
                                                     keep_unverified: bool) -> None:
    """Key 003 excluded in one input and unverified in the other: with --keep-unverified
    the unverified row is released, and an auditor checking the release by key could not
    tell it from the excluded one. The check passed it (only clean rows were counted),
    and run.json said flagged_keys_unique: true."""
    t = pq.read_table(two_runs["b"])
    md5 = t.column("md5").to_pylist()
    md5[3] = None
    keys = [k if i == 3 else f"b{k}" for i, k in enumerate(t.column("key").to_pylist())]
    pq.write_table(pa.table({"key": keys, "md5": md5}), two_runs["b"])  # shares 003 alone
    out = tmp_path / "run"
    res = scan(cli, two_runs, out, "--check-keys", "--key", "key", "--write-clean",
               *(["--keep-unverified"] if keep_unverified else []), ok=False)
    assert res.exit_code == 3, res.output
    assert "not unique: 1 more row(s)" in res.output
