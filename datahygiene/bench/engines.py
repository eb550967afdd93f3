"""Benchmark: the local engine vs the Ray engine, and the cost of resuming (issue 6).

Run with ``make bench-engines`` (20M rows; needs the ``ray`` extra). Every run is a
whole ``datahygiene scan`` command, timed from start to exit, on the same manifest and
list as ``make bench`` (reused from ``--dir`` when already generated):

  local               ``--engine local``
  ray                 ``--engine ray``: a local Ray started by the command on this one
                      machine (start-up included, as a user would see it)
  uninterrupted       ``--write-clean`` on the local engine (what resume protects)
  killed at 50%       the same command, SIGKILLed once half the inputs are recorded done
  resumed             ``--resume`` on what the killed run left

Printed: rows/s per engine and Ray's time as a ratio of local's (its overhead on one
node); the resumed run's time against the uninterrupted run's, and the total work of
killed + resumed against it (the cost of the crash). Numbers are only comparable on an
otherwise idle machine. Outputs are checked to be byte-identical across engines and
after the resume; a mismatch fails the benchmark.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from datahygiene.bench import software_line
from datahygiene.bench.exact import ensure_data
from datahygiene.resume import MARKER_LOG, read_markers

CMD = [sys.executable, "-c", "from datahygiene.cli import main; main()"]


def _scan_args(d: Path, out: Path, *extra: str) -> list[str]:
    return [*CMD, "scan", "--manifest", str(d / "manifest"), "--list", f"md5={d / 'lists' / 'md5.txt'}",
            "--out", str(out), "--quiet", *extra]


def _env() -> dict[str, str]:
    # core plugins only; Ray's own dashboard and usage reporting off (no network here)
    return {**os.environ, "DATAHYGIENE_PLUGINS": "", "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DISABLE_IMPORT_WARNING": "1"}


def _timed(args: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=_env(), check=False)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"scan failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def _killed_at(args: list[str], out: Path, markers: int) -> tuple[float, int]:
    """Run ``args`` and SIGKILL it once ``markers`` inputs are recorded done."""
    log = out / ".work" / MARKER_LOG
    t = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        while proc.poll() is None:
            if len(read_markers(log)) >= markers:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.wait()
    seconds = time.perf_counter() - t
    if proc.returncode != -signal.SIGKILL:
        raise SystemExit("the scan finished before it could be killed")
    return seconds, len(read_markers(log))


def _digests(out: Path) -> dict[str, str]:
    paths = [out / "summary.json", out / "restricted" / "exclusions.parquet",
             *sorted((out / "clean").glob("*.parquet"))]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in paths if p.exists()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=20_000_000)
    p.add_argument("--list-size", type=int, default=5_000_000)
    p.add_argument("--planted", type=int, default=1_000)
    p.add_argument("--dir", default="bench-out", help="where data and outputs go (data is reused)")
    p.add_argument("--skip-ray", action="store_true", help="only the resume measurement")
    a = p.parse_args(argv)
    base = Path(a.dir)
    d = ensure_data(base, a.rows, a.list_size, a.planted)
    files = len(list((d / "manifest").glob("*.parquet")))
    work = base / "work-engines"
    shutil.rmtree(work, ignore_errors=True)
    rows = a.rows
    print(f"machine: {os.cpu_count()} cores; {rows:,} rows in {files} files, list "
          f"{a.list_size:,} entries; whole `datahygiene scan` commands, start to exit", flush=True)
    print(software_line(("pyarrow", "numba", "numpy", "ray")), flush=True)

    results: dict[str, float] = {}
    outs: dict[str, Path] = {}
    engines = ["local"] if a.skip_ray else ["local", "ray"]
    for engine in engines:
        outs[engine] = work / engine
        results[engine] = _timed(_scan_args(d, outs[engine], "--engine", engine))
        print(f"  {engine:<14} {results[engine]:7.2f}s", flush=True)
    if "ray" in outs and _digests(outs["ray"]) != _digests(outs["local"]):
        raise SystemExit("the Ray engine's outputs differ from the local engine's")

    full_out, resumed_out = work / "uninterrupted", work / "resumed"
    t_full = _timed(_scan_args(d, full_out, "--write-clean"))
    print(f"  {'uninterrupted':<14} {t_full:7.2f}s", flush=True)
    t_killed, seen = _killed_at(_scan_args(d, resumed_out, "--write-clean"), resumed_out, files // 2)
    print(f"  {'killed':<14} {t_killed:7.2f}s  ({seen} of {files} inputs recorded done)", flush=True)
    t_resumed = _timed(_scan_args(d, resumed_out, "--write-clean", "--resume"))
    print(f"  {'resumed':<14} {t_resumed:7.2f}s", flush=True)
    if _digests(resumed_out) != _digests(full_out):
        raise SystemExit("the resumed run's outputs differ from the uninterrupted run's")

    print(f"\n{'engine':<10}{'wall s':>9}{'rows/s':>14}")
    for engine in engines:
        print(f"{engine:<10}{results[engine]:>9.2f}{rows / results[engine]:>14,.0f}")
    if "ray" in results:
        print(f"\nRay on one node / local: time {results['ray'] / results['local']:.2f} "
              "(outputs byte-identical)")
    print(f"\nresume (--write-clean, killed after {seen}/{files} inputs):")
    print(f"  uninterrupted {t_full:.2f}s; killed run {t_killed:.2f}s; resumed run {t_resumed:.2f}s")
    print(f"  resumed / uninterrupted: time {t_resumed / t_full:.2f} "
          f"(the {files - seen} unfinished inputs are {(files - seen) / files:.0%} of the work)")
    print(f"  (killed + resumed) / uninterrupted: time {(t_killed + t_resumed) / t_full:.2f} "
          "(outputs byte-identical)")


if __name__ == "__main__":
    main()
