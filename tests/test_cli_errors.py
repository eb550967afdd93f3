"""Errors the library does not attribute to an input or a list still come out as one
line and a documented exit code, and leave no complete-looking output."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest


def _console_script() -> str:
    """The installed ``datahygiene`` command beside this Python: its own start (imports,
    signal handling, streams) is what the tests that run it exercise."""
    exe = shutil.which("datahygiene", path=str(Path(sys.executable).parent))
    assert exe is not None
    return exe


def _scan(synth: dict[str, Any], out: Path, *extra: str) -> list[str]:
    """``datahygiene scan`` of the synthetic manifest against its MD5 list."""
    return [_console_script(), "scan", "--manifest", str(synth["manifest"]), "--list",
            f"md5={synth['lists']['md5']}", "--out", str(out), *extra]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_disk_full_while_writing_is_one_line_exit_6(cli: Any, synth: dict[str, Any], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """A failed write names no file (pyarrow's "Error writing bytes to file" carries an
    errno and no file name, like a failed ``write()``): the message names the file the
    run was writing, so the user knows which filesystem is full or read-only."""
    import pyarrow.parquet as pq

    real = pq.write_table

    def full(table: Any, where: Any, *a: Any, **k: Any) -> None:
        if Path(str(where)).name == "exclusions.parquet":
            raise OSError(code, f"Error writing bytes to file. Detail: [errno {code}] {os.strerror(code)}")
        real(table, where, *a, **k)

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "out"
    res = cli("scan", "--manifest", synth["dir"] / "manifest", "--list",
              f"md5={synth['lists']['md5']}", "--out", out, "-q", ok=False)
    assert res.exit_code == 6
    lines = [ln for ln in res.output.splitlines() if ln.startswith("datahygiene: error:")]
    assert len(lines) == 1, res.output
    assert f"{out}/" in lines[0] and "exclusions.parquet: cannot write" in lines[0], lines
    assert os.strerror(code) in lines[0] and "Detail" not in lines[0], lines
    assert not (out / "run.json").exists()
    assert not any(p.name.startswith(".staging") for p in out.iterdir())


def test_a_write_the_kernel_refuses_names_the_file(synth: dict[str, Any], tmp_path: Path) -> None:
    """The console command under a real failing ``write()`` (a file-size limit: EFBIG,
    from the kernel, as ENOSPC would come on a full disk): one line naming the file
    being written under OUT, exit 6, and nothing in OUT that looks like a run."""
    import resource
    import subprocess

    out = tmp_path / "run"

    def limit() -> None:  # Python ignores SIGXFSZ: a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))

    res = subprocess.run(_scan(synth, out, "--write-clean", "-q"),
                         capture_output=True, text=True, preexec_fn=limit, check=False, timeout=120)
    assert res.returncode == 6, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"datahygiene: error: {out}/"), res.stderr
    assert ": cannot write (File too large)" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not list(out.rglob("run.json"))
    assert {p.name for p in out.iterdir()} <= {".work"}


def test_ray_address_without_the_ray_engine_is_refused(cli: Any, synth: dict[str, Any],
                                                       tmp_path: Path) -> None:
    """Scanning locally when a cluster was named would silently ignore the address."""
    out = tmp_path / "out"
    res = cli("scan", "--manifest", synth["dir"] / "manifest", "--list",
              f"md5={synth['lists']['md5']}", "--out", out, "--ray-address", "ray://127.0.0.1:1",
              "-q", ok=False)
    assert res.exit_code == 2
    assert "--engine ray" in res.output
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["scan", "--bogus"], "datahygiene: error: No such option '--bogus'"),
    (["scan", "--batch-size", "0", "--manifest", "m", "--list", "md5=l", "--out", "o"],
     "datahygiene: error: Invalid value for '--batch-size'"),
    (["lists", "inspect"], "datahygiene: error: Missing argument"),
])
def test_usage_errors_are_one_line_from_the_console_command(args: list[str], message: str) -> None:
    """Through the installed entry point (click's own runner would not show it): a bad
    option is one line naming the --help to read, exit 2, like every other error."""
    import subprocess

    res = subprocess.run([sys.executable, "-m", "datahygiene.cli", *args], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(message) and "--help')" in lines[0], res.stderr


def test_ctrl_c_while_starting_is_one_line(synth: dict[str, Any], tmp_path: Path) -> None:
    """Ctrl-C in the first second, while the command line is still importing pyarrow and
    numba, is answered like one during the scan: one line, exit 130, nothing written."""
    import signal
    import subprocess
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen(_scan(synth, out, "-q"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(0.15)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip() == "datahygiene: interrupted; no output was committed"
    assert not (out / "run.json").exists()


_KILL_ON_IMPORT = """
import os, signal, sys
MODULE = sys.argv[1]
class Kill:
    def find_spec(self, name, path=None, target=None):
        if name == MODULE:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode: inside the import
        return None
sys.meta_path.insert(0, Kill())
script = sys.argv[2]
sys.argv = sys.argv[2:]
with open(script) as fh:  # not runpy: it imports typing itself
    code = compile(fh.read(), script, "exec")
exec(code, {"__name__": "__main__"})
"""


@pytest.mark.parametrize("module", ["typing", "click", "numpy", "pyarrow", "numba", "datahygiene.cli",
                                    "datahygiene.commands.scan"])
def test_ctrl_c_while_the_console_script_imports_is_one_line(synth: dict[str, Any], tmp_path: Path,
                                                             module: str) -> None:
    """Ctrl-C exactly while the console script imports ``module`` (a first import of
    typing was the wrapper's own ``datahygiene.entry``, before any handler: a
    traceback): one line, exit 130, nothing written."""
    import subprocess
    import sys

    exe = _console_script()
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-c", _KILL_ON_IMPORT, module, exe, "scan", "--manifest",
                          str(synth["manifest"]), "--list", f"md5={synth['lists']['md5']}",
                          "--out", str(out), "-q"], capture_output=True, text=True, check=False,
                         timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 130, res.stderr
    assert res.stderr.strip() == "datahygiene: interrupted; no output was committed"
    assert not out.exists()


def test_ctrl_c_in_the_first_milliseconds_is_one_line(synth: dict[str, Any], tmp_path: Path) -> None:
    """SIGINT 0-60 ms after the start, many times. Only Python's own start-up, before any
    of datahygiene runs, may answer otherwise: killed by the signal with nothing
    printed (before Python installs its handler), or a traceback from Python's own
    start-up (its streams; ``site``, slowed by an editable install's .pth files) or from
    finding the package -- after which Python may even carry on, and the command run to
    its end; never a traceback through datahygiene's code, nor anything but one line and
    exit 130, nor a run left behind by an interrupted command."""
    import re
    import signal
    import subprocess
    import time

    out = tmp_path / "run"
    for k in range(40):
        proc = subprocess.Popen(_scan(synth, out, "-q"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(k * 0.0015)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == -signal.SIGINT and not err:
            continue  # before Python's handler: the shell says 130, as for any program
        python_own = ("Traceback" in err or err.startswith("Fatal Python error: init_import_site")
                      or err.strip() == "KeyboardInterrupt")  # reading the script: no frame
        if python_own and not re.search(r'File "[^"]*/datahygiene/[^"]+\.py"', err):
            # Python's own start-up (its streams, site -- "Failed to import the site
            # module", no traceback -- and .pth files), or the import
            # system still looking for the package the console script names (an editable
            # install's finder: 2 ms here): no line of datahygiene ran yet. Python may
            # even print the KeyboardInterrupt and carry on ("Failed checking if argv[0]
            # is an import path entry"): the command then runs to its end, as if never
            # interrupted, and its run is complete
            if proc.returncode == 0:
                assert json.loads((out / "run.json").read_text())["finished_at"], (k, err)
                shutil.rmtree(out)  # the next iterations check that they leave no run
            continue
        assert proc.returncode == 130, (k, err)
        assert err.strip() == "datahygiene: interrupted; no output was committed", (k, err)
        if (out / "run.json").exists():  # (seen once in a full suite: what to look at if again)
            run = json.loads((out / "run.json").read_text())
            raise AssertionError(f"iteration {k}: run.json of a run from {run['started_at']} to "
                                 f"{run['finished_at']}; now {time.time()}, {time.ctime()}")


def test_ctrl_c_after_the_command_finished_keeps_its_status(synth: dict[str, Any],
                                                          tmp_path: Path) -> None:
    """Ctrl-C once the scan has committed and printed its last line, while Python tears
    down (0.3 s here): the run is complete and said so, so the exit status stays 0 (it
    was killed by the signal: 130 to a shell, as if nothing had been committed)."""
    import signal
    import subprocess
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen(_scan(synth, out, "-q"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    last = proc.stderr.readline()  # the scan's last line: the note on unsigned evidence
    assert last.startswith("note: no evidence was signed"), last
    time.sleep(0.05)  # out of the command (a Ctrl-C in it says "the run was committed first")
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""
    assert (out / "run.json").is_file()


def test_a_ctrl_c_the_caller_ignores_stays_ignored(synth: dict[str, Any], tmp_path: Path) -> None:
    """Started with SIGINT ignored (a background job of a non-interactive shell, so that
    a Ctrl-C meant for the job in the foreground leaves it running), the command keeps
    it ignored: interrupts at its start and in the scan change nothing, and the run
    completes. It used to install its own handler and stop."""
    import signal
    import subprocess
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen(_scan(synth, out, "-q"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    for delay in (0.0, 0.05, 0.15, 0.4):
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "interrupted" not in err
    assert json.loads((out / "run.json").read_text())["finished_at"]


@pytest.mark.parametrize("command", ["scan", "inspect", "scan-2>&1", "failing-scan-2>&1"])
def test_a_closed_stdout_pipe_does_not_change_the_exit_status(synth: dict[str, Any], tmp_path: Path,
                                                              command: str) -> None:
    """``datahygiene scan ... | head -1``: the reader goes away before the summary is
    printed. The run is committed, so the exit status is 0, not 6 (which the docs say
    means "no new run.json"); the same for any command's output, with stderr in the
    same pipe too (``2>&1 | head -1``), and a failing command keeps its own code."""
    import subprocess

    exe = _console_script()
    out = tmp_path / "run"
    manifest = str(tmp_path / "missing") if command.startswith("failing") else str(synth["manifest"])
    args = (["lists", "inspect", str(synth["lists"]["md5"])] if command == "inspect"
            else ["scan", "--manifest", manifest, "--list", f"md5={synth['lists']['md5']}",
                  "--out", str(out), "-q"])
    both = command.endswith("2>&1")
    proc = subprocess.Popen([exe, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if both else subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before anything is written
    _, err = proc.communicate(timeout=120)
    err = err or b""
    assert proc.returncode == (3 if command.startswith("failing") else 0), err
    assert b"Traceback" not in err and b"error" not in err
    assert (out / "run.json").exists() == (command in ("scan", "scan-2>&1"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("case", ["stdout-full", "stderr-full", "stderr-closed"])
def test_unwritable_console_streams_do_not_change_the_exit_status(synth: dict[str, Any],
                                                                  tmp_path: Path, case: str) -> None:
    """A full disk under a redirected log (exit 120 from Python's flush at exit) or a
    closed stderr (a traceback, exit 1) must not turn a committed scan, or a failing
    one, into another exit status."""
    import os
    import subprocess

    exe = _console_script()
    for manifest, want in ((synth["manifest"], 0), (tmp_path / "missing", 3)):
        out = tmp_path / f"run-{want}"
        args = [exe, "scan", "--manifest", str(manifest), "--list", f"md5={synth['lists']['md5']}",
                "--out", str(out)]
        with open("/dev/full", "w") as full:
            proc = subprocess.run(
                args, stdin=subprocess.DEVNULL, timeout=120, check=False,
                stdout=full if case == "stdout-full" else subprocess.DEVNULL,
                stderr=full if case == "stderr-full" else subprocess.DEVNULL,
                preexec_fn=(lambda: os.close(2)) if case == "stderr-closed" else None)
        assert proc.returncode == want, case
        assert (out / "run.json").exists() == (want == 0)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2,
                    reason="counts the process's threads in /proc, on a machine with 2+ cores")
@pytest.mark.parametrize("given", [None, "2"])
def test_the_command_starts_no_spinning_blas_threads(given: str | None) -> None:
    """numpy's OpenBLAS starts a thread per extra core at import, and they spin for a
    while, taking CPU from the scan; datahygiene makes no BLAS call, so the command
    asks for one thread -- unless the user set OPENBLAS_NUM_THREADS, which stands.
    Arrow's allocator is asked to keep freed memory (MIMALLOC_PURGE_DELAY), before
    pyarrow is loaded, and numpy not to ask for huge pages (NUMPY_MADVISE_HUGEPAGE),
    also unless the user set them."""
    import subprocess

    code = ("import os, sys\nsys.argv = ['datahygiene', '--version']\n"
            "from datahygiene.entry import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "import numpy\n"
            "names = [open(f'/proc/self/task/{t}/comm').read().strip()"
            " for t in os.listdir('/proc/self/task')]\n"
            "from numpy._core.multiarray import _get_madvise_hugepage\n"
            "print(names.count('python'), os.environ['OPENBLAS_NUM_THREADS'],"
            " os.environ['MIMALLOC_PURGE_DELAY'], _get_madvise_hugepage(), file=sys.stderr)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MIMALLOC_PURGE_DELAY",
                        "NUMPY_MADVISE_HUGEPAGE")}
    if given:
        env["OPENBLAS_NUM_THREADS"] = env["MIMALLOC_PURGE_DELAY"] = given
        env["NUMPY_MADVISE_HUGEPAGE"] = "1"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    threads, blas, purge, huge = res.stderr.split()[-4:]
    assert (blas, purge) == ((given, given) if given else ("1", "-1"))
    assert huge == ("True" if given else "False")  # numpy asks for huge pages only if told to
    if given is None:  # OpenBLAS's threads keep the name of the thread that made them
        assert threads == "1", res.stderr


def test_the_environment_is_set_before_numpy_and_pyarrow_load() -> None:
    """The settings are read once, when numpy and pyarrow load: the command must make
    them before it imports anything that imports those."""
    import subprocess

    code = ("import sys\nimport datahygiene.entry as e\n"
            "loaded = sorted(m for m in ('numpy', 'pyarrow') if m in sys.modules)\n"
            "e.tune_environment = lambda: print('tuned', loaded, sorted(m for m in "
            "('numpy', 'pyarrow') if m in sys.modules), file=sys.stderr)\n"
            "sys.argv = ['datahygiene', '--version']\n"
            "try:\n    e.main()\nexcept SystemExit:\n    pass\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "tuned [] []" in res.stderr, res.stderr


@pytest.mark.parametrize("state", ["printed", "import-lock"])
def test_a_ctrl_c_python_swallowed_at_start_up_stops_the_command(synth: dict[str, Any], tmp_path: Path,
                                                                  state: str) -> None:
    """A Ctrl-C in Python's own start-up that Python printed and carried on from
    (``sys.last_value``), or that left the import system's global lock taken (the scan's
    first import on a worker thread then waited for ever: a hang seen in the
    first-milliseconds test): the command stops at once, one line, exit 130, no run."""
    import subprocess
    import sys

    out = tmp_path / "run"
    before = ("import sys; sys.last_value = KeyboardInterrupt()" if state == "printed"
              else "import _imp; _imp.acquire_lock()")
    code = (f"{before}\nimport sys\nfrom datahygiene.entry import main\n"
            f"sys.argv = {['datahygiene', *_scan(synth, out, '-q')[1:]]!r}\nmain()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 130, res.stderr
    assert res.stderr.strip() == "datahygiene: interrupted; no output was committed"
    assert not out.exists()
