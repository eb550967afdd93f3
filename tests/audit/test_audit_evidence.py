"""End to end: a keyed scan's evidence verifies, every tamper fails, nothing leaks,
the root is deterministic and the log grows consistently across runs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import Cli

from datahygiene.audit import merkle
from datahygiene.audit.keys import init_keys, load_keydir
from datahygiene.audit.log import read_log
from datahygiene.config import ScanConfig
from datahygiene.errors import ConfigError, OutputError
from datahygiene.lists.spec import ListSpec
from datahygiene.scan import run_scan
from datahygiene.synth import SynthSpec, write_synthetic


def scan(truth: dict[str, Any], out: Path, keys: Path | None, lists: tuple[str, ...] = ("md5", "url-sha256"),
         **kw: Any) -> dict[str, Any]:
    cfg = ScanConfig(manifests=[str(truth["manifest"])],
                     lists=[ListSpec(path=str(truth["lists"][s])) for s in lists],
                     out=str(out), write_clean=True, keys=str(keys) if keys else None, **kw)
    return run_scan(cfg).run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("audit")
    truth = write_synthetic(base / "in", SynthSpec(rows=2400, files=3, list_size=300, planted=11,
                                                   malformed=4, row_group_size=300, url_list=True, seed=5))
    truth["manifest"] = base / "in" / "manifest"
    init_keys(base / "keys", "example.invalid/audit-test")
    scan(truth, base / "run", base / "keys")
    manifest = pa.concat_tables([pq.read_table(p) for p in sorted(truth["manifest"].glob("*.parquet"))])
    planted = manifest.filter(pa.compute.is_in(manifest.column("key"), pa.array(truth["planted_keys"])))
    return {"base": base, "truth": truth, "keys": base / "keys", "run": base / "run", "planted": planted}


def verify(cli: Cli, out: Path, *extra: str | Path, ok: bool = True) -> Any:
    res = cli("verify", out, *extra, ok=False)
    assert (res.exit_code == 0) == ok, res.output
    if not ok:
        assert res.exit_code == 7, res.output
    return res


def test_keys_init_is_owner_only_and_never_overwrites(tmp_path: Path, cli: Cli) -> None:
    res = cli("keys", "init", "--dir", tmp_path / "k")
    assert "public key: datahygiene.invalid/log/" in res.output
    for name in ("hmac.key", "signing.key"):
        assert stat.S_IMODE(os.stat(tmp_path / "k" / name).st_mode) == 0o600
    assert (tmp_path / "k" / "signing.pub").read_text().count("+") >= 2
    res = cli("keys", "init", "--dir", tmp_path / "k", ok=False)
    assert res.exit_code == ConfigError.exit_code
    os.chmod(tmp_path / "k" / "hmac.key", 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_keydir(tmp_path / "k")


def test_clean_run_verifies(world: dict[str, Any], cli: Cli) -> None:
    res = verify(cli, world["run"], "--released", world["run"] / "clean", "--hmac-key",
                 world["keys"] / "hmac.key", "--public-key", world["keys"] / "signing.pub")
    lines = res.output.splitlines()
    for name in ("checkpoint-signature", "log-root", "log-run", "attestation", "coverage", "released"):
        assert any(line.startswith("PASS") and f" {name}:" in line for line in lines), name
    assert not any(line.startswith("FAIL") for line in lines)
    run = json.loads((world["run"] / "run.json").read_text())
    assert run["evidence"]["log"]["size"] == 11 + 4


def _flip_hex_in_leaf(out: Path) -> None:
    seg = next((out / "public/log").glob("leaves-*.jsonl"))
    data = bytearray(seg.read_bytes())
    i = data.index(b"hmac-sha256:") + 20
    data[i] = ord("0") if data[i] != ord("0") else ord("1")
    seg.write_bytes(bytes(data))


def _drop_leaf(out: Path) -> None:
    seg = next((out / "public/log").glob("leaves-*.jsonl"))
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(lines[:3] + lines[4:]))


def _flip_checkpoint_root(out: Path) -> None:
    p = out / "public/checkpoint"
    lines = p.read_text().split("\n")
    root = bytearray(base64.b64decode(lines[2]))
    root[0] ^= 1
    lines[2] = base64.b64encode(bytes(root)).decode()
    p.write_text("\n".join(lines))


def _flip_signature(out: Path) -> None:
    p = out / "public/checkpoint"
    text = p.read_text()
    head, _, sig = text.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 1
    p.write_text(f"{head} {base64.b64encode(bytes(raw)).decode()}\n")


def _flip_run_json(out: Path) -> None:
    p = out / "run.json"
    data = bytearray(p.read_bytes())
    i = data.index(b'"rows_scanned": ') + len(b'"rows_scanned": ')
    data[i] = ord("9") if data[i] != ord("9") else ord("8")
    p.write_bytes(bytes(data))


def _flip_run_json_timing(out: Path) -> None:
    p = out / "run.json"
    data = bytearray(p.read_bytes())
    i = data.index(b'"finished_at": "') + len(b'"finished_at": "') + 3
    data[i] = ord("0") if data[i] != ord("0") else ord("1")
    p.write_bytes(bytes(data))


def _lower_summary_count(out: Path) -> None:
    p = out / "summary.json"
    s = json.loads(p.read_text())
    s["rows"]["excluded"] -= 1
    s["rows"]["clean"] += 1
    p.write_text(json.dumps(s, indent=2, sort_keys=True) + "\n")


def _flip_attestation(out: Path) -> None:
    p = out / "public/attestation.dsse.json"
    env = json.loads(p.read_text())
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["subject"][0]["digest"]["sha256"] = "0" * 64
    env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    p.write_text(json.dumps(env))


def _replace_clean_file(out: Path) -> None:
    p = next((out / "clean").glob("*.parquet"))
    t = pq.read_table(p)
    pq.write_table(t.slice(1), p)


def _edit_card(out: Path) -> None:
    p = out / "public/croissant-rai.json"
    p.write_text(p.read_text().replace("excluded", "exc1uded", 1))


def _shrink_archived_checkpoint(out: Path) -> None:
    arch = next((out / "public/log/checkpoints").iterdir())
    text = arch.read_text()
    assert "\n15\n" in text
    arch.write_text(text.replace("\n15\n", "\n14\n", 1))


TAMPERS = {
    "leaf-byte": (_flip_hex_in_leaf, "log-root"),
    "drop-leaf": (_drop_leaf, "log-root"),
    "checkpoint-byte": (_flip_checkpoint_root, "checkpoint-signature"),
    "signature-byte": (_flip_signature, "checkpoint-signature"),
    "run-json-byte": (_flip_run_json, "attestation"),
    "run-json-timing-byte": (_flip_run_json_timing, "attestation"),
    "summary-count": (_lower_summary_count, "attestation"),
    "attestation-subject": (_flip_attestation, "attestation"),
    "clean-file": (_replace_clean_file, "attestation"),
    "croissant-card": (_edit_card, "attestation"),
    "archived-checkpoint": (_shrink_archived_checkpoint, "log-history"),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_every_tamper_fails(world: dict[str, Any], cli: Cli, tmp_path: Path, tamper: str) -> None:
    out = tmp_path / "run"
    shutil.copytree(world["run"], out)
    verify(cli, out)  # the untouched copy verifies
    change, check = TAMPERS[tamper]
    change(out)
    res = verify(cli, out, "--public-key", world["keys"] / "signing.pub", ok=False)
    assert any(line.startswith("FAIL") and f" {check}:" in line for line in res.output.splitlines()), \
        res.output


def test_coverage_with_relative_inputs(world: dict[str, Any], cli: Cli, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Input paths recorded relative to where the scan ran resolve under --inputs-root;
    a changed input fails coverage."""
    shutil.copytree(world["truth"]["manifest"], tmp_path / "data" / "manifest")
    monkeypatch.chdir(tmp_path / "data")
    truth = {**world["truth"], "manifest": Path("manifest")}
    scan(truth, tmp_path / "run", world["keys"])
    monkeypatch.chdir(tmp_path)
    res = verify(cli, tmp_path / "run")  # relative paths do not resolve from here: not checked
    assert "SKIP  coverage: none of the 3 input file(s) is at the path run.json names" in res.output
    assert "not checked, so not proved: consistency, coverage, released" in res.output
    # an --inputs-root that lacks them: a failure (the auditor said where the inputs are)
    res = verify(cli, tmp_path / "run", "--inputs-root", tmp_path, ok=False)
    assert "FAIL  coverage: manifest/part-00000.parquet: cannot read" in res.output
    verify(cli, tmp_path / "run", "--inputs-root", tmp_path / "data")
    first = tmp_path / "data/manifest/part-00000.parquet"
    t = pq.read_table(first)
    pq.write_table(t.slice(0, t.num_rows - 1), first)
    res = verify(cli, tmp_path / "run", "--inputs-root", tmp_path / "data", ok=False)
    assert "FAIL  coverage: manifest/part-00000.parquet: digest or size differs" in res.output


