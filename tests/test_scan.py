"""``datahygiene scan`` end to end through the CLI: planted matches found exactly,
nothing else excluded, fail-closed rows, and every output with its documented fields."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import hexes, rand_bytes, write_manifest, write_text_list

from datahygiene import __version__
from datahygiene.manifest import _relative
from datahygiene.step import EXCLUSION_SCHEMA

pytestmark = pytest.mark.usefixtures("core_only")


def read_ex(out: Path) -> dict[str, list[Any]]:
    return pq.read_table(out / "restricted" / "exclusions.parquet").to_pydict()


def decisions(out: Path) -> dict[str, str]:
    ex = read_ex(out)
    return dict(zip(ex["key"], ex["decision"], strict=True))


def scan_synth(cli, synth: dict[str, Any], out: Path, *extra: str):
    return cli("scan", "--manifest", synth["manifest"], "--list", f"md5={synth['lists']['md5']}",
               "--list", synth["lists"]["url-sha256"], "--out", out, "-q", *extra)


def test_planted_matches_found_exactly(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = scan_synth(cli, synth, out)
    assert "13 excluded" in res.output and "5 unverified" in res.output
    got = decisions(out)
    assert {k for k, d in got.items() if d == "excluded"} == set(synth["planted_keys"])
    assert {k for k, d in got.items() if d == "unverified"} == set(synth["malformed_keys"])
    ex = read_ex(out)
    for key, matches, reasons in zip(ex["key"], ex["matches"], ex["reasons"], strict=True):
        if key in synth["planted_keys"]:
            # each planted row matches the md5 list and the URL list, with opaque references
            assert sorted((m["signal"], m["list"]) for m in matches) == [
                ("md5", "synthetic/placeholder-md5@1"), ("url-sha256", "synthetic/placeholder-urls@1")]
            refs = {m["signal"]: m["entry_ref"] for m in matches}
            assert refs["md5"].startswith("line:") and refs["url-sha256"].startswith("U")
            assert all(m["distance"] == 0 for m in matches)
            assert reasons == ["md5:match", "url-sha256:match"]
        else:
            assert matches == [] and reasons == ["md5:null"]


def test_exclusions_schema_and_order(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan_synth(cli, synth, out)
    t = pq.read_table(out / "restricted" / "exclusions.parquet")
    assert t.schema.remove_metadata() == EXCLUSION_SCHEMA
    rows = list(zip(t.column("source_file").to_pylist(), t.column("row_index").to_pylist(), strict=True))
    assert rows == sorted(rows), "sorted by input file then row"
    # row_index points at the row within its file
    for src, idx, key in zip(t.column("source_file").to_pylist(), t.column("row_index").to_pylist(),
                             t.column("key").to_pylist(), strict=True):
        assert pq.read_table(src).column("key")[idx].as_py() == key


def test_summary_counts(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan_synth(cli, synth, out)
    s = json.loads((out / "summary.json").read_text())
    assert s["files"] == 3
    assert s["rows"] == {"scanned": 3000, "clean": 3000 - 13 - 5, "excluded": 13, "unverified": 5}
    assert s["lists"]["synthetic/placeholder-md5@1"] == {"signal": "md5", "entries": 400,
                                                         "matches": 13, "rows": 13}
    assert s["lists"]["synthetic/placeholder-urls@1"]["matches"] == 13
    assert s["reasons"] == {"md5:match": 13, "md5:null": 5, "url-sha256:match": 13}


def test_run_json_fields(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan_synth(cli, synth, out)
    run = json.loads((out / "run.json").read_text())
    assert run["tool"] == {"name": "datahygiene", "version": __version__}
    plugins = {(p["kind"], p["name"]): p for p in run["plugins"]}
    assert plugins[("signals", "md5")]["distribution"] == "datahygiene"
    assert plugins[("signals", "md5")]["version"] == __version__
    lists = {hl["id"]: hl for hl in run["lists"]}
    md5 = lists["synthetic/placeholder-md5@1"]
    assert (md5["partner"], md5["name"], md5["version"], md5["signal"]) == (
        "synthetic", "placeholder-md5", "1", "md5")
    assert md5["entries"] == 400 and md5["fingerprint"].startswith("sha256:")
    assert len(run["inputs"]) == 3
    for inp in run["inputs"]:
        p = Path(inp["path"])
        assert inp["digest"] == "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
        assert inp["rows"] == pq.ParquetFile(p).metadata.num_rows and inp["bytes"] == p.stat().st_size
    assert sum(i["rows"] for i in run["inputs"]) == 3000
    assert run["coverage"] == {"files": 3, "rows": 3000, "rows_scanned": 3000}
    assert run["config"]["key"] == "key"
    assert run["outputs"]["exclusions"]["rows"] == 18
    assert run["format"] == "datahygiene-run/2" and len(run["run_id"]) == 32
    timings = run["timings_s"]
    phases = ("load_lists", "read_footers", "build_index", "scan")
    assert set(timings) == {*phases, "total"} and all(timings[k] >= 0 for k in timings)
    assert sum(timings[k] for k in phases) <= timings["total"] + 0.005  # each rounded to 1 ms


def test_no_list_value_or_matched_data_in_public_outputs(cli, synth: dict[str, Any],
                                                         tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = scan_synth(cli, synth, out)
    public = (out / "run.json").read_text() + (out / "summary.json").read_text() + res.output
    entries = [ln.strip() for ln in Path(synth["lists"]["md5"]).read_text().splitlines()
               if ln.strip() and not ln.startswith("#")]
    assert not [e for e in entries if e in public]
    manifest = pq.read_table(synth["manifest"]).to_pydict()
    planted = set(synth["planted_keys"])
    for key, url in zip(manifest["key"], manifest["url"], strict=True):
        if key in planted:
            assert url not in public


def test_restricted_is_owner_only(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan_synth(cli, synth, out)
    r = out / "restricted"
    assert stat.S_IMODE(r.stat().st_mode) == 0o700
    files = [p for p in r.rglob("*") if p.is_file()]
    assert files
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    for d in [p for p in r.rglob("*") if p.is_dir()]:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]


def test_clean_files_follow_the_umask_restricted_ones_do_not(cli, synth: dict[str, Any],
                                                             tmp_path: Path) -> None:
    """What docs/curator.md says of permissions: clean/ is the releasable output and
    follows the umask; restricted/ is owner-only whatever it is."""
    out = tmp_path / "run"
    old = os.umask(0o027)
    try:
        scan_synth(cli, synth, out, "--write-clean")
    finally:
        os.umask(old)
    clean = sorted((out / "clean").glob("*.parquet"))
    assert clean and {stat.S_IMODE(p.stat().st_mode) for p in clean} == {0o640}
    assert stat.S_IMODE((out / "restricted" / "exclusions.parquet").stat().st_mode) == 0o600


def test_write_clean(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan_synth(cli, synth, out, "--write-clean")
    inputs = sorted(Path(synth["manifest"]).glob("*.parquet"))
    cleaned = sorted((out / "clean").glob("*.parquet"))
    assert [p.name for p in cleaned] == [p.name for p in inputs]
    flagged = set(synth["planted_keys"]) | set(synth["malformed_keys"])
    total = 0
    for src, dst in zip(inputs, cleaned, strict=True):
        a, b = pq.read_table(src), pq.read_table(dst)
        assert b.schema.equals(a.schema, check_metadata=False)
        want = a.filter(pa.array([k not in flagged for k in a.column("key").to_pylist()]))
        assert b.equals(want), f"{dst.name}: clean output is not the input minus flagged rows"
        total += b.num_rows
    assert total == 3000 - 18
    run = json.loads((out / "run.json").read_text())
    assert [c["rows"] for c in run["outputs"]["clean"]] == [
        pq.ParquetFile(p).metadata.num_rows for p in cleaned]


def test_keep_unverified_keeps_them_in_clean(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan_synth(cli, synth, out, "--write-clean", "--keep-unverified")
    keys = set(pq.read_table(out / "clean").column("key").to_pylist())
    assert set(synth["malformed_keys"]) <= keys
    assert not set(synth["planted_keys"]) & keys


def test_fail_closed_rows(cli, small_manifest: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("scan", "--manifest", small_manifest["path"], "--list", f"md5={small_manifest['list']}",
        "--out", out, "--write-clean", "-q")
    got = decisions(out)
    assert {k for k, d in got.items() if d == "excluded"} == small_manifest["excluded"]
    assert {k for k, d in got.items() if d == "unverified"} == small_manifest["unverified"]
    ex = read_ex(out)
    reasons = dict(zip(ex["key"], ex["reasons"], strict=True))
    assert reasons["k005"] == ["md5:null"]
    assert reasons["k008"] == ["md5:malformed"]
    assert reasons["k014"] == ["md5:wrong-length"]
    clean_keys = set(pq.read_table(out / "clean").column("key").to_pylist())
    flagged = small_manifest["excluded"] | small_manifest["unverified"]
    assert clean_keys == set(small_manifest["keys"]) - flagged


def test_key_option_and_default_file_row_key(cli, small_manifest: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "a"
    cli("scan", "--manifest", small_manifest["path"], "--list", f"md5={small_manifest['list']}",
        "--out", out, "--key", "url", "-q")
    ex = read_ex(out)
    assert set(ex["key"]) >= {"https://example.invalid/img/3.jpg", "https://example.invalid/img/11.jpg"}
    # without a key column the key is FILE:ROW
    t = pq.read_table(small_manifest["path"]).drop_columns(["key"])
    nokey = tmp_path / "nokey.parquet"
    pq.write_table(t, nokey)
    out = tmp_path / "b"
    cli("scan", "--manifest", nokey, "--list", f"md5={small_manifest['list']}", "--out", out, "-q")
    ex = read_ex(out)
    assert ex["key"][:2] == [f"{nokey}:3", f"{nokey}:5"]
    assert json.loads((out / "run.json").read_text())["config"]["key"] is None


def test_column_option_and_binary_hashes(cli, small_manifest: dict[str, Any], tmp_path: Path) -> None:
    raw = [bytes.fromhex(h) for h in small_manifest["md5"]]
    p = write_manifest(tmp_path / "bin" / "b.parquet",
                       {"id": [f"r{i}" for i in range(20)], "image_md5": pa.array(raw, pa.binary(16))})
    out = tmp_path / "run"
    cli("scan", "--manifest", p, "--list", f"md5={small_manifest['list']}", "--out", out,
        "--key", "id", "--column", "md5=image_md5", "-q")
    assert decisions(out) == {"r3": "excluded", "r11": "excluded"}
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["columns"] == {"md5": "image_md5"}
    assert run["signals"][0]["column"] == "image_md5"


def test_url_digest_list_reads_the_url_column(cli, tmp_path: Path) -> None:
    import hashlib

    urls = [f"https://example.invalid/u/{i}.png" for i in range(10)]
    urls[4] = "HTTPS://Example.INVALID:443/u/4.png#top"
    p = write_manifest(tmp_path / "m.parquet", {"key": [str(i) for i in range(10)], "url": urls})
    lst = write_text_list(tmp_path / "urls.txt", [
        hashlib.md5(b"https://example.invalid/u/4.png").hexdigest(),  # the normalised form of row 4
        hashlib.md5(urls[7].encode()).hexdigest(),
        hashlib.md5(b"https://example.invalid/U/9.png").hexdigest()])  # path case matters: no match
    out = tmp_path / "run"
    cli("scan", "--manifest", p, "--list", f"url-md5={lst}", "--out", out, "-q")
    assert decisions(out) == {"4": "excluded", "7": "excluded"}


def test_config_file_with_cli_overrides(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    cfg = tmp_path / "scan.toml"
    cfg.write_text(f"""
