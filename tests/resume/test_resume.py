"""Crash-safe resume: a scan killed with SIGKILL at several points and resumed with
``--resume`` writes the same bytes as an uninterrupted run; resuming against other
lists, inputs or configuration is refused."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from datahygiene.config import ScanConfig
from datahygiene.errors import ConfigError, InputError
from datahygiene.lists.spec import ListSpec
from datahygiene.resume import MARKER_LOG, FileRecord, read_markers
from datahygiene.scan import run_scan

pytestmark = pytest.mark.usefixtures("core_only")

FILES = 6
ROWS = 36_000  # 6 files x 6,000 rows, row groups of 1,500


def outputs(out: Path) -> dict[str, str]:
    """Digest of every output the issue requires to be identical (run.json holds timings)."""
    paths = [out / "summary.json", out / "restricted" / "exclusions.parquet",
             *sorted((out / "clean").glob("*.parquet"))]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def scan_args(synth: dict[str, Any], out: Path, *extra: str) -> list[str]:
    return ["scan", "--manifest", str(synth["manifest"]), "--list", f"md5={synth['lists']['md5']}",
            "--list", f"url-sha256={synth['lists']['url-sha256']}", "--out", str(out),
            "--write-clean", "-q", "--threads", "1", "--batch-size", "500", *extra]


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATAHYGIENE_PLUGINS": ""}
    return subprocess.run([sys.executable, "-c", "from datahygiene.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def finished(out: Path) -> dict[int, FileRecord]:
    """The inputs the work area in ``out`` records as finished."""
    return read_markers(out / ".work" / MARKER_LOG)


def kill_after(args: list[str], out: Path, markers: int) -> int:
    """Start a real scan process and SIGKILL it once ``markers`` inputs are recorded
    finished (0: as soon as its work area exists). Returns the markers seen."""
    env = {**os.environ, "DATAHYGIENE_PLUGINS": ""}
    proc = subprocess.Popen([sys.executable, "-c", "from datahygiene.cli import main; main()", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    log = out / ".work" / MARKER_LOG
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            n = len(read_markers(log))
            if n >= markers and (out / ".work" / "state.json").exists():
                break
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the scan finished before it could be killed"
    return len(read_markers(log))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from datahygiene.synth import SynthSpec, write_synthetic

    root = tmp_path_factory.mktemp("resume")
    truth = write_synthetic(root / "s", SynthSpec(rows=ROWS, files=FILES, list_size=2000, planted=30,
                                                  malformed=9, row_group_size=1500, url_list=True,
                                                  seed=5))
    truth["manifest"] = root / "s" / "manifest"
    base = root / "baseline"
    res = run_cli(scan_args(truth, base))
    assert res.returncode == 0, res.stderr
    truth["baseline"] = outputs(base)
    truth["root"] = root
    return truth


@pytest.mark.parametrize("markers", [0, 2, 4])
def test_sigkill_then_resume_is_byte_identical(data: dict[str, Any], markers: int) -> None:
    out = data["root"] / f"killed-{markers}"
    seen = kill_after(scan_args(data, out), out, markers)
    assert not (out / "run.json").exists(), "a killed run must not look complete"
    assert seen >= markers and seen < FILES
    # what a crash leaves is private: the work area holds pointers to matched rows
    assert (out / ".work").stat().st_mode & 0o077 == 0
    res = run_cli(scan_args(data, out, "--resume"))
    assert res.returncode == 0, res.stderr
    assert outputs(out) == data["baseline"]
    assert not (out / ".work").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["coverage"]["rows_scanned"] == ROWS
    ex = pq.read_table(out / "restricted" / "exclusions.parquet")
    pairs = list(zip(ex.column("source_file").to_pylist(), ex.column("row_index").to_pylist(),
                     strict=True))
    assert len(pairs) == len(set(pairs)) == 30 + 9, "a row lost or duplicated"
    clean_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "clean").glob("*.parquet"))
    assert clean_rows == ROWS - 39


def test_killed_twice_then_resumed(data: dict[str, Any]) -> None:
    """A resumed run that is itself killed resumes again from its own markers."""
    out = data["root"] / "twice"
    first = kill_after(scan_args(data, out), out, 1)
    second = kill_after(scan_args(data, out, "--resume"), out, first + 2)
    assert second >= first + 2
    res = run_cli(scan_args(data, out, "--resume"))
    assert res.returncode == 0, res.stderr
    assert outputs(out) == data["baseline"]


# ---- in-process: an interrupted run (Ctrl-C) and what --resume refuses ----------------

def config(synth: dict[str, Any], out: Path, **kw: Any) -> ScanConfig:
    return ScanConfig(manifests=[str(synth["manifest"])],
                      lists=[ListSpec(path=synth["lists"]["md5"], signal="md5")],
                      out=str(out), write_clean=True, threads=1, **kw)


def interrupt_after(cfg: ScanConfig, rows: int) -> None:
    seen = {"n": 0}

    def progress(n: int, flagged: int) -> None:
        seen["n"] += n
        if seen["n"] >= rows:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scan(cfg, progress=progress)


@pytest.fixture
def small(make_synth: Any) -> dict[str, Any]:
    return make_synth("small", rows=4000, files=4, list_size=300, planted=8, malformed=3,
                      row_group_size=500, seed=3, url_list=True)


def test_ctrl_c_keeps_work_and_resume_skips_finished_files(small: dict[str, Any], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    full = run_scan(config(small, tmp_path / "full"))
    out = tmp_path / "cut"
    interrupt_after(config(small, out), 2500)  # files 0 and 1 done, file 2 part-way
    assert sorted(finished(out)) == [0, 1]
    assert not (out / "run.json").exists()

    import datahygiene.engines.local as local

    scanned: list[int] = []
    real = local.run_task

    def spy(task: Any, *a: Any, **k: Any) -> Any:
        scanned.append(task.file_index)
        return real(task, *a, **k)

    monkeypatch.setattr("datahygiene.scan.run_task", spy)
    res = run_scan(config(small, out, resume=True))
    assert sorted(set(scanned)) == [2, 3], "finished inputs were scanned again"
    assert outputs(out) == outputs(full.out)
    assert res.summary == full.summary


def test_resume_without_work_area_runs_fresh(small: dict[str, Any], tmp_path: Path) -> None:
    full = run_scan(config(small, tmp_path / "a"))
    again = run_scan(config(small, tmp_path / "b", resume=True))
    assert outputs(again.out) == outputs(full.out)


def test_run_without_resume_discards_unfinished_work(small: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "o"
    interrupt_after(config(small, out), 1500)
    assert 0 in finished(out)
    run_scan(config(small, out))
    assert not (out / ".work").exists() and (out / "run.json").exists()


@pytest.mark.parametrize("change, message", [
    ("list", "list synthetic/placeholder-md5@1 has a different fingerprint"),
    ("lists", "the lists differ"),
    ("config", "the configuration differs from the interrupted run's (keep_unverified)"),
    ("options", "the configuration differs from the interrupted run's (options)"),
    ("input", "changed since the interrupted run"),
    ("files", "the manifest files differ"),
])
def test_resume_refuses_changed_run(small: dict[str, Any], tmp_path: Path, change: str,
                                    message: str) -> None:
    out = tmp_path / "o"
    # options of a signal the run checks (those of a signal with no list are not in force)
    urls = [ListSpec(path=small["lists"]["url-sha256"])] if change == "options" else []
    first = config(small, out)
    first.lists += urls
    interrupt_after(first, 1500)
    kw: dict[str, Any] = {"resume": True}
    cfg = config(small, out, **kw)
    cfg.lists += urls
    md5_list = Path(small["lists"]["md5"])
    manifest = Path(small["manifest"])
    if change == "list":  # same identity, different content: one more placeholder entry
        with open(md5_list, "a") as fh:
            fh.write("0" * 31 + "1\n")
    elif change == "lists":
        cfg.lists = [*cfg.lists, ListSpec(path=small["lists"]["md5"], signal="md5",
                                          name="another", partner="synthetic", version="2")]
    elif change == "config":
        cfg.keep_unverified = True
    elif change == "options":  # options change what matches (e.g. a URL normalisation)
        cfg.options = {"url-sha256": {"normalization": "none"}}
    elif change == "input":
        victim = manifest / small["files"][0]
        table = pq.read_table(victim)
        pq.write_table(table.slice(0, table.num_rows - 1), victim, row_group_size=500)
    elif change == "files":
        (manifest / small["files"][-1]).unlink()
    with pytest.raises(ConfigError) as err:
        run_scan(cfg)
    text = str(err.value)
    assert message in text and "without --resume" in text and "\n" not in text
    assert 0 in finished(out), "a refusal must not destroy the work"


def test_resume_refuses_input_changed_with_same_footer(small: dict[str, Any], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The cheap footer check is backed by the full digest recorded with each marker."""
    out = tmp_path / "o"
    interrupt_after(config(small, out), 1500)
    log = out / ".work" / MARKER_LOG
    lines = [json.loads(line) for line in log.read_text().splitlines() if line]
    for data in lines:
        if data["index"] == 0:
            data["digest"] = "sha256:" + "0" * 64  # as if the bytes had changed under the footer
    log.write_text("".join(json.dumps(d) + "\n" for d in lines))
    with pytest.raises(InputError) as err:
        run_scan(config(small, out, resume=True))
    # one instruction: the hint that --resume skips the finished inputs contradicted it
    victim = Path(small["manifest"]) / small["files"][0]
    assert str(err.value) == (f"{victim}: changed since the interrupted run; rerun without "
                              "--resume to start over"), str(err.value)


