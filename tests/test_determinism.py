"""Same inputs and lists give byte-identical exclusions whatever the batch size,
thread count or the order the manifest files are named in."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from dhtest import core_registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datahygiene.config import ScanConfig
from datahygiene.lists.spec import ListSpec
from datahygiene.scan import EXCLUSIONS, run_scan
from datahygiene.synth import SynthSpec, write_synthetic

pytestmark = pytest.mark.usefixtures("core_only")

BATCHES = [1, 7, 1000, None]
COUNTER = itertools.count()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("det")
    truth = write_synthetic(base / "in", SynthSpec(rows=700, files=3, list_size=200, planted=17,
                                                   malformed=6, row_group_size=90, url_list=True,
                                                   seed=3))
    files = sorted(str(p) for p in (base / "in" / "manifest").glob("*.parquet"))
    return {"base": base, "truth": truth, "files": files, "reg": core_registry()}


def scan(data: dict[str, Any], manifests: list[str], batch: int | None, threads: int,
         write_clean: bool = False) -> dict[str, str]:
    out = data["base"] / f"out{next(COUNTER)}"
    cfg = ScanConfig(manifests=manifests,
                     lists=[ListSpec(path=data["truth"]["lists"]["md5"]),
                            ListSpec(path=data["truth"]["lists"]["url-sha256"])],
                     out=str(out), threads=threads, write_clean=write_clean)
    if batch is not None:
        cfg.batch_size = batch
    run_scan(cfg, registry=data["reg"])
    digests = {"exclusions": hashlib.sha256((out / EXCLUSIONS).read_bytes()).hexdigest(),
               "summary": hashlib.sha256((out / "summary.json").read_bytes()).hexdigest()}
    for p in sorted((out / "clean").glob("*.parquet")) if write_clean else []:
        digests[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def reference(data: dict[str, Any]) -> dict[str, str]:
    return scan(data, data["files"], None, 1, write_clean=True)


@pytest.mark.parametrize(("batch", "threads"), list(itertools.product(BATCHES, [1, 2])))
def test_batch_size_and_threads_do_not_change_outputs(data: dict[str, Any], reference: dict[str, str],
                                                      batch: int | None, threads: int) -> None:
    assert scan(data, data["files"], batch, threads, write_clean=True) == reference


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations([0, 1, 2]), batch=st.sampled_from(BATCHES), threads=st.sampled_from([1, 2]),
       as_dir=st.booleans())
def test_file_order_does_not_change_exclusions(data: dict[str, Any], reference: dict[str, str],
                                               order: list[int], batch: int | None, threads: int,
                                               as_dir: bool) -> None:
    manifests = [data["files"][i] for i in order]
    if as_dir:  # the directory and the files named one by one are the same input
        manifests = [str(Path(data["files"][0]).parent)]
    got = scan(data, manifests, batch, threads)
    assert got["exclusions"] == reference["exclusions"]
    assert got["summary"] == reference["summary"]


def test_run_id_is_stable(data: dict[str, Any]) -> None:
    import json

    ids = []
    for threads in (1, 2):
        out = data["base"] / f"rid{threads}"
        cfg = ScanConfig(manifests=data["files"], lists=[ListSpec(path=data["truth"]["lists"]["md5"])],
                         out=str(out), threads=threads)
        run_scan(cfg, registry=data["reg"])
        ids.append(json.loads((out / "run.json").read_text())["run_id"])
    assert ids[0] == ids[1]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["hit", "miss", "null", "bad"]),
                          st.sampled_from(["lower", "upper", "padded"])), min_size=1, max_size=60),
       st.sampled_from([1, 5, 64]), st.sampled_from([1, 2]))
def test_decisions_match_a_row_by_row_oracle(tmp_path_factory: pytest.TempPathFactory,
                                             rows: list[tuple[str, str]], batch: int, threads: int) -> None:
    """Random manifests of listed, unlisted, null and malformed hashes in any spelling:
    the scan's decisions equal what a plain Python loop over the rows says."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dhtest import hexes, rand_bytes, write_text_list

    base = tmp_path_factory.mktemp("oracle")
    listed = hexes(rand_bytes(8, 16, seed=len(rows)))
    unlisted = hexes(rand_bytes(len(rows), 16, seed=1000 + len(rows)))
    col: list[str | None] = []
    want: dict[str, str] = {}
    for i, (kind, spelling) in enumerate(rows):
        v: str | None = {"hit": listed[i % 8], "miss": unlisted[i], "null": None, "bad": "g" * 32}[kind]
        if v is not None and spelling == "upper":
            v = v.upper()
        elif v is not None and spelling == "padded":
            v = f" {v}\t"
        col.append(v)
        if kind == "hit":
            want[f"r{i}"] = "excluded"
        elif kind in ("null", "bad"):
            want[f"r{i}"] = "unverified"
    pq.write_table(pa.table({"key": [f"r{i}" for i in range(len(rows))], "md5": pa.array(col, pa.string())}),
                   base / "m.parquet", row_group_size=7)
    lst = write_text_list(base / "l.txt", listed)
    cfg = ScanConfig(manifests=[str(base / "m.parquet")], lists=[ListSpec(path=str(lst), signal="md5")],
                     out=str(base / "out"), batch_size=batch, threads=threads)
    res = run_scan(cfg, registry=core_registry())
    got = dict(zip(res.exclusions.column("key").to_pylist(), res.exclusions.column("decision").to_pylist(),
                   strict=True))
    assert got == want
    assert res.summary["rows"]["clean"] == len(rows) - len(want)


