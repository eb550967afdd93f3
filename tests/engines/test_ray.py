"""The Ray engine on a real local Ray runtime (one small module-scoped cluster):
outputs byte-identical to the local engine's, lists loaded once per worker, resume
across engines. Skipped when Ray (the ``ray`` extra) is not installed, and marked
slow: starting Ray and its actors takes most of a minute on a shared 2-core box
(``make test-ray`` installs the extra and runs them)."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datahygiene.resume import MARKER_LOG, read_markers

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

from datahygiene.config import ScanConfig  # noqa: E402
from datahygiene.lists.spec import ListSpec  # noqa: E402
from datahygiene.scan import run_scan  # noqa: E402

pytestmark = [pytest.mark.usefixtures("core_only"), pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def ray_runtime() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def outputs(out: Path) -> dict[str, str]:
    paths = [out / "summary.json", out / "restricted" / "exclusions.parquet",
             *sorted((out / "clean").glob("**/*.parquet"))]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in paths if p.exists()}


def config(manifest: Path | str, lists: dict[str, str], out: Path, **kw: Any) -> ScanConfig:
    return ScanConfig(manifests=[str(manifest)],
                      lists=[ListSpec(path=p, signal=s) for s, p in sorted(lists.items())],
                      out=str(out), **kw)


def both(manifest: Path | str, lists: dict[str, str], tmp: Path, **kw: Any) -> tuple[Any, Any]:
    local = run_scan(config(manifest, lists, tmp / "local", **kw))
    on_ray = run_scan(config(manifest, lists, tmp / "ray", engine="ray", **kw))
    return local, on_ray


@pytest.mark.parametrize("batch_size, keep_unverified", [(1000, False), (137, True)])
def test_ray_outputs_identical_to_local(synth: dict[str, Any], tmp_path: Path, batch_size: int,
                                        keep_unverified: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches that straddle row groups and files; clean output on and off unverified."""

    def no_read_back(*a: Any) -> None:
        raise AssertionError("the stub reporter read the inputs again")

    monkeypatch.setattr("datahygiene.reporters.cybertipline._read_rows", no_read_back)
    local, on_ray = both(synth["manifest"], synth["lists"], tmp_path, write_clean=True,
                         batch_size=batch_size, keep_unverified=keep_unverified)
    assert outputs(on_ray.out) == outputs(local.out)
    assert len(outputs(local.out)) == 2 + 3
    assert on_ray.summary["rows"]["excluded"] == 13 and on_ray.summary["rows"]["unverified"] == 5
    assert on_ray.run["engine"]["name"] == "ray"
    # the engine changes how a run goes, not what it found: same run id (and evidence basis)
    assert on_ray.run["run_id"] == local.run["run_id"]
    # the stub, built from the details the tasks captured (not read back): the same
    # bytes apart from the scan's start time
    for name in ("xml", "json"):
        rel = f"restricted/reports/cybertipline/cybertipline-stub.{name}"
        a, b = ((r.out / rel).read_bytes() for r in (local, on_ray))
        assert re.sub(rb'(incidentDateTime"?[>:] ?"?)[^<"]*', rb"\1", a) == \
            re.sub(rb'(incidentDateTime"?[>:] ?"?)[^<"]*', rb"\1", b)


def test_ray_file_row_keys_and_awkward_files(synth: dict[str, Any], tmp_path: Path) -> None:
    """No key column (keys are FILE:ROW, fixed on the driver), an input with no rows,
    and a manifest column named ``path`` (Ray's own name for file paths)."""
    src = tmp_path / "m"
    src.mkdir()
    for name in synth["files"]:
        t = pq.read_table(Path(synth["manifest"]) / name).drop_columns(["key"])
        t = t.append_column("path", pa.array(["p"] * t.num_rows))
        pq.write_table(t, src / name, row_group_size=400)
    pq.write_table(t.slice(0, 0), src / "part-00001b.parquet")  # sorts between two inputs
    local, on_ray = both(src, synth["lists"], tmp_path, write_clean=True, batch_size=500)
    assert outputs(on_ray.out) == outputs(local.out)
    keys = on_ray.exclusions.column("key").to_pylist()
    assert all(":" in k for k in keys) and len(keys) == 18


def test_ray_resumes_a_local_run(synth: dict[str, Any], tmp_path: Path) -> None:
    """Engine and batch size are not part of a run's identity: a run interrupted on
    one engine may finish on the other, with the same bytes."""
    full = run_scan(config(synth["manifest"], synth["lists"], tmp_path / "full", write_clean=True))
    out = tmp_path / "cut"
    seen = {"n": 0}

    def progress(n: int, flagged: int) -> None:
        seen["n"] += n
        if seen["n"] >= 1400:  # file 0 (1,000 rows) done, file 1 part-way
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scan(config(synth["manifest"], synth["lists"], out, write_clean=True, threads=1),
                 progress=progress)
    assert 0 in read_markers(out / ".work" / MARKER_LOG)
    resumed = run_scan(config(synth["manifest"], synth["lists"], out, write_clean=True,
                              engine="ray", resume=True, batch_size=300))
    assert outputs(resumed.out) == outputs(full.out)