[scan]
manifest = ["{synth['manifest']}"]
out = "{tmp_path / 'from-config'}"
write_clean = true
batch_size = 100

[[lists]]
path = "{synth['lists']['md5']}"
partner = "cfg-partner"
name = "cfg-list"
version = "7"
""")
    cli("scan", "--config", cfg, "-q")
    run = json.loads((tmp_path / "from-config" / "run.json").read_text())
    assert [hl["id"] for hl in run["lists"]] == ["cfg-partner/cfg-list@7"]
    assert run["engine"]["batch_size"] == 100 and run["config"]["write_clean"]
    assert (tmp_path / "from-config" / "clean").is_dir()
    # command-line options win over the file
    out = tmp_path / "override"
    cli("scan", "--config", cfg, "--out", out, "--batch-size", "333", "--threads", "1", "-q")
    run = json.loads((out / "run.json").read_text())
    assert run["engine"] == {"name": "local", "threads": 1, "batch_size": 333}
    assert not (tmp_path / "from-config" / ".staging").exists()


def test_directory_glob_and_repeated_manifests(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    (Path(synth["manifest"]) / "README.txt").write_text("not parquet; ignored\n")
    nested = Path(synth["manifest"]) / "nested"
    nested.mkdir()
    os.replace(Path(synth["manifest"]) / "part-00002.parquet", nested / "part-00002.parquet")
    a, b = tmp_path / "a", tmp_path / "b"
    cli("scan", "--manifest", synth["manifest"], "--list", f"md5={synth['lists']['md5']}",
        "--out", a, "-q")
    cli("scan", "--manifest", f"{synth['manifest']}/part-0000[01].parquet",
        "--manifest", nested / "part-00002.parquet", "--list", f"md5={synth['lists']['md5']}",
        "--out", b, "-q")
    for out in (a, b):
        assert json.loads((out / "summary.json").read_text())["rows"]["scanned"] == 3000
    assert set(decisions(a).items()) == set(decisions(b).items())


def test_rerun_replaces_the_previous_run(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan_synth(cli, synth, out, "--write-clean")
    (out / "clean" / "stale.parquet").write_bytes(b"old")
    scan_synth(cli, synth, out, "--write-clean")
    assert not (out / "clean" / "stale.parquet").exists()
    assert len(list((out / "clean").glob("*.parquet"))) == 3


def test_rerun_without_reporters_leaves_no_stale_report(cli, synth: dict[str, Any],
                                                        tmp_path: Path) -> None:
    """A report stub describes one run: a rerun into the same OUT that writes none (or
    others) must not leave the previous run's stub to be filed by mistake."""
    out = tmp_path / "run"
    scan_synth(cli, synth, out)
    reports = out / "restricted" / "reports"
    assert any((reports / "cybertipline").iterdir())
    conf = tmp_path / "rep.toml"
    conf.write_text('[scan]\nreporters = ["summary"]\n')
    scan_synth(cli, synth, out, "--config", conf)
    assert not (reports / "cybertipline").exists()
    assert any((reports / "summary").iterdir())
    assert (reports.stat().st_mode & 0o777) == 0o700