def test_options_given_with_their_default_value_keep_the_run_id(cli, synth: dict[str, Any],
                                                               tmp_path: Path) -> None:
    """The run id (and what --resume compares) follows the configuration in force, not
    how it was spelled: ``--column md5=md5`` names the column read anyway, and a config's
    ``[columns]`` entry for a signal with no list is unused. Before, both changed the id.
    A column that does change what is read still changes it."""
    base = ["scan", "--manifest", synth["manifest"], "--list", f"md5={synth['lists']['md5']}", "-q"]
    config = tmp_path / "c.toml"
    config.write_text('[columns]\nurl-sha256 = "URL"\n')

    def run_id(name: str, *extra: Any) -> str:
        cli(*base, "--out", tmp_path / name, *extra)
        return json.loads((tmp_path / name / "run.json").read_text())["run_id"]

    plain = run_id("plain")
    assert run_id("explicit", "--column", "md5=md5", "--batch-size", "262144", "--threads", "0",
                  "--input-digest", "sha256", "--on-bad-entry", "fail", "--engine", "local") == plain
    assert run_id("config", "--config", config) == plain
    renamed = tmp_path / "renamed"
    for f in sorted(Path(synth["manifest"]).glob("*.parquet")):
        t = pq.read_table(f)
        write = t.append_column("digest", t.column("md5"))
        renamed.mkdir(exist_ok=True)
        pq.write_table(write, renamed / f.name)
    cli("scan", "--manifest", renamed, "--list", f"md5={synth['lists']['md5']}", "-q",
        "--out", tmp_path / "other", "--column", "md5=digest")
    cli("scan", "--manifest", renamed, "--list", f"md5={synth['lists']['md5']}", "-q",
        "--out", tmp_path / "same")
    other = json.loads((tmp_path / "other" / "run.json").read_text())["run_id"]
    same = json.loads((tmp_path / "same" / "run.json").read_text())["run_id"]
    assert other != same


def test_signal_options_given_with_their_default_value_keep_the_run_id(
        cli, synth: dict[str, Any], tmp_path: Path) -> None:
    """``[scan.options.url-sha256] normalization = "basic"`` is what a scan does without
    it: run.json and the run id record only options in force (those a signal declares
    in ``option_defaults`` are dropped at their default). Another value changes both."""
    base = ["scan", "--manifest", synth["manifest"], "--list", f"md5={synth['lists']['md5']}",
            "--list", f"url-sha256={synth['lists']['url-sha256']}", "-q"]

    def run(name: str, options: str) -> dict[str, Any]:
        config = tmp_path / f"{name}.toml"
        config.write_text(options)
        cli(*base, "--out", tmp_path / name, "--config", config)
        return dict(json.loads((tmp_path / name / "run.json").read_text()))

    plain = run("plain", "")
    spelled = run("spelled", '[scan.options.url-sha256]\nnormalization = "basic"\nprecomputed = false\n')
    assert spelled["run_id"] == plain["run_id"] and "options" not in spelled["config"]
    assert spelled["signals"] == plain["signals"]
    other = run("other", '[scan.options.url-sha256]\nnormalization = "none"\n')
    assert other["run_id"] != plain["run_id"]
    assert other["config"]["options"] == {"url-sha256": {"normalization": "none"}}
