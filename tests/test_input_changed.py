"""An input written while the scan reads it: the scan stops with a one-line input error
naming the file, instead of recording a digest of bytes it did not scan or rows of a
file its footer no longer describes.

A local input's size and modification time are taken when its footer is read, and
must be found again before and after its digest and around every task's reads
(datahygiene/manifest.py, ``changed_under_scan``)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from dhtest import after_each_digest, hexes, rand_bytes, write_manifest

from datahygiene import manifest
from datahygiene.errors import InputError

pytestmark = pytest.mark.usefixtures("core_only")

CHANGED = "changed while the scan read it"


def _local(p: Path) -> manifest.InputFile:
    return manifest.InputFile(str(p), manifest.LocalFileSystem(), str(p))


def _touch_later(p: Path, seconds: int = 5) -> None:
    """The same bytes, a later modification time (what a writer leaves behind)."""
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def _rewrite(p: Path) -> None:
    """Other rows in the same file: another size and modification time."""
    write_manifest(p, {"key": [f"z{i}" for i in range(7)],
                       "md5": hexes(rand_bytes(7, 16, seed=99))})


def _scan_changing_it(cli: Any, monkeypatch: pytest.MonkeyPatch, manifest_: dict[str, Any],
                      out: Path, step: str, change: Any, *extra: str) -> Any:
    """Scan ``manifest_``, applying ``change`` to its file just before the scan calls
    ``datahygiene.scan.<step>``; the run must fail with exit 3."""
    import datahygiene.scan as scan

    real = getattr(scan, step)

    def then(*args: Any) -> Any:
        change(manifest_["path"])
        return real(*args)

    monkeypatch.setattr(scan, step, then)
    res = cli("scan", "--manifest", manifest_["path"], "--list", f"md5={manifest_['list']}",
              "--out", out, "-q", *extra, ok=False)
    assert res.exit_code == 3, res.output
    return res


@pytest.mark.parametrize("change", [_touch_later, _rewrite], ids=["touched", "rewritten"])
def test_an_input_changed_after_its_footer_was_read_stops_the_scan(
        cli: Any, small_manifest: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        change: Any) -> None:
    """Between the footers' reading and the tasks (the likeliest moment: a large scan
    reads every footer first): exit 3, one line naming the file, no output that looks
    complete, no value quoted."""
    out = tmp_path / "out"
    res = _scan_changing_it(cli, monkeypatch, small_manifest, out, "plan_tasks", change)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("datahygiene: error: ")
    assert str(small_manifest["path"]) in lines[0] and CHANGED in lines[0]
    assert not (out / "run.json").exists() and not (out / "summary.json").exists()
    assert not (out / "restricted" / "exclusions.parquet").exists()
    for value in small_manifest["list_values"] + [v for v in small_manifest["md5"] if v]:
        assert value not in res.output


def test_an_unchanged_input_scans_as_before(cli: Any, small_manifest: dict[str, Any],
                                            tmp_path: Path) -> None:
    """The check costs no false alarm: reading a file (its access time) changes nothing
    it looks at, and the run's digest is the file's."""
    import json

    out = tmp_path / "out"
    cli("scan", "--manifest", small_manifest["path"], "--list", f"md5={small_manifest['list']}",
        "--out", out, "-q")
    run = json.loads((out / "run.json").read_text())
    data = Path(small_manifest["path"]).read_bytes()
    assert run["inputs"][0]["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_footer_records_the_state_it_was_read_in_and_a_change_during_the_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_manifest(tmp_path / "a.parquet", {"key": ["a", "b"], "md5": hexes(rand_bytes(2, 16))})
    st = os.stat(p)
    assert manifest.read_footer(_local(p)).state == (st.st_size, st.st_mtime_ns)

    real, calls = os.fstat, []

    def later_second_time(fd: int) -> os.stat_result:
        got = real(fd)
        calls.append(fd)
        if len(calls) == 2:  # after the footer's reads: as if written meanwhile
            return os.stat_result((*got[:8], got[8] + 1, got[9]))
        return got

    monkeypatch.setattr(manifest.os, "fstat", later_second_time)
    with pytest.raises(InputError, match=rf"a\.parquet: {CHANGED}"):
        manifest.read_footer(_local(p))


def _files(tmp_path: Path, n: int) -> list[manifest.InputFile]:
    out = []
    for i in range(n):
        p = tmp_path / f"m{i}.parquet"
        p.write_bytes(bytes([i]) * (100 + i))
        out.append(_local(p))
    return out


def _state(f: manifest.InputFile) -> manifest.FileState:
    st = os.stat(f.fs_path)
    return (st.st_size, st.st_mtime_ns)


def test_a_digest_of_a_file_not_in_its_footers_state_is_that_inputs_error(tmp_path: Path) -> None:
    """Digests taken before the footers' states are known are held against them when
    they come (the digests start first, while the lists load)."""
    files = _files(tmp_path, 3)
    digests = manifest.InputDigests(files, "sha256")
    digests.close()  # every digest taken before the states are known
    states: list[manifest.FileState | None] = [_state(f) for f in files]
    size, mtime = _state(files[1])
    states[1] = (size, mtime - 10**9)  # the footer was read a second before the last write
    states[2] = None  # not a local file: nothing to compare
    digests.expect(states)
    assert digests.result(0) == ("sha256:" + hashlib.sha256(bytes(100)).hexdigest(), 100)
    with pytest.raises(InputError, match=rf"m1\.parquet: {CHANGED}"):
        digests.result(1)
    assert digests.result(2)[1] == 102


def test_a_digest_taken_after_the_states_are_known_is_checked_as_it_comes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _files(tmp_path, 2)
    real = manifest.digest_file
    release = threading.Event()

    def held(f: manifest.InputFile, algorithm: str, **kw: Any) -> tuple[str, int]:
        release.wait(5)
        return real(f, algorithm, **kw)

    monkeypatch.setattr(manifest, "digest_file", held)
    digests = manifest.InputDigests(files, "sha256")
    states = [_state(f) for f in files]
    _touch_later(Path(files[1].fs_path))  # after its footer, before its digest
    digests.expect(states)
    release.set()
    digests.close()
    assert digests.result(0)[1] == 100
    with pytest.raises(InputError, match=rf"m1\.parquet: {CHANGED}"):
        digests.result(1)


def test_a_file_written_while_it_is_digested_is_an_error(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    files = _files(tmp_path, 1)
    after_each_digest(monkeypatch, lambda f: _touch_later(Path(f.fs_path)))
    digests = manifest.InputDigests(files, "sha256")
    digests.close()
    with pytest.raises(InputError, match=rf"m0\.parquet: {CHANGED}"):
        digests.result(0)


def _task_setup(tmp_path: Path) -> tuple[Any, Any, Path]:
    from datahygiene.config import ScanConfig
    from datahygiene.lists.spec import ListSpec
    from datahygiene.plugins import default_registry
    from datahygiene.scan import build_plan, load_lists

    md5 = hexes(rand_bytes(30, 16, seed=5))
    p = write_manifest(tmp_path / "m.parquet", {"key": [f"k{i}" for i in range(30)], "md5": md5},
                       row_group_size=10)
    lst = tmp_path / "l.txt"
    lst.write_text(md5[4] + "\n")
    cfg = ScanConfig(manifests=[str(p)], lists=[ListSpec(path=str(lst), signal="md5")],
                     out=str(tmp_path / "o"))
    registry = default_registry()
    plan = build_plan(load_lists(cfg, registry), cfg, registry, "key")
    plan.setup()
    return plan, manifest.read_footer(_local(p)), p


@pytest.mark.parametrize("keep_clean", [False, True], ids=["pages", "pyarrow"])
def test_a_task_finds_its_file_as_its_footer_was_read_or_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_clean: bool) -> None:
    """Each task (on any engine: the Ray engine ships the state with the task) compares
    the file's state when it opens it and after its reads."""
    from datahygiene.engines import local

    plan, footer, p = _task_setup(tmp_path)
    tasks = local.plan_tasks([_local(p)], [footer.row_group_rows], [footer.state])
    assert [t.state for t in tasks] == [footer.state] * 3
    got = local.run_task(tasks[0], plan, 1024, keep_clean, known=footer)
    assert got.flagged.num_rows == 1
    local.run_task(tasks[1], plan, 1024, keep_clean)  # no footer given: the task's state serves

    _touch_later(p)  # before the task: refused as it opens the file
    for known in (footer, None):
        with pytest.raises(InputError, match=rf"m\.parquet: {CHANGED}"):
            local.run_task(tasks[2], plan, 1024, keep_clean, known=known)

    # during the task's reads: refused when they are done
    plan, footer, p = _task_setup(tmp_path / "again")
    task = local.plan_tasks([_local(p)], [footer.row_group_rows], [footer.state])[0]
    real = local._check_task

    def written_meanwhile(*args: Any) -> Any:
        res = real(*args)
        _touch_later(p)
        return res

    monkeypatch.setattr(local, "_check_task", written_meanwhile)
    with pytest.raises(InputError, match=rf"m\.parquet: {CHANGED}"):
        local.run_task(task, plan, 1024, keep_clean, known=footer)