def test_integer_key_column_and_same_named_inputs(cli, small_manifest: dict[str, Any],
                                                  tmp_path: Path) -> None:
    t = pq.read_table(small_manifest["path"])
    t = t.set_column(0, "key", pa.array(range(100, 120), pa.int64()))
    for sub in ("a", "b"):
        (tmp_path / "d" / sub).mkdir(parents=True)
        pq.write_table(t, tmp_path / "d" / sub / "x.parquet")
    out = tmp_path / "run"
    cli("scan", "--manifest", tmp_path / "d", "--list", f"md5={small_manifest['list']}", "--out", out,
        "--write-clean", "-q")
    ex = read_ex(out)
    assert ex["key"] == ["103", "105", "108", "111", "114"] * 2
    assert sorted(str(p.relative_to(out / "clean")) for p in (out / "clean").rglob("*.parquet")) == [
        "a/x.parquet", "b/x.parquet"]


@pytest.mark.parametrize("threads", [1, 2])
def test_binary_md5_manifest_with_nulls(cli, make_synth, tmp_path: Path, threads: int) -> None:
    truth = make_synth("bin", rows=2500, files=2, list_size=300, planted=11, malformed=4,
                       row_group_size=400, binary=True, seed=21)
    out = tmp_path / "run"
    cli("scan", "--manifest", truth["manifest"], "--list", f"md5={truth['lists']['md5']}",
        "--out", out, "--batch-size", "97", "--threads", str(threads), "-q")
    got = decisions(out)
    assert {k for k, d in got.items() if d == "excluded"} == set(truth["planted_keys"])
    assert {k for k, d in got.items() if d == "unverified"} == set(truth["malformed_keys"])