def test_lists_loaded_once_per_worker(synth: dict[str, Any], tmp_path: Path) -> None:
    """Each Ray actor builds the index once, however many batches it checks. (Ray may
    start a later actor in a worker process an earlier one used: setups are counted per
    check object, which each actor unpickles for itself, not per process.)"""
    from datahygiene.engines.local import plan_tasks
    from datahygiene.engines.ray import ray_results
    from datahygiene.manifest import open_parquet, resolve_manifests, row_group_rows
    from datahygiene.plugins import default_registry
    from datahygiene.scan import build_plan, load_lists
    from datahygiene.step import Check, ScanPlan

    log = tmp_path / "setups.log"

    class CountingCheck(Check):
        def setup(self) -> None:
            if self._index is None:
                with open(log, "a") as fh:
                    fh.write(f"{os.getpid()}:{id(self)}\n")
            super().setup()

    cfg = config(synth["manifest"], synth["lists"], tmp_path / "o", engine="ray", batch_size=100)
    registry = default_registry()
    plan = build_plan(load_lists(cfg, registry), cfg, registry, "key")
    plan = ScanPlan([CountingCheck(c.signal, c.column, c.list_group) for c in plan.checks], "key")
    files = resolve_manifests(cfg.manifests)
    pfs = [open_parquet(f) for f in files]
    tasks = plan_tasks(files, [row_group_rows(p.metadata) for p in pfs])
    results = list(ray_results(tasks, plan, cfg))
    assert [r.task for r in results] == tasks
    assert sum(r.flagged.num_rows for r in results) == 18
    setups = log.read_text().split()
    batches = 3000 // 100
    assert len(setups) == len(set(setups)), f"a check object set up twice: {len(setups)} setups"
    assert len(setups) < batches // 3, f"{len(setups)} setups for {batches} batches"
    pids = {int(s.split(":")[0]) for s in setups}
    assert os.getpid() not in pids, "the driver built no index"


def test_ray_with_lists_from_the_store(synth: dict[str, Any], tmp_path: Path) -> None:
    """Workers open the list store themselves (named in the list's options, its key in a
    key file): the scan index's lists reach them, and the outputs equal the local engine's."""
    from datahygiene.plugins import default_registry
    from datahygiene.sources.files import FileListSource
    from datahygiene.store import ListStore
    from datahygiene.store.crypto import write_key_file
    from datahygiene.store.source import build_scan_index, hashlists_to_entries

    key = tmp_path / "store.key"
    write_key_file(key)
    store = ListStore.open(tmp_path / "store", create=True, key_ref={"file": str(key)})
    registry = default_registry()
    for sig, path in synth["lists"].items():
        lists = FileListSource().load(ListSpec(path=str(path), signal=sig), registry)
        store.write_snapshot(sig, hashlists_to_entries(lists), {}, scan_index=build_scan_index(registry))
        assert store.record(sig).get("scan_index")
    specs = [ListSpec(path=sig, signal=sig, source="store", options={"store": str(tmp_path / "store")})
             for sig in sorted(synth["lists"])]
    local = run_scan(ScanConfig(manifests=[str(synth["manifest"])], lists=specs, out=str(tmp_path / "l")))
    on_ray = run_scan(ScanConfig(manifests=[str(synth["manifest"])], lists=specs, out=str(tmp_path / "r"),
                                 engine="ray"))
    assert outputs(on_ray.out) == outputs(local.out)
    assert on_ray.summary["rows"]["excluded"] == 13
    assert [hl["source"] for hl in on_ray.run["lists"]] == [f"store:{s}@1" for s in sorted(synth["lists"])]


def test_a_worker_error_is_one_line_with_its_own_exit_code(synth: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """A corrupt row group read on a Ray worker was exit 1 with a Ray traceback; it is
    the same one-line input error (exit 3) as on the local engine."""
    from click.testing import CliRunner

    from datahygiene.cli import cli

    src = tmp_path / "m"
    src.mkdir()
    for name in synth["files"]:
        pq.write_table(pq.read_table(Path(synth["manifest"]) / name), src / name, row_group_size=300)
    victim = src / synth["files"][-1]
    chunk = pq.ParquetFile(victim).metadata.row_group(1).column(
        pq.ParquetFile(victim).schema_arrow.names.index("md5"))
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(victim.read_bytes())
    data[start: start + chunk.total_compressed_size] = os.urandom(chunk.total_compressed_size)
    victim.write_bytes(bytes(data))
    res = CliRunner().invoke(cli, ["scan", "--manifest", str(src), "--list",
                                   f"md5={synth['lists']['md5']}", "--out", str(tmp_path / "o"),
                                   "--engine", "ray", "-q"])
    assert res.exit_code == 3, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("datahygiene: error:")]
    assert len(lines) == 1 and "row group 1 cannot be read" in lines[0], res.output
    assert not (tmp_path / "o" / "run.json").exists()


def test_an_input_changed_before_a_ray_worker_reads_it_is_refused(
        synth: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state an input's footer was read in travels with its tasks: a worker that
    finds the file otherwise refuses it, as the local engine does (exit 3)."""
    import datahygiene.scan as scan
    from datahygiene.errors import InputError

    victim = Path(synth["manifest"]) / synth["files"][0]
    real = scan.plan_tasks

    def then_touch(*args: Any) -> Any:
        st = os.stat(victim)
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
        return real(*args)

    monkeypatch.setattr(scan, "plan_tasks", then_touch)
    # the workers' check alone: the input digests' own comparison is left out
    monkeypatch.setattr(scan.InputDigests, "expect", lambda self, states: None)
    with pytest.raises(InputError, match="changed while the scan read it"):
        run_scan(config(synth["manifest"], synth["lists"], tmp_path / "o", engine="ray"))
    assert not (tmp_path / "o" / "run.json").exists()


def test_an_unreachable_cluster_address_is_one_line_at_once(synth: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """ray.init waited minutes for an address that does not answer."""
    import socket
    import time

    from datahygiene.errors import ConfigError

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.shutdown()  # as a fresh process: not connected yet
    try:
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=f"--ray-address 127.0.0.1:{port}: cannot connect"):
            run_scan(config(synth["manifest"], synth["lists"], tmp_path / "o", engine="ray",
                            ray_address=f"127.0.0.1:{port}"))
        assert time.monotonic() - t0 < 30
    finally:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