def test_a_task_whose_reads_fail_because_the_file_changed_says_it_changed(
        tmp_path: Path) -> None:
    """A file cut short under the scan makes its pages unreadable: the error says the
    file changed, not that it is corrupt."""
    from datahygiene.engines import local

    plan, footer, p = _task_setup(tmp_path)
    task = local.plan_tasks([_local(p)], [footer.row_group_rows], [footer.state])[2]
    os.truncate(p, 200)
    with pytest.raises(InputError, match=rf"m\.parquet: {CHANGED}"):
        local.run_task(task, plan, 1024, False, known=footer)


def test_an_input_changed_before_the_key_check_reads_it_again_stops_the_scan(
        cli: Any, small_manifest: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--check-keys`` reads the key column again after the scan: a file written
    since would answer for other rows."""
    out = tmp_path / "out"
    res = _scan_changing_it(cli, monkeypatch, small_manifest, out, "rows_sharing_flagged_keys",
                            _touch_later, "--check-keys")
    assert f"{small_manifest['path']}: {CHANGED}" in res.stderr
    assert not (out / "run.json").exists()


def test_a_scan_that_fails_does_not_wait_for_the_digests_of_inputs_it_never_reached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest thread hashes inputs in order while the scan runs; when the scan
    fails, the error comes at once instead of after every remaining input is hashed
    (minutes for a large local dataset)."""
    from datahygiene.config import ScanConfig
    from datahygiene.lists.spec import ListSpec
    from datahygiene.scan import run_scan

    d = tmp_path / "m"
    d.mkdir()
    n = 40
    for i in range(n):
        write_manifest(d / f"p{i:02d}.parquet", {"key": [f"k{i}-{r}" for r in range(20)],
                                                 "md5": hexes(rand_bytes(20, 16, seed=i))})
    lst = tmp_path / "l.txt"
    lst.write_text(hexes(rand_bytes(1, 16, seed=999))[0] + "\n")
    real = manifest.digest_file
    digested: list[str] = []

    def slow(f: manifest.InputFile, algorithm: str, **kw: Any) -> tuple[str, int]:
        threading.Event().wait(0.05)  # a large input's hashing
        digested.append(f.fs_path)
        return real(f, algorithm, **kw)

    monkeypatch.setattr(manifest, "digest_file", slow)
    import datahygiene.scan as scan

    real_plan = scan.plan_tasks

    def then(*args: Any) -> Any:
        _touch_later(d / "p03.parquet")  # written after its footer was read
        return real_plan(*args)

    monkeypatch.setattr(scan, "plan_tasks", then)
    with pytest.raises(InputError, match=rf"p03\.parquet: {CHANGED}"):
        run_scan(ScanConfig(manifests=[str(d)], lists=[ListSpec(path=str(lst), signal="md5")],
                            out=str(tmp_path / "out"), threads=2))
    assert len(digested) < n // 2, "the failed scan waited for the digests of inputs it never reached"
