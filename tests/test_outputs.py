"""Atomic outputs: a run that fails part-way leaves no file that looks complete and
leaves OUT's previous contents exactly as they were."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from datahygiene import outputs, scan
from datahygiene.errors import OutputError
from datahygiene.outputs import RunWriter

pytestmark = pytest.mark.usefixtures("core_only")


def snapshot(out: Path) -> dict[str, str]:
    """OUT's files and their digests, leaving out the owner-only work area ``.work/``,
    which a failed run keeps once it has finished inputs (for --resume; see
    tests/resume): it holds no output, and the previous run's files must not change."""
    work = out / ".work"
    if work.exists():
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and work not in p.parents}


def args(synth: dict[str, Any], out: Path, *extra: Any) -> list[Any]:
    return ["scan", "--manifest", synth["manifest"], "--list", f"md5={synth['lists']['md5']}",
            "--out", out, "--write-clean", "-q", *extra]


@pytest.fixture
def previous(cli, synth: dict[str, Any], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    out = tmp_path / "run"
    cli(*args(synth, out))
    before = snapshot(out)
    assert "run.json" in before and "restricted/exclusions.parquet" in before
    return out, before


def no_staging(out: Path) -> bool:
    return not [p for p in out.iterdir() if p.name.startswith(".staging")]


def test_writer_failure_keeps_previous_run(cli, synth: dict[str, Any], previous, monkeypatch) -> None:
    out, before = previous

    def boom(*a: object, **k: object) -> None:
        raise OutputError(f"{out}: no space left on device")

    monkeypatch.setattr(scan, "write_parquet", boom)
    res = cli(*args(synth, out, "--batch-size", "50"), ok=False)
    assert res.exit_code == 6
    assert snapshot(out) == before
    assert no_staging(out)


def test_failure_after_partial_writes_keeps_previous_run(cli, synth: dict[str, Any], previous,
                                                         monkeypatch) -> None:
    out, before = previous
    real = RunWriter.write_json

    def fail_on_run_json(self: RunWriter, rel: str, data: Any) -> Path:
        if rel == "run.json":  # summary.json, exclusions and clean/ are staged by now
            raise OutputError("simulated crash before the marker is written")
        return real(self, rel, data)

    monkeypatch.setattr(RunWriter, "write_json", fail_on_run_json)
    res = cli(*args(synth, out), ok=False)
    assert res.exit_code == 6
    assert snapshot(out) == before and no_staging(out)


def test_input_that_breaks_mid_run_keeps_previous_run(cli, synth: dict[str, Any], previous,
                                                      monkeypatch) -> None:
    """A manifest that disappears after its schema was read (between the check and the
    scan) fails the run without touching OUT."""
    out, before = previous
    victim = sorted(Path(synth["manifest"]).glob("*.parquet"))[-1]
    real = scan.plan_tasks

    def plan_then_remove(*a: Any, **k: Any) -> Any:
        tasks = real(*a, **k)
        victim.unlink()
        return tasks

    monkeypatch.setattr(scan, "plan_tasks", plan_then_remove)
    res = cli(*args(synth, out), ok=False)
    assert res.exit_code == 3 and str(victim) in res.stderr
    assert snapshot(out) == before and no_staging(out)


def test_crash_during_commit_leaves_no_marker(cli, synth: dict[str, Any], previous, monkeypatch) -> None:
    """If the process dies while moving files into place, run.json is absent: the
    directory no longer claims to hold a complete run."""
    out, _ = previous
    calls = {"n": 0}
    real = os.replace

    def flaky(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky)
    res = cli.runner.invoke(__import__("datahygiene.cli", fromlist=["cli"]).cli,
                            [str(a) for a in args(synth, out)], catch_exceptions=False)
    assert res.exit_code == 6 and "No space left on device" in res.output
    assert not (out / "run.json").exists()


def test_runwriter_permissions_and_commit(tmp_path: Path) -> None:
    out = tmp_path / "o"
    with RunWriter(out) as w:
        w.write_json("summary.json", {"a": 1})
        w.write_bytes("restricted/deep/x.bin", b"x")
        p = w.path("restricted/t.parquet")
        pq.write_table(__import__("pyarrow").table({"a": [1]}), p)
        w.seal("restricted/t.parquet")
        assert not (out / "summary.json").exists(), "nothing visible before commit"
        w.write_json("run.json", {})
        w.commit()
    assert (out / "run.json").exists() and (out / "summary.json").read_bytes() == b'{\n  "a": 1\n}\n'
    for d in (out / "restricted", out / "restricted" / "deep"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for f in (out / "restricted" / "deep" / "x.bin", out / "restricted" / "t.parquet"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert no_staging(out)


def test_commit_creates_restricted_directories_owner_only(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit created OUT/restricted/ (and its subdirectories) 0755 and only then
    made them 0700: for that moment anyone could open the directory and list the files
    moved into it afterwards. They are created owner-only."""
    out = tmp_path / "o"
    seen: list[tuple[str, int]] = []
    real_mkdir = Path.mkdir

    def mkdir(self: Path, mode: int = 0o777, *a: Any, **k: Any) -> None:
        real_mkdir(self, mode, *a, **k)
        seen.append((self.name, stat.S_IMODE(self.stat().st_mode)))

    old_umask = os.umask(0o022)
    try:
        with RunWriter(out) as w:
            w.write_bytes("restricted/deep/x.bin", b"x")
            w.write_json("run.json", {})
            monkeypatch.setattr(Path, "mkdir", mkdir)
            w.commit()
    finally:
        os.umask(old_umask)
    assert seen == [("restricted", 0o700), ("deep", 0o700)]


def test_runwriter_exception_removes_staging(tmp_path: Path) -> None:
    out = tmp_path / "o"
    with pytest.raises(RuntimeError), RunWriter(out) as w:
        w.write_json("run.json", {})
        raise RuntimeError("boom")
    assert list(out.iterdir()) == []


def test_run_without_clean_removes_a_previous_runs_clean(cli, synth: dict[str, Any], previous) -> None:
    """A clean/ left from an earlier run would look like this run's output, though
    this run's lists may exclude rows it holds."""
    out, _ = previous
    assert (out / "clean").is_dir()
    cli("scan", "--manifest", synth["manifest"], "--list", f"md5={synth['lists']['md5']}",
        "--out", out, "-q")
    assert not (out / "clean").exists()
    assert (out / "run.json").exists()