def test_reinserted_row_in_released_manifest_fails(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    released = tmp_path / "released"
    shutil.copytree(world["run"] / "clean", released)
    f = sorted(released.glob("*.parquet"))[0]
    t = pq.read_table(f)
    back = world["planted"].slice(0, 1).select(t.schema.names).cast(t.schema)
    pq.write_table(pa.concat_tables([t, back]), f)
    res = verify(cli, world["run"], "--released", released, "--hmac-key", world["keys"] / "hmac.key",
                 ok=False)
    assert "FAIL  released: 1 released row(s) are excluded" in res.output
    # without the HMAC key the check cannot run, and says so as a failure
    res = verify(cli, world["run"], "--released", released, ok=False)
    assert "FAIL  released: --released needs --hmac-key" in res.output


def test_nothing_planted_reaches_public_outputs(world: dict[str, Any]) -> None:
    planted = world["planted"].to_pydict()
    needles: set[bytes] = set()
    for key, url, md5 in zip(planted["key"], planted["url"], planted["md5"], strict=True):
        raw = bytes.fromhex(md5)
        url_digest = hashlib.sha256(url.encode()).digest()
        needles |= {key.encode(), url.encode(), md5.lower().encode(), md5.upper().encode(), raw,
                    base64.b64encode(raw), url_digest.hex().encode(), url_digest,
                    base64.b64encode(url_digest)}
    needles.add((world["keys"] / "hmac.key").read_text().strip().split(":", 1)[1].encode())
    out = world["run"]
    public = [p for p in out.rglob("*") if p.is_file() and "restricted" not in p.relative_to(out).parts]
    assert any(p.name == "checkpoint" for p in public) and any(p.suffix == ".jsonl" for p in public)
    for p in public:
        data = p.read_bytes()
        for n in needles:
            assert n not in data, f"{p.relative_to(out)} holds a planted value"
    # the clean manifest holds none of the planted rows either
    for p in (out / "clean").glob("*.parquet"):
        keys = set(pq.read_table(p, columns=["key"]).column("key").to_pylist())
        assert not keys & set(planted["key"])
    # ... and the restricted stub does point at them (so the test above is not vacuous)
    stub = (out / "restricted/reports/cybertipline/cybertipline-stub.xml").read_bytes()
    assert all(u.encode() in stub for u in planted["url"])


def test_cybertipline_stub(world: dict[str, Any]) -> None:
    d = world["run"] / "restricted/reports/cybertipline"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for f in d.iterdir():
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    root = ET.parse(d / "cybertipline-stub.xml").getroot()
    planted = world["planted"].to_pydict()
    inc = root.find("report/incidentSummary")
    assert inc is not None and inc.findtext("incidentType", "").startswith("Child Pornography")
    assert inc.findtext("incidentDateTime")
    web = root.find("report/internetDetails/webPageIncident")
    assert web is not None
    assert sorted(u.text or "" for u in web.findall("url")) == sorted(planted["url"])
    assert web.findtext("thirdPartyHostedContent") == "true"
    person = root.find("report/reporter/reportingPerson")
    assert person is not None and all(not (e.text or "").strip() for e in person)
    files = root.findall("files/fileDetails")
    assert len(files) == len(planted["key"])
    md5_by_url = dict(zip(planted["url"], planted["md5"], strict=True))
    for fd in files:
        assert fd.findtext("fileViewedByEsp") == "false"
        hashes = fd.findall("originalFileHash")
        want = [("MD5", md5_by_url[fd.findtext("locationOfFile") or ""])]
        assert [(h.get("hashType"), h.text) for h in hashes] == want
    twin = json.loads((d / "cybertipline-stub.json").read_text())
    assert len(twin["fileDetails"]) == len(files)
    assert "report.reporter.reportingPerson.email" in twin["_toComplete"]
    assert "retention" in (world["run"] / "restricted/reports/summary/summary.md").read_text().lower() or \
        "records policy" in (world["run"] / "restricted/reports/summary/summary.md").read_text()


def test_root_is_deterministic_across_threads_and_batches(world: dict[str, Any], tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    scan(world["truth"], a, world["keys"], threads=1, batch_size=97)
    scan(world["truth"], b, world["keys"], threads=2, batch_size=5000)
    for rel in ("public/checkpoint", "public/log/leaves-000000000000.jsonl"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes() == (world["run"] / rel).read_bytes()


def test_log_grows_across_runs_and_stays_consistent(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan(world["truth"], out, world["keys"], lists=("md5",))
    first = tmp_path / "checkpoint.1"
    shutil.copy(out / "public/checkpoint", first)
    size1 = len(read_log(out / "public/log"))
    # a rerun with the same inputs and lists adds nothing
    scan(world["truth"], out, world["keys"], lists=("md5",))
    assert (out / "public/checkpoint").read_bytes() == first.read_bytes()
    # a list update (here: a second list) is a new run; its leaves are appended
    scan(world["truth"], out, world["keys"])
    leaves = read_log(out / "public/log")
    assert len(leaves) == size1 + 11 + 4
    assert sorted(p.name for p in (out / "public/log").glob("leaves-*")) == \
        ["leaves-000000000000.jsonl", f"leaves-{size1:012d}.jsonl"]
    res = verify(cli, out, "--previous", first, "--public-key", world["keys"] / "signing.pub")
    assert "PASS  consistency" in res.output and "PASS  log-history: 2 archived" in res.output
    res = cli("log", "consistency", out, "--previous", first)
    proof = json.loads(res.output)
    assert proof["verified"] and (proof["size1"], proof["size2"]) == (size1, len(leaves))
    assert merkle.verify_consistency(size1, len(leaves), [base64.b64decode(p) for p in proof["proof"]],
                                     base64.b64decode(proof["root1"]), base64.b64decode(proof["root2"]))
    # a rewritten earlier segment is caught by verify and refused by the next scan
    seg = out / "public/log/leaves-000000000000.jsonl"
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(lines[1:] + lines[:1]))
    res = verify(cli, out, "--previous", first, ok=False)
    assert "FAIL  log-root" in res.output and "FAIL  consistency" in res.output
    with pytest.raises(OutputError, match="refusing to append"):
        scan(world["truth"], out, world["keys"], lists=("md5",), threads=1)


def test_consistency_rejects_a_shrunk_log(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    big, small = tmp_path / "big", tmp_path / "small"
    scan(world["truth"], big, world["keys"], lists=("md5",))
    scan(world["truth"], big, world["keys"])
    scan(world["truth"], small, world["keys"], lists=("md5",))
    res = verify(cli, small, "--previous", big / "public/checkpoint", ok=False)
    assert "FAIL  consistency" in res.output and "leaves were removed" in res.output


def test_log_prove(world: dict[str, Any], cli: Cli) -> None:
    key = world["truth"]["planted_keys"][0]
    res = cli("log", "prove", world["run"], key, "--hmac-key", world["keys"] / "hmac.key")
    p = json.loads(res.output)
    assert json.loads(p["leaf"])["decision"] == "excluded" and p["verified"] is True  # as documented
    assert merkle.verify_inclusion(p["leaf_index"], p["tree_size"], merkle.leaf_hash(p["leaf"].encode()),
                                   [base64.b64decode(x) for x in p["proof"]], base64.b64decode(p["root"]))
    res = cli("log", "prove", world["run"], "not-a-flagged-key", "--hmac-key", world["keys"] / "hmac.key",
              ok=False)
    assert res.exit_code == 7 and "has no leaf" in res.output


def test_log_prove_with_another_hmac_key_says_so(world: dict[str, Any], cli: Cli,
                                                 tmp_path: Path) -> None:
    """With the wrong key every row looks absent: an auditor was told an excluded row
    'has no leaf in this log'."""
    other = tmp_path / "other"
    cli("keys", "init", "--dir", other)
    key = world["truth"]["planted_keys"][0]
    res = cli("log", "prove", world["run"], key, "--hmac-key", other / "hmac.key", ok=False)
    assert res.exit_code == 7 and "is not the HMAC key this run's log was built with" in res.output


def test_scan_without_keys_writes_everything_else(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    t = world["truth"]
    res = cli("scan", "--manifest", t["manifest"], "--list", t["lists"]["md5"], "--out", tmp_path / "o", "-q")
    assert "no evidence was signed" in res.output  # click's runner mixes stderr into output
    out = tmp_path / "o"
    assert (out / "run.json").exists() and (out / "restricted/exclusions.parquet").exists()
    assert (out / "public/croissant-rai.json").exists()
    assert not (out / "public/checkpoint").exists() and not (out / "public/log").exists()
    res = verify(cli, out, ok=False)
    assert "FAIL  evidence: this run was not signed" in res.output


def test_scan_cli_with_keys_and_croissant(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    t = world["truth"]
    res = cli("scan", "--manifest", t["manifest"], "--list", t["lists"]["md5"], "--out", tmp_path / "o",
              "--keys", world["keys"], "--write-clean", "-q")
    assert "no evidence was signed" not in res.output
    card = json.loads((tmp_path / "o/public/croissant-rai.json").read_text())
    assert "rai:dataPreprocessingProtocol" in card and card["prov:wasDerivedFrom"]
    clean = json.loads((tmp_path / "o/run.json").read_text())["outputs"]["clean"]
    assert {d["sha256"] for d in card["distribution"]} == {c["sha256"].split(":")[1] for c in clean}
    res = cli("scan", "--manifest", t["manifest"], "--list", t["lists"]["md5"], "--out", tmp_path / "p",
              "--keys", tmp_path / "nokeys", "-q", ok=False)
    assert res.exit_code == ConfigError.exit_code and not (tmp_path / "p" / "run.json").exists()


def test_published_without_restricted_and_kept_unverified(world: dict[str, Any], cli: Cli,
                                                           tmp_path: Path) -> None:
    """An auditor usually gets OUT without restricted/; and with --keep-unverified the
    unverified rows are released, which the released check must allow."""
    out = tmp_path / "o"
    scan(world["truth"], out, world["keys"], keep_unverified=True)
    shutil.rmtree(out / "restricted")
    res = verify(cli, out, "--released", out / "clean", "--hmac-key", world["keys"] / "hmac.key")
    assert "restricted/exclusions.parquet not readable here, not checked" in res.output
    assert "released + 11 withheld = 2400 scanned rows" in res.output
    # its unverified leaves are released: "none in the log" would not be true
    assert "none excluded in the log (this run kept its unverified rows" in res.output


def test_released_check_of_a_file_row_keyed_run(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    """Without a key column the release is checked file by file against the attested
    clean outputs: a re-inserted row or a missing file fails, no HMAC key is needed."""
    keyless = tmp_path / "keyless"
    keyless.mkdir()
    for p in sorted(world["truth"]["manifest"].glob("*.parquet")):
        pq.write_table(pq.read_table(p).drop_columns(["key"]), keyless / p.name)
    truth = dict(world["truth"], manifest=keyless)
    out = tmp_path / "o"
    run = scan(truth, out, world["keys"])
    assert run["config"]["key"] is None
    res = verify(cli, out, "--released", out / "clean", "--public-key", world["keys"] / "signing.pub")
    assert "PASS  released: rows keyed FILE:ROW: the 3 released file(s) are byte-identical" in res.output
    assert "released 2385 + 15 withheld = 2400 scanned rows" in res.output

    released = tmp_path / "released"
    shutil.copytree(out / "clean", released)
    first = sorted(released.glob("*.parquet"))[0]
    table = pq.read_table(first)
    source = pq.read_table(sorted(keyless.glob("*.parquet"))[0])
    pq.write_table(pa.concat_tables([table, source.slice(0, 1).cast(table.schema)]), first)
    res = verify(cli, out, "--released", released, ok=False)
    assert f"FAIL  released: {first}: not byte-identical to any clean output of this run" in res.output

    shutil.copy(out / "clean" / first.name, first)
    sorted(released.glob("*.parquet"))[-1].unlink()
    res = verify(cli, out, "--released", released, ok=False)
    assert "a clean output is missing from the release" in res.output


def test_a_log_that_cannot_be_extended_is_refused_before_the_scan(world: dict[str, Any], cli: Cli,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A signed run into an OUT whose log another key signed used to read every input
    first and fail only at the commit; no input is read now."""
    t = world["truth"]
    out = tmp_path / "o"
    cli("scan", "--manifest", t["manifest"], "--list", t["lists"]["md5"], "--out", out,
        "--keys", world["keys"], "-q")
    other = tmp_path / "other-keys"
    cli("keys", "init", "--dir", other)
    import datahygiene.scan as scan_mod

    def no_read(*a: Any, **k: Any) -> Any:
        raise AssertionError("an input was read before the log was checked")

    monkeypatch.setattr(scan_mod, "run_task", no_read)
    res = cli("scan", "--manifest", t["manifest"], "--list", t["lists"]["md5"], "--out", out,
              "--keys", other, "-q", ok=False)
    assert res.exit_code == 6 and "not signed by these keys" in res.output


def test_a_released_key_shared_by_an_excluded_and_a_kept_unverified_row_fails(
        world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    """Two inputs share key K1: excluded in one, unverified (kept, --keep-unverified) in the
    other, the key check turned off. The log holds two leaves of one commitment; the
    released check let the key pass (the last leaf, the kept unverified one, decided), so
    a release holding the excluded row itself passed too."""
    rng = np.random.default_rng(3)
    md5 = [bytes(r).hex() for r in rng.integers(0, 256, (4, 16), dtype=np.uint8)]
    m = tmp_path / "m"
    m.mkdir()
    pq.write_table(pa.table({"key": ["K1", "A2"], "md5": md5[:2]}), m / "a.parquet")
    pq.write_table(pa.table({"key": ["K1", "B2"], "md5": [None, md5[3]]}), m / "b.parquet")
    lst = tmp_path / "list.txt"
    lst.write_text(md5[0] + "\n")
    out = tmp_path / "o"
    run_scan(ScanConfig(manifests=[str(m)], lists=[ListSpec(path=str(lst), signal="md5")],
                        out=str(out), write_clean=True, keys=str(world["keys"]),
                        keep_unverified=True, check_keys=False))
    assert "K1" in pq.read_table(out / "clean" / "b.parquet").column("key").to_pylist()
    res = verify(cli, out, "--released", out / "clean", "--hmac-key", world["keys"] / "hmac.key",
                 ok=False)
    assert "1 released row(s) are excluded or unverified in this run's log" in res.output
