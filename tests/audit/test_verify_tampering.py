"""verify against a sceptical auditor's tampering: releases that hide an excluded row
(a new key, no key, a file not named .parquet), a substituted HMAC key, edited
records, inputs moved to another machine, a release published apart from the run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import Cli

from datahygiene.audit.keys import init_keys
from datahygiene.config import ScanConfig
from datahygiene.lists.spec import ListSpec
from datahygiene.scan import run_scan
from datahygiene.synth import SynthSpec, write_synthetic


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("tamper")
    truth = write_synthetic(base / "in", SynthSpec(rows=1200, files=2, list_size=200, planted=6,
                                                   malformed=2, row_group_size=300, seed=11))
    manifest = (base / "in" / "manifest").resolve()  # absolute paths in run.json
    init_keys(base / "keys", "example.invalid/tamper-test")
    init_keys(base / "other", "example.invalid/other")
    run_scan(ScanConfig(manifests=[str(manifest)], lists=[ListSpec(path=str(truth["lists"]["md5"]))],
                        out=str(base / "run"), write_clean=True, keys=str(base / "keys"), key="key"))
    table = pa.concat_tables([pq.read_table(p) for p in sorted(manifest.glob("*.parquet"))])
    planted = table.filter(pa.compute.is_in(table.column("key"), pa.array(truth["planted_keys"])))
    return {"base": base, "run": base / "run", "keys": base / "keys", "other": base / "other",
            "manifest": manifest, "planted": planted}


def verify(cli: Cli, out: Path, *extra: str | Path, ok: bool = True) -> str:
    res = cli("verify", out, *extra, ok=False)
    assert (res.exit_code == 0) == ok, res.output
    if not ok:
        assert res.exit_code == 7, res.output
    assert "Traceback" not in res.output
    return str(res.output)


def release_with(world: dict[str, Any], tmp: Path, key: str | None, name: str | None = None) -> Path:
    """The clean outputs, with one planted (excluded) row put back under ``key``, in
    place of a clean row (so the row count still balances), in a file called ``name``."""
    released = tmp / "released"
    shutil.copytree(world["run"] / "clean", released)
    f = sorted(released.glob("*.parquet"))[0]
    t = pq.read_table(f)
    back = world["planted"].slice(0, 1).select(t.schema.names).cast(t.schema)
    back = back.set_column(0, "key", pa.array([key], pa.string()))
    pq.write_table(pa.concat_tables([t.slice(1), back]), f)
    if name:
        f.rename(f.with_name(name))
    return released


def test_rekeyed_row_passes_only_as_a_key_only_check(world: dict[str, Any], cli: Cli,
                                                     tmp_path: Path) -> None:
    released = release_with(world, tmp_path, "zz-fresh-key")
    out = verify(cli, world["run"], "--released", released, "--hmac-key", world["keys"] / "hmac.key")
    # a changed key cannot be seen by commitments; the pass says exactly what it rests on
    assert "1 of 2 released file(s) are byte-identical" in out
    assert "checked by key only (a row whose key was changed is not detected there)" in out
    untouched = tmp_path / "untouched"
    shutil.copytree(world["run"] / "clean", untouched)
    out = verify(cli, world["run"], "--released", untouched, "--hmac-key", world["keys"] / "hmac.key")
    assert "all 2 released file(s) are byte-identical to this run's attested clean outputs" in out


def test_row_without_a_key_fails(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    released = release_with(world, tmp_path, None)
    out = verify(cli, world["run"], "--released", released, "--hmac-key", world["keys"] / "hmac.key",
                 ok=False)
    assert "FAIL  released: 1 released row(s) have no key" in out


def test_another_hmac_key_fails(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    released = release_with(world, tmp_path, None)
    out = verify(cli, world["run"], "--released", released, "--hmac-key", world["other"] / "hmac.key",
                 ok=False)
    assert "is not the HMAC key this run's log was built with" in out


def test_parquet_under_another_name_is_read_and_other_files_named(world: dict[str, Any], cli: Cli,
                                                                   tmp_path: Path) -> None:
    released = release_with(world, tmp_path, world["planted"].column("key")[0].as_py(), "more.parq.bak")
    out = verify(cli, world["run"], "--released", released, "--hmac-key", world["keys"] / "hmac.key",
                 ok=False)
    assert "FAIL  released: 1 released row(s) are excluded" in out
    clean = tmp_path / "clean-with-card"
    shutil.copytree(world["run"] / "clean", clean)
    (clean / "README.md").write_text("# a dataset card\n")
    out = verify(cli, world["run"], "--released", clean, "--hmac-key", world["keys"] / "hmac.key")
    assert "1 file(s) that are not parquet were not read: README.md" in out


@pytest.mark.parametrize("edit", [
    lambda run, summary: run.pop("run_id"),
    lambda run, summary: run["evidence"].pop("log"),
    lambda run, summary: run["inputs"][0].pop("digest"),
    lambda run, summary: run["evidence"]["log"].__setitem__("run_start", "0"),
    lambda run, summary: summary["rows"].__setitem__("excluded", "6"),
    # a count of leaves no machine could hold: a FAIL, not a MemoryError traceback
    lambda run, summary: run["evidence"]["log"].__setitem__("run_leaves", 10**15),
])
def test_edited_records_fail_without_a_traceback(world: dict[str, Any], cli: Cli, tmp_path: Path,
                                                edit: Any) -> None:
    out = tmp_path / "run"
    shutil.copytree(world["run"], out)
    run = json.loads((out / "run.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    edit(run, summary)
    (out / "run.json").write_text(json.dumps(run))
    (out / "summary.json").write_text(json.dumps(summary))
    text = verify(cli, out, "--inputs-root", world["base"], ok=False)
    assert "FAIL" in text


def test_record_that_is_not_an_object_fails(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(world["run"], out)
    (out / "run.json").write_text("[1, 2]")
    assert "FAIL  run-record: run.json is not a JSON object" in verify(cli, out, ok=False)


def test_absolute_inputs_found_under_inputs_root(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    copies = tmp_path / "auditor" / "inputs"
    shutil.copytree(world["manifest"], copies / "manifest")
    out = verify(cli, world["run"], "--inputs-root", copies)
    assert f"PASS  coverage: 2 input file(s) (read under {copies})" in out
    first = sorted((copies / "manifest").glob("*.parquet"))[0]
    t = pq.read_table(first)
    pq.write_table(t.slice(1), first)
    out = verify(cli, world["run"], "--inputs-root", copies, ok=False)
    assert "digest or size differs from run.json" in out


def test_release_published_apart_from_the_run(world: dict[str, Any], cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "published"
    shutil.copytree(world["run"], out, ignore=shutil.ignore_patterns("restricted", "clean"))
    text = verify(cli, out, "--released", world["run"] / "clean", "--hmac-key",
                  world["keys"] / "hmac.key", "--inputs-root", world["base"])
    assert "2 clean output(s): no clean/ here, not checked" in text
    assert "PASS  released" in text


def test_a_run_record_stripped_of_its_evidence_is_not_called_unsigned(world: dict[str, Any], cli: Cli,
                                                                       tmp_path: Path) -> None:
    """With run.json's evidence removed, verify said the run 'was not signed', although a
    signed checkpoint, log and attestation sat beside it."""
    out = tmp_path / "run"
    shutil.copytree(world["run"], out)
    run = json.loads((out / "run.json").read_text())
    del run["evidence"]
    (out / "run.json").write_text(json.dumps(run))
    text = verify(cli, out, ok=False)
    assert "run.json says this run was not signed, but OUT holds a signed public/checkpoint" in text


def test_hmac_key_without_released_is_refused(world: dict[str, Any], cli: Cli) -> None:
    """It was accepted and ignored: a wrong key went unnoticed and verify passed."""
    res = cli("verify", world["run"], "--hmac-key", world["keys"] / "hmac.key", ok=False)
    assert res.exit_code == 2 and "--hmac-key is used with --released" in res.output


def test_an_input_entry_without_its_path_is_a_malformed_record(world: dict[str, Any], cli: Cli,
                                                                tmp_path: Path) -> None:
    """The coverage check reads the inputs several at a time; an entry it cannot read
    for want of a field is still the record's fault, said as such, not an input's."""
    out = tmp_path / "run"
    shutil.copytree(world["run"], out)
    run = json.loads((out / "run.json").read_text())
    del run["inputs"][1]["path"]
    (out / "run.json").write_text(json.dumps(run))
    text = verify(cli, out, ok=False)
    assert "FAIL  coverage: run.json / summary.json / evidence is malformed: KeyError (field 'path')" in text