def test_a_file_named_twice_is_scanned_once(cli, synth: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    one_file = sorted(Path(synth["manifest"]).glob("*.parquet"))[0]
    out = tmp_path / "run"
    (tmp_path / "link").symlink_to(synth["manifest"])
    cli("scan", "--manifest", "./synth/manifest", "--manifest", str(one_file.relative_to(tmp_path)),
        "--manifest", one_file, "--manifest", "synth//manifest/", "--manifest", "link",
        "--list", f"md5={synth['lists']['md5']}", "--out", out, "--write-clean", "-q")
    run = json.loads((out / "run.json").read_text())
    assert run["coverage"]["rows"] == 3000 and len(run["inputs"]) == 3
    assert [i["path"] for i in run["inputs"]] == sorted(i["path"] for i in run["inputs"])
    assert sum(c["rows"] for c in run["outputs"]["clean"]) == 3000 - 18
    assert len({c["path"] for c in run["outputs"]["clean"]}) == 3


def test_a_file_below_its_directory_is_shown_as_relpath_shows_it() -> None:
    """The shortcut for files below the directory named (a walk's, a glob's) gives
    relpath's answer, and the other cases go to relpath itself."""
    for found, directory in [("/a/b/c.parquet", "/a"), ("/a/b/c.parquet", "/"), ("/a/b/c.parquet", "/a/"),
                             ("a/b/c", "a"), ("/a/./b/c", "/a"), ("/a//b/c", "/a"), ("/ab/c", "/a"),
                             ("/a/b", "/a/b/"), ("/a/b", "/a/b"), ("./x", "."), ("x/y", ""),
                             ("/a/b/../c", "/a"), ("/a/../c", "/a"), ("/a/b/", "/a"), ("/a/.h/c", "/a"),
                             ("/a/./c", "/a"), ("/a/b/.", "/a"), ("/a/", "/a")]:
        assert _relative(found, directory) == posixpath.relpath(found, directory or "."), (found, directory)


def test_inputs_that_would_share_a_clean_file_are_refused(cli, small_manifest: dict[str, Any],
                                                          tmp_path: Path) -> None:
    """``y.pq`` gets ``.parquet`` added to its clean name, which is ``y.pq.parquet``'s
    clean name too: the second file's rows would replace the first's without a word."""
    d = tmp_path / "coll"
    d.mkdir()
    for name in ("y.pq", "y.pq.parquet"):
        (d / name).write_bytes(Path(small_manifest["path"]).read_bytes())
    out = tmp_path / "run"
    args = ("scan", "--manifest", d, "--list", f"md5={small_manifest['list']}", "--out", out)
    res = cli(*args, "--write-clean", ok=False)
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "clean/y.pq.parquet" in res.output
    assert "y.pq and" in res.output and not out.exists()
    cli(*args, "-q")  # without --write-clean the two are two inputs, as before
    assert json.loads((out / "run.json").read_text())["coverage"]["rows"] == 40


def test_a_literal_path_with_glob_characters_is_not_a_pattern(cli, small_manifest: dict[str, Any],
                                                              tmp_path: Path) -> None:
    d = tmp_path / "shard[1]"
    d.mkdir()
    (d / "x.parquet").write_bytes(Path(small_manifest["path"]).read_bytes())
    out = tmp_path / "run"
    cli("scan", "--manifest", d, "--list", f"md5={small_manifest['list']}", "--out", out, "-q")
    run = json.loads((out / "run.json").read_text())
    assert [i["path"] for i in run["inputs"]] == [f"{d}/x.parquet"]


def test_lists_sharing_an_id_across_signals_are_counted_apart(cli, tmp_path: Path) -> None:
    """Two list files with the same name stem (so the same id), one md5 and one
    sha256: summary.json and the results table keep one entry per signal, each with
    its own entries, matches and rows."""
    md5 = [f"{i:032x}" for i in range(1, 21)]
    sha = [f"{i:064x}" for i in range(101, 121)]
    manifest = write_manifest(tmp_path / "m.parquet", {"key": [f"k{i:02d}" for i in range(20)],
                                                        "md5": md5, "sha256": sha})
    write_text_list(tmp_path / "a" / "list.txt", md5[:5])        # 5 entries, rows k00-k04
    write_text_list(tmp_path / "b" / "list.txt", sha[10:17])     # 7 entries, rows k10-k16
    res = cli("scan", "--manifest", manifest, "--list", f"md5={tmp_path / 'a' / 'list.txt'}",
              "--list", f"sha256={tmp_path / 'b' / 'list.txt'}", "--out", tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    lists = summary["lists"]
    assert len(lists) == 2, lists
    (md5_id,) = [k for k, v in lists.items() if v["signal"] == "md5"]
    (sha_id,) = [k for k, v in lists.items() if v["signal"] == "sha256"]
    assert md5_id.endswith(" (md5)") and sha_id.endswith(" (sha256)")
    assert (lists[md5_id]["entries"], lists[md5_id]["matches"], lists[md5_id]["rows"]) == (5, 5, 5)
    assert (lists[sha_id]["entries"], lists[sha_id]["matches"], lists[sha_id]["rows"]) == (7, 7, 7)
    assert summary["rows"]["excluded"] == 12
    assert md5_id in res.output and sha_id in res.output


def test_unsigned_rerun_over_a_signed_run_says_what_public_still_holds(cli, synth: dict[str, Any],
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("keys", "init", "--dir", tmp_path / "keys", "--name", "example.invalid/rerun")
    scan_synth(cli, synth, out, "--keys", tmp_path / "keys")
    res = scan_synth(cli, synth, out)
    assert "OUT/public/ still holds an earlier run's log, checkpoint, attestation.dsse.json" in res.output
    res = scan_synth(cli, synth, tmp_path / "fresh")
    assert "OUT/public/ has no log, checkpoint or attestation" in res.output


def _copy(src: Any, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(Path(src).read_bytes())
    return dst


def _clean_rows(out: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "clean").rglob("*.parquet"))


def test_a_path_through_dotdot_never_writes_outside_clean(cli, small_manifest: dict[str, Any],
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``../../data/p.parquet`` beside ``local.parquet``: the clean name was
    ``clean/../../data/p.parquet``, written outside clean/ (over the input itself, with
    enough ".."), and run.json still counted its rows."""
    data = _copy(small_manifest["path"], tmp_path / "data" / "p.parquet")
    before = data.read_bytes()
    work = tmp_path / "a" / "b"
    _copy(small_manifest["path"], work / "local.parquet")
    monkeypatch.chdir(work)
    out = tmp_path / "run"
    cli("scan", "--manifest", "../../data/p.parquet", "--manifest", "local.parquet",
        "--list", f"md5={small_manifest['list']}", "--out", out, "--write-clean", "-q")
    assert data.read_bytes() == before
    run = json.loads((out / "run.json").read_text())
    assert sorted(i["path"] for i in run["inputs"]) == ["../../data/p.parquet", "local.parquet"]
    names = sorted(c["path"] for c in run["outputs"]["clean"])
    assert names == ["clean/a/b/local.parquet", "clean/data/p.parquet"]
    assert _clean_rows(out) == sum(c["rows"] for c in run["outputs"]["clean"]) == 2 * (20 - 5)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")
                  if "restricted" not in p.parts) == names
    # an auditor holding copies finds "../../data/p.parquet" under --inputs-root, never outside it
    aud = tmp_path / "auditor"
    _copy(data, aud / "data" / "p.parquet")
    _copy(small_manifest["path"], aud / "local.parquet")
    res = cli("verify", out, "--inputs-root", aud, ok=False)
    assert "PASS  coverage: 2 input file(s)" in res.output, res.output


def test_a_symlinked_directory_and_dotdot_name_the_file_really_read(
        cli, small_manifest: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``linkdir/../x.parquet`` with ``linkdir -> sub/real`` reads ``sub/x.parquet``: it
    was shown as ``x.parquet``, so beside a real ``x.parquet`` two files shared one clean
    file (and run.json named the wrong one for the coverage check)."""
    t = pq.read_table(small_manifest["path"])
    (tmp_path / "sub" / "real").mkdir(parents=True)
    pq.write_table(t.slice(0, 10), tmp_path / "sub" / "x.parquet")
    pq.write_table(t.slice(10), tmp_path / "x.parquet")
    (tmp_path / "linkdir").symlink_to(tmp_path / "sub" / "real")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    cli("scan", "--manifest", "linkdir/../x.parquet", "--manifest", "x.parquet",
        "--list", f"md5={small_manifest['list']}", "--out", out, "--write-clean", "-q")
    run = json.loads((out / "run.json").read_text())
    assert sorted(i["path"] for i in run["inputs"]) == ["sub/x.parquet", "x.parquet"]
    assert sorted(c["path"] for c in run["outputs"]["clean"]) == ["clean/sub/x.parquet",
                                                                  "clean/x.parquet"]
    assert _clean_rows(out) == 20 - 5
    res = cli("verify", out, ok=False)
    assert "PASS  coverage" in res.output


def test_file_urls_and_hard_links_are_the_same_input(cli, small_manifest: dict[str, Any],
                                                     tmp_path: Path) -> None:
    src = _copy(small_manifest["path"], tmp_path / "hl" / "x.parquet")
    os.link(src, tmp_path / "hl" / "hard.parquet")
    out = tmp_path / "run"
    cli("scan", "--manifest", tmp_path / "hl", "--manifest", f"file://{src}",
        "--list", f"md5={small_manifest['list']}", "--out", out, "--write-clean", "-q")
    run = json.loads((out / "run.json").read_text())
    assert run["coverage"]["files"] == 1 and run["coverage"]["rows"] == 20, run["inputs"]
    assert [c["path"] for c in run["outputs"]["clean"]] == ["clean/x.parquet"]


def test_a_clean_file_named_like_another_inputs_directory_is_refused(
        cli, small_manifest: dict[str, Any], tmp_path: Path) -> None:
    _copy(small_manifest["path"], tmp_path / "e" / "y.pq")
    _copy(small_manifest["path"], tmp_path / "e" / "y.pq.parquet" / "z.parquet")
    out = tmp_path / "run"
    res = cli("scan", "--manifest", tmp_path / "e", "--list", f"md5={small_manifest['list']}",
              "--out", out, "--write-clean", ok=False)
    assert res.exit_code == 2 and "would be written below clean/y.pq.parquet" in res.output
    assert not out.exists()


def test_a_directory_is_walked_through_symlinked_directories(cli, small_manifest: dict[str, Any],
                                                             tmp_path: Path) -> None:
    d = tmp_path / "d"
    _copy(small_manifest["path"], d / "own.parquet")
    _copy(small_manifest["path"], tmp_path / "elsewhere" / "far.parquet")
    (d / "linked").symlink_to(tmp_path / "elsewhere")
    (d / "loop").symlink_to(d)  # a link to an ancestor must not loop
    out = tmp_path / "run"
    cli("scan", "--manifest", d, "--list", f"md5={small_manifest['list']}", "--out", out, "-q")
    run = json.loads((out / "run.json").read_text())
    assert sorted(Path(i["path"]).name for i in run["inputs"]) == ["far.parquet", "own.parquet"]


def test_a_file_under_a_linked_directory_is_named_by_its_real_path(
        cli, small_manifest: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``d/latest -> v2``: the walk met ``latest`` first (it sorts first) and named the
    files through the link, which may point elsewhere by the time an auditor looks."""
    _copy(small_manifest["path"], tmp_path / "d" / "v2" / "x.parquet")
    (tmp_path / "d" / "latest").symlink_to("v2")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    cli("scan", "--manifest", "d", "--list", f"md5={small_manifest['list']}", "--out", out, "-q")
    assert [i["path"] for i in json.loads((out / "run.json").read_text())["inputs"]] == [
        "d/v2/x.parquet"]


def test_a_fifo_named_like_parquet_is_refused_not_waited_on(cli, small_manifest: dict[str, Any],
                                                            tmp_path: Path) -> None:
    import threading

    d = tmp_path / "d"
    _copy(small_manifest["path"], d / "a.parquet")
    os.mkfifo(d / "z.parquet")
    done = threading.Event()

    def unblock() -> None:  # should the scan open the FIFO after all, it fails, not hangs
        if not done.wait(20):
            with open(d / "z.parquet", "wb"):
                pass

    threading.Thread(target=unblock, daemon=True).start()
    try:
        res = cli("scan", "--manifest", d, "--list", f"md5={small_manifest['list']}", "--out",
                  tmp_path / "run", ok=False)
    finally:
        done.set()
    assert res.exit_code == 3 and "z.parquet: not a regular file" in res.output


def test_a_fifo_named_as_the_manifest_is_not_a_regular_file(cli, small_manifest: dict[str, Any],
                                                            tmp_path: Path) -> None:
    """Named directly, it was 'manifest not found', though it is there."""
    os.mkfifo(tmp_path / "z.parquet")
    res = cli("scan", "--manifest", tmp_path / "z.parquet", "--list", f"md5={small_manifest['list']}",
              "--out", tmp_path / "run", ok=False)
    assert res.exit_code == 3 and "z.parquet: not a regular file" in res.output, res.output


def _with_unlistable_dir(small_manifest: dict[str, Any], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """``d/open/NAME`` and ``d/locked/b.parquet``, with listing ``d/locked`` failing as
    it does without permission (injected: the tests may run as root, who reads any
    directory)."""
    d = tmp_path / "d"
    _copy(small_manifest["path"], d / "open" / name)
    _copy(small_manifest["path"], d / "locked" / "b.parquet")
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return d


def test_an_unreadable_subdirectory_is_an_error_not_skipped(cli, small_manifest: dict[str, Any],
                                                            tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory walk used to skip a subdirectory it could not list: its files went
    unscanned and run.json's coverage was silently short. (The permission error is
    injected: the tests may run as root, who reads any directory.)"""
    d = _with_unlistable_dir(small_manifest, tmp_path, monkeypatch, "a.parquet")
    res = cli("scan", "--manifest", d, "--list", f"md5={small_manifest['list']}", "--out",
              tmp_path / "run", ok=False)
    assert res.exit_code == 3 and "locked: cannot list this directory" in res.output


def test_names_differing_only_in_unicode_form_are_refused_and_shown_apart(
        cli, small_manifest: dict[str, Any], tmp_path: Path) -> None:
    """``café`` composed and decomposed are one name on macOS: one clean file would
    replace the other there. The message shows the two spellings apart."""
    d = tmp_path / "u"
    _copy(small_manifest["path"], d / "caf\u00e9.parquet")
    _copy(small_manifest["path"], d / "cafe\u0301.parquet")
    res = cli("scan", "--manifest", d, "--list", f"md5={small_manifest['list']}", "--out",
              tmp_path / "run", "--write-clean", ok=False)
    assert res.exit_code == 2 and "\\xe9" in res.output and "\\u0301" in res.output


@pytest.mark.parametrize("pattern", ["**/*.parquet", "*/b.parquet"])
def test_a_glob_does_not_pass_over_an_unreadable_directory(cli, small_manifest: dict[str, Any],
                                                           tmp_path: Path, pattern: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The glob (fsspec's, as the OS's) skipped a directory it could not list, and the
    run's coverage was silently short. (The permission error is injected: the tests
    may run as root.)"""
    d = _with_unlistable_dir(small_manifest, tmp_path, monkeypatch, "b.parquet")
    res = cli("scan", "--manifest", f"{d}/{pattern}", "--list", f"md5={small_manifest['list']}",
              "--out", tmp_path / "run", ok=False)
    assert res.exit_code == 3 and "locked: cannot list this directory" in res.output
    # a pattern that cannot reach the directory does not look at it
    cli("scan", "--manifest", f"{d}/open/*.parquet", "--list", f"md5={small_manifest['list']}",
        "--out", tmp_path / "run2", "-q")


def test_nothing_a_run_writes_is_writable_by_others_whatever_the_umask(
        cli, synth: dict[str, Any], tmp_path: Path) -> None:
    """Under umask 000, OUT, public/ and public/log/ were created 0777: anyone could
    replace the evidence before it was published."""
    out = tmp_path / "run"
    keys = tmp_path / "keys"
    cli("keys", "init", "--dir", keys)
    old = os.umask(0)
    try:
        scan_synth(cli, synth, out, "--keys", keys, "--write-clean")
    finally:
        os.umask(old)
    dirs = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert all(not stat.S_IMODE(d.stat().st_mode) & 0o022 for d in dirs), [
        (str(d), oct(stat.S_IMODE(d.stat().st_mode))) for d in dirs]
    # nor any file: clean/ files (written by pyarrow) were 0666 under umask 000
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.parent.name == "clean" for p in files)
    assert all(not stat.S_IMODE(p.stat().st_mode) & 0o022 for p in files), [
        (str(p), oct(stat.S_IMODE(p.stat().st_mode))) for p in files
        if stat.S_IMODE(p.stat().st_mode) & 0o022]


def test_report_stubs_stay_well_formed_with_odd_urls_and_keys(cli, tmp_path: Path) -> None:
    """A control character in a matched URL made the XML stub unparsable; a "|" or a
    newline in a key split its row in summary.md."""
    import xml.dom.minidom

    md5 = hexes(rand_bytes(2, 16, seed=61))
    m = write_manifest(tmp_path / "m" / "x.parquet", {
        "key": ["k1", "k|2\nx"], "url": ["https://example.invalid/\u0001a.jpg",
                                        "https://example.invalid/b.jpg"], "md5": md5})
    lst = write_text_list(tmp_path / "l.txt", md5)
    out = tmp_path / "run"
    cli("scan", "--manifest", m.parent, "--list", f"md5={lst}", "--out", out, "-q")
    reports = out / "restricted" / "reports"
    xml.dom.minidom.parse(str(reports / "cybertipline" / "cybertipline-stub.xml"))
    rows = [ln for ln in (reports / "summary" / "summary.md").read_text().splitlines()
            if ln.startswith("| excluded")]
    assert len(rows) == 2 and all(ln.count(" | ") == 4 for ln in rows), rows


def _scan_written(cli, table: pa.Table, small_manifest: dict[str, Any], tmp_path: Path,
                  name: str) -> Path:
    """Write ``table`` as the only input (in a directory of its own) and scan it against
    the small manifest's list with --write-clean; the run's OUT."""
    p = tmp_path / "in" / name
    p.parent.mkdir()
    pq.write_table(table, p)
    out = tmp_path / "run"
    cli("scan", "--manifest", p, "--list", f"md5={small_manifest['list']}", "--out", out,
        "--write-clean", "-q")
    return out


def test_view_typed_columns_are_scanned_and_kept_in_clean(cli, small_manifest: dict[str, Any],
                                                          tmp_path: Path) -> None:
    """polars and DuckDB may write string_view / binary_view columns; pyarrow has no take
    or filter for them. Such a file is scanned like any other (it was 'may be corrupt'
    as soon as a row was flagged) and its clean file keeps the view types."""
    t = pq.read_table(small_manifest["path"])
    views = pa.table({name: col.cast(pa.string_view()) for name, col in zip(t.column_names, t.columns,
                                                                            strict=True)})
    views = views.append_column("blob", pa.array([b"x"] * views.num_rows, pa.binary_view()))
    out = _scan_written(cli, views, small_manifest, tmp_path, "v.parquet")
    got = decisions(out)
    assert {k for k, d in got.items() if d == "excluded"} == small_manifest["excluded"]
    assert {k for k, d in got.items() if d == "unverified"} == small_manifest["unverified"]
    clean = pq.read_table(out / "clean" / "v.parquet")
    assert clean.schema == views.schema
    flagged = small_manifest["excluded"] | small_manifest["unverified"]
    assert set(clean.column("key").to_pylist()) == set(small_manifest["keys"]) - flagged


def test_a_manifest_column_named_like_a_reason_column_is_data_not_reasons(
        cli, small_manifest: dict[str, Any], tmp_path: Path) -> None:
    """A transform says why a computed hash is missing in ``__reason__COLUMN``; a manifest
    column of that name is the user's data. It was read as reasons with --write-clean:
    its text replaced unverified rows' reason codes and reached the public summary.json."""
    t = pq.read_table(small_manifest["path"])
    t = t.append_column("__reason__md5", pa.array(["https://example.invalid/private.jpg"] * t.num_rows))
    out = _scan_written(cli, t, small_manifest, tmp_path, "m.parquet")
    reasons = dict(zip(*(read_ex(out)[c] for c in ("key", "reasons")), strict=True))
    assert reasons["k005"] == ["md5:null"] and reasons["k014"] == ["md5:wrong-length"]
    assert "example.invalid" not in (out / "summary.json").read_text()
    assert "__reason__md5" in pq.read_table(out / "clean" / "m.parquet").column_names


def test_the_unverified_line_counts_unverified_rows_and_says_where_they_went(cli, tmp_path: Path
                                                                             ) -> None:
    """Row a is excluded (md5 match) with a null URL; row b is unverified (null md5 and
    URL). The line counted url-sha256:null twice (summary.json counts every flagged row),
    and it said 'not in the clean output' under --keep-unverified too."""
    md5 = hexes(rand_bytes(2, 16, seed=21))
    p = write_manifest(tmp_path / "m.parquet", {"key": ["a", "b"], "md5": [md5[0], None],
                                                "url": pa.array([None, None], pa.string())})
    md5_list = write_text_list(tmp_path / "md5.txt", [md5[0]])
    url_list = write_text_list(tmp_path / "urls.txt", [hashlib.sha256(b"x").hexdigest()])
    args = ["scan", "--manifest", p, "--list", f"md5={md5_list}", "--list", f"url-sha256={url_list}",
            "--write-clean"]
    res = cli(*args, "--out", tmp_path / "a")
    assert ("unverified rows were not checked and are not in the clean output: md5:null (1), "
            "url-sha256:null (1)\n") in res.output
    res = cli(*args, "--out", tmp_path / "b", "--keep-unverified")
    assert "unverified rows were not checked and are kept in the clean output (--keep-unverified)" \
        in res.output