def test_resume_cli_option(cli: Any, small: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "o"
    interrupt_after(config(small, out), 1500)
    args = ["scan", "--manifest", small["manifest"], "--list", f"md5={small['lists']['md5']}",
            "--out", out, "--write-clean", "-q", "--resume", "--keep-unverified"]
    res = cli(*args, ok=False)
    assert res.exit_code == 2 and "cannot resume" in res.output
    res = cli(*args[:-1])
    assert (out / "run.json").exists()


def test_an_error_after_finished_inputs_keeps_them_for_resume(small: dict[str, Any], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk (or a storage error) late in a long run must not throw away the
    inputs already finished: the error says so, and --resume skips them."""
    import errno

    import datahygiene.scan as scan_mod
    from datahygiene.errors import OutputError

    full = run_scan(config(small, tmp_path / "full"))
    out = tmp_path / "o"
    real_write = scan_mod.write_parquet

    def disk_full(table: Any, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(scan_mod, "write_parquet", disk_full)  # the exclusions, after the scan
    with pytest.raises(OutputError) as err:
        run_scan(config(small, out))
    text = str(err.value)
    assert "No space left on device" in text and "4 finished input(s) kept" in text
    assert "--resume" in text and "\n" not in text
    assert not (out / "run.json").exists()
    assert len(finished(out)) == 4

    monkeypatch.setattr(scan_mod, "write_parquet", real_write)  # space freed
    scanned: list[int] = []
    real = scan_mod.run_task
    monkeypatch.setattr(scan_mod, "run_task", lambda t, *a, **k: scanned.append(t.file_index)
                        or real(t, *a, **k))
    res = run_scan(config(small, out, resume=True))
    assert scanned == [], "finished inputs were scanned again"
    assert outputs(out) == outputs(full.out)
    assert res.summary == full.summary
    assert not (out / ".work").exists()


def test_an_error_before_any_input_finished_leaves_out_as_it_was(small: dict[str, Any], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import datahygiene.scan as scan_mod
    from datahygiene.errors import InputError as InErr

    def broken(task: Any, *a: Any, **k: Any) -> Any:
        raise InErr(f"{task.file.path}: row group {task.row_group} cannot be read")

    monkeypatch.setattr(scan_mod, "run_task", broken)
    out = tmp_path / "o"
    with pytest.raises(InErr) as err:
        run_scan(config(small, out))
    assert "kept" not in str(err.value)
    assert not (out / ".work").exists() and not (out / "run.json").exists()


def test_resume_over_inputs_that_flagged_nothing(make_synth: Any, tmp_path: Path) -> None:
    """An input with no excluded or unverified row leaves a marker and no part file;
    resuming over such inputs still writes the same bytes."""
    one = make_synth("one-match", rows=4000, files=4, list_size=300, planted=1, malformed=0,
                     row_group_size=500, seed=5)
    full = run_scan(config(one, tmp_path / "full"))
    assert full.summary["rows"]["excluded"] == 1
    out = tmp_path / "cut"
    interrupt_after(config(one, out), 2500)
    records = finished(out)
    assert sorted(records) == [0, 1]
    parts = {p.name for p in (out / ".work" / "parts").iterdir()}
    assert parts == {f"{i:06d}.parquet" for i, r in records.items() if r.flagged}
    res = run_scan(config(one, out, resume=True))
    assert outputs(out) == outputs(full.out)
    assert res.summary == full.summary


def test_marker_log_survives_a_line_cut_short(tmp_path: Path) -> None:
    """A crash while a marker is written leaves part of a line: that input counts as
    unfinished, and a resumed run's next marker starts on a line of its own."""
    from concurrent.futures import Future

    from datahygiene.resume import WorkArea

    identity = {"tool": "test"}
    area = WorkArea(tmp_path / "out", identity, resume=False)
    good = {"index": 0, "path": "a.parquet", "rows": 1, "flagged": 0, "clean_rows": 1,
            "digest": "sha256:" + "0" * 64, "clean": None}
    area.log_path.write_text(json.dumps(good) + "\n" + '{"index": 1, "path": "b.par')
    area.close()
    area.unlock()  # as the crashed process's end would
    assert sorted(read_markers(area.log_path)) == [0]

    resumed = WorkArea(tmp_path / "out", identity, resume=True)
    digest: Future[tuple[str, int]] = Future()
    digest.set_result(("sha256:" + "1" * 64, 10))
    resumed.complete(2, "c.parquet", 5, [], 5, digest, None)
    resumed.flush()
    resumed.close()
    records = read_markers(resumed.log_path)
    assert sorted(records) == [0, 2] and records[2].path == "c.parquet"
    assert resumed.log_path.stat().st_mode & 0o077 == 0


def test_no_work_parts_beside_a_committed_run(small: dict[str, Any], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill just after run.json lands, before the work area is removed, must not leave
    the parts (matched rows' keys and references) beside a complete run: they are gone
    before run.json is moved into place."""
    import datahygiene.outputs as outputs_mod

    out = tmp_path / "run"
    seen: list[bool] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == "run.json":
            seen.append((out / ".work" / "parts").exists() or (out / ".work" / MARKER_LOG).exists())
        real_replace(src, dst)

    monkeypatch.setattr(outputs_mod.os, "replace", replace)
    run_scan(config(small, out))
    assert seen == [False]
    assert (out / "run.json").exists() and not (out / ".work").exists()


KILL_AT_SCRIPT = """
import os, signal, sys
target = sys.argv.pop(1)
real = os.replace
def replace(src, dst, *a, **k):
    if str(dst).endswith(target) and ".work" not in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)  # as a power cut would, mid-commit
    return real(src, dst, *a, **k)
os.replace = replace
from datahygiene.cli import main
main()
"""


@pytest.mark.parametrize("first_ok", [True, False], ids=["second-run", "first-run"])
@pytest.mark.parametrize("kill_at", ["summary.json", "public/checkpoint"])
def test_a_signed_run_killed_while_committing_can_be_run_again(small: dict[str, Any], tmp_path: Path,
                                                               kill_at: str, first_ok: bool) -> None:
    """A second signed run into OUT killed after its log segment was moved into place but
    before the checkpoint that signs it: every later scan into OUT refused to append to
    the log ("does not match public/checkpoint"). The segment beyond the signed tree was
    never committed (there is no run.json): it is dropped, and the run goes on."""
    out, keys = tmp_path / "o", tmp_path / "keys"
    assert run_cli(["keys", "init", "--dir", str(keys)]).returncode == 0
    def args(lst: Any) -> list[str]:
        return ["scan", "--manifest", str(small["manifest"]), "--list", f"md5={lst}", "--out",
                str(out), "-q", "--write-clean", "--keys", str(keys)]

    if first_ok:  # else the run killed is the first signed run into OUT: no checkpoint yet
        assert run_cli(args(small["lists"]["md5"])).returncode == 0, "first signed run"
    more = tmp_path / "more.txt"  # another placeholder list: the second run logs other leaves
    more.write_text(Path(small["lists"]["md5"]).read_text() + "0" * 31 + "1\n")
    second = args(more)
    env = {**os.environ, "DATAHYGIENE_PLUGINS": ""}
    killed = subprocess.run([sys.executable, "-c", KILL_AT_SCRIPT, kill_at, *second],
                            capture_output=True, text=True, env=env, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "run.json").exists()
    res = run_cli([*second, "--resume"])
    assert res.returncode == 0, res.stderr
    check = run_cli(["verify", str(out)])
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_second_scan_into_an_out_in_use_is_refused(small: dict[str, Any], tmp_path: Path) -> None:
    """Two scans into one OUT shared its work area, and one removed it under the other
    (which then failed with a bare "No such file or directory"). OUT is locked for the
    run; the lock is on the directory itself, so nothing is left behind."""
    import fcntl

    out = tmp_path / "o"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running scan holds it
    try:
        with pytest.raises(ConfigError, match="another scan is writing into this directory"):
            run_scan(config(small, out))
    finally:
        os.close(fd)
    run_scan(config(small, out))  # free again: and a refused run left nothing locked
    run_scan(config(small, out))
    assert sorted(p.name for p in out.iterdir()) == ["clean", "public", "restricted", "run.json",
                                                     "summary.json"]


def test_a_signed_scan_refused_by_the_lock_leaves_the_log_of_the_scan_committing(
        small: dict[str, Any], tmp_path: Path) -> None:
    """A signed scan into an OUT whose running scan was moving its outputs into place (its
    new log segment there, its checkpoint and run.json not yet) took that segment for one a
    crash left uncommitted and deleted it before the lock refused it: the first scan then
    committed a checkpoint over leaves OUT no longer held. The check before the lock only
    reads; the scan that holds the lock drops what a crash left."""
    import fcntl

    out, keys = tmp_path / "o", tmp_path / "keys"
    assert run_cli(["keys", "init", "--dir", str(keys)]).returncode == 0
    def args(lst: Any) -> list[str]:
        return ["scan", "--manifest", str(small["manifest"]), "--list", f"md5={lst}", "--out",
                str(out), "-q", "--keys", str(keys)]

    assert run_cli(args(small["lists"]["md5"])).returncode == 0, "first signed run"
    more = tmp_path / "more.txt"  # another placeholder list: the second run logs other leaves
    more.write_text(Path(small["lists"]["md5"]).read_text() + "0" * 31 + "1\n")
    env = {**os.environ, "DATAHYGIENE_PLUGINS": ""}
    killed = subprocess.run([sys.executable, "-c", KILL_AT_SCRIPT, "public/checkpoint", *args(more)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert killed.returncode == -signal.SIGKILL  # OUT as it is while a commit is under way
    public = sorted(str(p.relative_to(out)) for p in (out / "public").rglob("*"))
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the committing scan holds it
    try:
        res = run_cli(args(small["lists"]["md5"]))
    finally:
        os.close(fd)
    assert res.returncode == 2 and "another scan is writing" in res.stderr, res.stderr
    assert sorted(str(p.relative_to(out)) for p in (out / "public").rglob("*")) == public


def test_ctrl_c_after_run_json_landed_says_the_run_was_committed(
        small: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C while the commit removed its staging and work area, after run.json was in
    place, said "interrupted; no output was committed" beside a complete run.json (the
    docs: on a non-zero exit OUT holds no new run.json). It still exits 130, saying that
    the run was committed; a Ctrl-C before run.json lands says nothing was."""
    import shutil

    from datahygiene.errors import InterruptedAfterCommit

    out = tmp_path / "o"
    real = shutil.rmtree

    def rmtree(path: Any, *a: Any, **k: Any) -> None:
        if (out / "run.json").exists():
            raise KeyboardInterrupt
        real(path, *a, **k)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(InterruptedAfterCommit, match="committed"):
        run_scan(config(small, out))
    monkeypatch.setattr(shutil, "rmtree", real)
    assert json.loads((out / "run.json").read_text())["coverage"]["rows_scanned"] == 4000
    # ... or as the library makes the result it returns
    import datahygiene.scan as scan_mod

    def result(*a: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(scan_mod, "ScanResult", result)
    with pytest.raises(InterruptedAfterCommit, match="committed"):
        run_scan(config(small, tmp_path / "r"))
    assert (tmp_path / "r" / "run.json").exists()

    # the command: a Ctrl-C as it prints the result, as its progress bar closes, or in
    # click's teardown once the command has returned (click makes that an Abort)
    for when, patch in [("print", "cmd.print_result = interrupted"),
                        ("bar", "cmd.progress_bar = lambda quiet: Bar()"),
                        ("teardown", "click.Context.__exit__ = exited")]:
        res = subprocess.run([sys.executable, "-c", f"""
import sys
import click
import datahygiene.commands.scan as cmd
def interrupted(result):
    raise KeyboardInterrupt
real_exit = click.Context.__exit__
def exited(self, *exc):
    real_exit(self, *exc)
    if self.parent is None and self._depth == 0:  # the command line's, left for good
        raise KeyboardInterrupt
class Bar:
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        raise KeyboardInterrupt
    def advance(self, *a):
        pass
    def start(self, *a):
        pass
    def footers(self, *a):
        pass
{patch}
from datahygiene.cli import main
main()
""", "scan", "--manifest", str(small["manifest"]), "--list", f"md5={small['lists']['md5']}",
                              "--out", str(tmp_path / when), "-q"],
                             capture_output=True, text=True,
                             env={**os.environ, "DATAHYGIENE_PLUGINS": ""}, timeout=120)
        assert res.returncode == 130 and (tmp_path / when / "run.json").exists(), (when, res.stderr)
        lines = res.stderr.strip().splitlines()
        if when == "teardown":  # the command ran to its end: its own notes come first (and
            # click writes an empty line when it turns a Ctrl-C into its Abort)
            lines = [ln for ln in lines if ln and not ln.startswith("note: ")]
        assert lines == [
            f"datahygiene: interrupted; the run was committed first ({tmp_path / when}/run.json "
            "is complete)"], (when, res.stderr)
