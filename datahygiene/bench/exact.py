"""Benchmark: exact-hash scanning against the floors and peers named in issue 2.

Run with ``make bench`` (20M rows, 5M-entry list, 1,000 planted matches; a copy with
binary md5; a copy with matches as rare as LAION-5B's; the same rows in img2dataset-
sized files of 10,000 rows, zstd- and snappy-compressed (snappy is pyarrow's default
codec, so img2dataset's); the 10M -> 40M scaling check; the memory each input file
adds, 2M rows in 200 and in 20,000 files) or ``make bench-quick``. Each contender
runs in its own Python process, on the same files, ``--repeat`` times (median
reported); the contenders of a table take turns, one run each per round, so that the
host's load drifting over the minutes of a table falls on all of them alike; a
table's files are read once before its runs, so that every run finds them in the page
cache. Each run reports its wall time, rows/s, peak RSS (VmHWM of that process) and
page faults.
The wall time is the work only: the interpreter's start and every module import --
including those made lazily, such as pandas (which pyarrow loads the first time an
array is built) and datahygiene's audit and report modules -- happen before the clock
starts, for every contender alike: numba's own (the modules its first compiled call
imports, ``NUMBA_LAZY_MODULES``) and the plugins' too. What a first call costs beyond
its imports (numba building its registries, loading the compiled kernels; DuckDB
opening its connection) stays in. The whole process's time, start and
imports included, is printed as well ("process s"), and so is the CPU time (user +
system, all threads) the timed work used ("cpu s"): on 2 cores, a contender needing
more CPU than another cannot finish sooner than half its CPU time.
Ratios are ``ours / baseline`` (<= 1.0 means we are at least as fast / as small).
Numbers are only comparable on an otherwise idle machine.

Contenders:
  floor-pyarrow      bare pyarrow dataset scan of only the md5 column (the I/O floor)
  duckdb-semijoin    DuckDB: load the list, semi-join the md5 column against it, count
  polars-semijoin    polars lazy: the same semi-join
  datahygiene        ``datahygiene scan`` producing all its outputs (no clean copy)
  datahygiene-no-reports  the same without report stubs (``reporters = []``): shows
                     what the CyberTipline stub's reading of matched rows costs
  datahygiene-lean   without report stubs and with BLAKE3 input digests: what the
                     scan itself costs, beside the two costs of evidence and reporting
                     that DuckDB's count does not have (a diagnostic, not a mode)
  pyarrow-rewrite    bare pyarrow: read every file, drop listed rows (is_in), write
  datahygiene-clean  ``datahygiene scan --write-clean``

With ``--sparse`` (LAION-rare matches), also:
  datahygiene-blake3  ``datahygiene scan --input-digest blake3``: the input digests
                     (coverage evidence) in BLAKE3 instead of the default SHA-256

With ``--urls`` (in ``make bench``), on a quarter of the rows and a url-sha256 list:
  duckdb-url-semijoin  DuckDB: semi-join ``sha256(url)`` (the URL as stored) against it
  datahygiene-url      ``datahygiene scan`` with the list: normalise, hash, match
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datahygiene.bench import software_line

CONTENDERS = ["floor-pyarrow", "duckdb-semijoin", "polars-semijoin", "datahygiene",
              "datahygiene-no-reports", "datahygiene-lean", "pyarrow-rewrite", "datahygiene-clean"]


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). ru_maxrss would not do: Linux carries
    it over from the parent across fork and exec, so every child would report at
    least the benchmark driver's own peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def dataset_dir(base: Path, rows: int, list_size: int, binary: bool = False,
                planted: int | None = None, file_rows: int | None = None,
                urls: bool = False, compression: str = "zstd") -> Path:
    """Where a dataset lives; ``planted`` names a non-default number of planted rows,
    ``file_rows`` a non-default number of rows per file, ``urls`` a URL-digest list,
    ``compression`` a codec other than zstd."""
    return base / (f"exact-{rows}-{list_size}{'-binary' if binary else ''}"
                   + (f"-planted{planted}" if planted is not None else "")
                   + (f"-files{file_rows}" if file_rows is not None else "")
                   + ("-urls" if urls else "")
                   + (f"-{compression}" if compression != "zstd" else ""))


def ensure_data(base: Path, rows: int, list_size: int, planted: int, binary: bool = False,
                tag_planted: bool = False, file_rows: int | None = None,
                urls: bool = False, compression: str = "zstd") -> Path:
    """The dataset, generated once: files of 1M rows in row groups of 262,144 (or, with
    ``file_rows``, files of that many rows in one row group each, as img2dataset
    writes its shards), compressed with ``compression``."""
    from datahygiene.synth import SynthSpec, write_synthetic

    d = dataset_dir(base, rows, list_size, binary, planted if tag_planted else None, file_rows, urls,
                    compression)
    if (d / "planted.json").exists():
        return d
    files = max(1, rows // (file_rows or 1_000_000))
    t = time.perf_counter()
    print(f"generating {rows:,} rows in {files} files and a {list_size:,}-entry list in {d} ...",
          flush=True)
    write_synthetic(d, SynthSpec(rows=rows, files=files, list_size=list_size, planted=planted,
                                 malformed=0, row_group_size=file_rows or 262_144, seed=7,
                                 binary=binary, url_list=urls, compression=compression))
    print(f"  done in {time.perf_counter() - t:.1f}s", flush=True)
    return d


def _list_path(d: Path) -> str:
    return str(d / "lists" / "md5.txt")


# DuckDB's side: the text list as a table, and the semi-join of the manifest's md5 on it
LIST_TABLE_SQL = ("CREATE TABLE l AS SELECT column0 AS h FROM read_csv(?, header = false, comment = '#', "
                  "columns = {'column0': 'VARCHAR'})")
SEMIJOIN_SQL = "SELECT count(*) FROM read_parquet(?) m SEMI JOIN l ON m.md5 = l.h"


def ensure_stored(d: Path) -> Path:
    """The dataset's list prepared once, as a curator keeps it between scans: imported
    into a list store (encrypted, with its scan index) for us, and into a DuckDB
    database file for DuckDB. Made outside every timing; returns the directory."""
    import duckdb

    from datahygiene.lists.spec import ListSpec
    from datahygiene.plugins import default_registry
    from datahygiene.sources.files import FileListSource
    from datahygiene.store import ListStore
    from datahygiene.store.crypto import write_key_file
    from datahygiene.store.source import build_scan_index, hashlists_to_entries

    out = d / "stored"
    if (out / "done").exists():
        return out
    out.mkdir(mode=0o700, exist_ok=True)
    key = out / "store.key"
    if not key.exists():
        write_key_file(key)  # a fresh random key for this synthetic list
    registry = default_registry()
    lists = FileListSource().load(ListSpec(path=_list_path(d), signal="md5"), registry)
    store = ListStore.open(out / "store", create=True, key_ref={"file": str(key.resolve())})
    store.write_snapshot("bench", hashlists_to_entries(lists), {"source": "file"},
                         scan_index=build_scan_index(registry))
    db = out / "list.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    con.execute(LIST_TABLE_SQL, [_list_path(d)])
    con.close()
    (out / "done").write_text("")
    return out


def _files(d: Path) -> list[str]:
    return sorted(str(p) for p in (d / "manifest").glob("*.parquet"))


# Modules a datahygiene scan imports as it goes (checked: after these, the plugins' and
# numba's below, a benchmark scan imports none).
SCAN_MODULES = (
    "ctypes.util", "encodings.utf_8_sig", "fsspec.implementations.chained", "pyarrow.acero",
    "pyarrow.dataset",
    "datahygiene.allocator", "datahygiene.audit.evidence", "datahygiene.reporters.cybertipline",
    "datahygiene.reporters.summary", "datahygiene.scan", "datahygiene.store.source",
)
# Modules numba imports on its first compiled call, kernels from the cache or not (its
# CPU target's implementation and typing registries: ``load_additional_registries`` in
# numba/core/cpu.py and numba/core/typing/context.py), 0.09-0.15 s of a scan's first
# kernel call here. Imported before the clock like every other module; building the
# registries from them (0.06 s) stays inside it. A name this numba lacks is skipped.
NUMBA_LAZY_MODULES = (
    "numba.cpython.builtins", "numba.cpython.charseq", "numba.cpython.enumimpl",
    "numba.cpython.hashing", "numba.cpython.heapq", "numba.cpython.iterators",
    "numba.cpython.listobj", "numba.cpython.numbers", "numba.cpython.rangeobj",
    "numba.cpython.setobj", "numba.cpython.slicing", "numba.cpython.tupleobj",
    "numba.cpython.unicode", "numba.core.optional", "numba.core.inline_closurecall",
    "numba.misc.gdb_hook", "numba.misc.literal", "numba.np.linalg", "numba.np.arraymath",
    "numba.np.arrayobj", "numba.np.random.generator_core", "numba.np.random.generator_methods",
    "numba.np.random.legacy", "numba.np.polynomial.polynomial_core",
    "numba.np.polynomial.polynomial_functions", "numba.typed.typeddict",
    "numba.typed.dictimpl", "numba.typed.typedlist", "numba.typed.listobject",
    "numba.typed.typedset", "numba.typed.setobject", "numba.experimental.jitclass",
    "numba.experimental.function_type", "numba.np.types.datetime_registry",
    "numba.np.npdatetime", "numba.np.npyimpl", "numba.cpython.cmathimpl",
    "numba.cpython.mathimpl", "numba.cpython.printimpl", "numba.cpython.randomimpl",
    "numba.misc.cffiimpl", "numba.experimental.jitclass.base", "numba.core.typing.cffi_utils",
    "numba.core.typing.cmathdecl", "numba.core.typing.enumdecl", "numba.core.typing.listdecl",
    "numba.core.typing.mathdecl", "numba.core.typing.npydecl", "numba.core.typing.setdecl",
    "numba.core.typing.dictdecl", "numba.core.typing.arraydecl", "numba.core.typing.bufproto",
)


def _import_for(name: str) -> None:
    """Import what a contender will use, so that no import lands inside its timing."""
    import importlib

    import pyarrow as pa

    pa.array([0])  # pyarrow imports pandas (when installed) the first time it builds one
    if name in ("duckdb-semijoin", "duckdb-url-semijoin", "duckdb-semijoin-stored"):
        import duckdb  # noqa: F401
    elif name == "polars-semijoin":
        import polars  # noqa: F401
    elif name.startswith("datahygiene"):
        from importlib import metadata

        from datahygiene.plugins import GROUPS

        for module in SCAN_MODULES:
            importlib.import_module(module)
        # the plugins' modules, which a scan's registry loads (imports only: the
        # registry is built in the timed work)
        for group in GROUPS.values():
            for ep in metadata.entry_points(group=group):
                ep.load()
        for module in NUMBA_LAZY_MODULES:
            with contextlib.suppress(ImportError):
                importlib.import_module(module)


def run_child(name: str, d: Path, threads: int, work: Path) -> dict[str, Any]:
    """Run one contender in this process; return its measurements."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    rows = matched = 0
    phases: dict[str, float] = {}
    total_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in _files(d))
    _import_for(name)
    modules0 = set(sys.modules)
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cpu0 = os.times()
    t0 = time.perf_counter()
    if name == "floor-pyarrow":
        pa.set_cpu_count(threads)
        for batch in ds.dataset(_files(d), format="parquet").to_batches(columns=["md5"]):
            rows += batch.num_rows
            matched += batch.column(0).null_count  # touch the data
    elif name == "duckdb-semijoin":
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        con.execute(LIST_TABLE_SQL, [_list_path(d)])
        row = con.execute(SEMIJOIN_SQL, [_files(d)]).fetchone()
        matched = int(row[0]) if row else 0
        rows = total_rows
    elif name == "duckdb-semijoin-stored":
        import duckdb

        con = duckdb.connect(str(d / "stored" / "list.duckdb"), read_only=True)
        con.execute(f"SET threads = {threads}")
        row = con.execute(SEMIJOIN_SQL, [_files(d)]).fetchone()
        matched = int(row[0]) if row else 0
        rows = total_rows
    elif name == "duckdb-url-semijoin":
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        con.execute("CREATE TABLE l AS SELECT hash AS h FROM read_csv(?, header = true)",
                    [str(d / "lists" / "urls.csv")])
        row = con.execute(
            "SELECT count(*) FROM read_parquet(?) m SEMI JOIN l ON sha256(m.url) = l.h", [_files(d)]
        ).fetchone()
        matched = int(row[0]) if row else 0
        rows = total_rows
    elif name == "polars-semijoin":
        os.environ.setdefault("POLARS_MAX_THREADS", str(threads))
        import polars as pl

        lst = pl.read_csv(_list_path(d), has_header=False, comment_prefix="#",
                          new_columns=["md5"], schema={"md5": pl.String})
        lf = pl.scan_parquet(_files(d)).select("md5")
        matched = lf.join(lst.lazy(), on="md5", how="semi").select(pl.len()).collect().item()
        rows = total_rows
    elif name in ("datahygiene", "datahygiene-clean", "datahygiene-no-reports", "datahygiene-lean",
                  "datahygiene-url", "datahygiene-stored", "datahygiene-blake3"):
        from datahygiene.allocator import freeze_startup_objects, tune_allocator
        from datahygiene.config import ScanConfig
        from datahygiene.lists.spec import ListSpec
        from datahygiene.scan import run_scan

        out = work / name
        tune_allocator()  # as the `datahygiene` command does at start
        freeze_startup_objects()  # as `datahygiene scan` does before scanning
        spec = (ListSpec(path=str(d / "lists" / "urls.csv")) if name == "datahygiene-url"
                else ListSpec(path="bench", signal="md5", source="store",
                              options={"store": str(d / "stored" / "store")})
                if name == "datahygiene-stored"
                else ListSpec(path=_list_path(d), signal="md5"))
        config = ScanConfig(manifests=[str(d / "manifest")], lists=[spec],
                            out=str(out), threads=threads,
                            write_clean=name == "datahygiene-clean")
        if name in ("datahygiene-no-reports", "datahygiene-lean"):
            config.reporters = []
        if name in ("datahygiene-blake3", "datahygiene-lean"):
            config.input_digest = "blake3"
        res = run_scan(config)
        rows = res.summary["rows"]["scanned"]
        matched = res.summary["rows"]["excluded"]
        phases = dict(res.run["timings_s"])
    elif name == "pyarrow-rewrite":
        pa.set_cpu_count(threads)
        lines = Path(_list_path(d)).read_text().split("\n")
        value_set = pa.array([x for x in lines if x and not x.startswith("#")], pa.string())
        out = work / name
        out.mkdir(parents=True, exist_ok=True)
        for f in _files(d):
            table = pq.read_table(f)
            hit = pc.is_in(table.column("md5"), value_set=value_set)
            keep = pc.invert(pc.fill_null(hit, False))
            rows += table.num_rows
            matched += table.num_rows - int(pc.sum(keep).as_py() or 0)
            pq.write_table(table.filter(keep), out / Path(f).name, compression="zstd")
    else:
        raise SystemExit(f"unknown contender {name}")
    seconds = time.perf_counter() - t0
    cpu1 = os.times()
    cpu_seconds = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    if phases:  # what ran after run.json's clock stopped: evidence, reports, commit
        phases["after"] = round(seconds - phases.pop("total"), 3)
    return {"name": name, "seconds": seconds, "cpu_seconds": cpu_seconds, "rows": int(rows),
            "matched": int(matched),
            "phases": phases,
            "peak_rss_mb": _peak_rss_mb(),
            "page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0,
            # modules first imported inside the timed work (the rule: none)
            "late_imports": sorted(set(sys.modules) - modules0)}


def spawn(name: str, d: Path, threads: int, work: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "datahygiene.bench.exact", "--child", name, "--data", str(d),
           "--threads", str(threads), "--work", str(work)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    process_seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
    out = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    out["process_seconds"] = process_seconds
    return out


def median_run(name: str, d: Path, threads: int, work: Path, repeat: int) -> dict[str, Any]:
    """The run of median wall time among ``repeat`` runs of a contender."""
    return median_runs([name], d, threads, work, repeat)[name]


def warm_page_cache(d: Path) -> None:
    """Read every file of a table's data once before its runs, so that none reads from
    disk what those after it find in memory: the benchmark's data (3-4 GB in all)
    outgrows what this machine's page cache kept (about 2 GB, 2026-12-07), and the
    first contender of a table, the baseline, found its files evicted by the table
    before (DuckDB's first run on the main table: 2.35 s, then 1.48 s)."""
    buf = bytearray(8 << 20)
    for p in sorted(d.rglob("*")):
        if p.is_file():
            with open(p, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass


def median_runs(names: list[str], d: Path, threads: int, work: Path, repeat: int,
                each: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
    """Each contender's run of median wall time among ``repeat``, the contenders taking
    turns (one run each per round): a host whose load drifts over the minutes of a
    table slows all of them alike, where runs one contender after another put the
    drift between them. ``each(name, run)`` is called after every run. Each median run
    also holds ``rounds``: the contender's wall times, round by round. The table's
    files are read once first (:func:`warm_page_cache`)."""
    warm_page_cache(d)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for _ in range(max(1, repeat)):
        for n in names:
            r = spawn(n, d, threads, work)
            runs[n].append(r)
            if each:
                each(n, r)
    return {n: {**sorted(rs, key=lambda x: x["seconds"])[len(rs) // 2],
                "rounds": [r["seconds"] for r in rs]} for n, rs in runs.items()}


def round_ratios(ours: dict[str, Any], base: dict[str, Any]) -> str:
    """Ours / baseline within each round (the two ran minutes apart at most, so a host
    whose load drifts moves both): their range and median, where there were rounds."""
    a, b = ours.get("rounds", []), base.get("rounds", [])
    if len(a) < 2 or len(a) != len(b):
        return ""
    r = sorted(x / y for x, y in zip(a, b, strict=True))
    return f"   (per round {r[0]:.2f}-{r[-1]:.2f}, median {r[len(r) // 2]:.2f})"


def compare(baseline: str, ours: str, d: Path, threads: int, work: Path, repeat: int,
            also: tuple[str, ...] = ()) -> None:
    """Run a baseline and our contender(s) on ``d``; print each and ours / baseline."""
    width = max(16, len(baseline) + 1, *(len(x) + 1 for x in (ours, *also)))
    runs = median_runs([baseline, ours, *also], d, threads, work, repeat)
    for name in (baseline, ours, *also):
        r = runs[name]
        phases = "  ".join(f"{k} {v:.2f}" for k, v in r.get("phases", {}).items())
        print(f"  {name:<{width}} {r['seconds']:.2f}s  {r['rows'] / r['seconds']:,.0f} rows/s  "
              f"peak RSS {r['peak_rss_mb']:,.0f} MB  matched {r['matched']:,}  "
              f"cpu {r['cpu_seconds']:.2f}s" + (f"  ({phases})" if phases else "")
              + (f"  [imported in the timed work: {', '.join(r['late_imports'])}]"
                 if r.get("late_imports") else ""))
    for name in (ours, *also):
        print(f"  {name} / {baseline}   time {runs[name]['seconds'] / runs[baseline]['seconds']:.2f}"
              + round_ratios(runs[name], runs[baseline]))


def print_table(results: list[dict[str, Any]], planted: int) -> None:
    by = {r["name"]: r for r in results}
    print(f"\n{'contender':<24}{'wall s':>8}{'rows/s':>14}{'peak RSS MB':>13}{'matched':>9}"
          f"{'process s':>11}{'cpu s':>8}  {'runs s':>11}")
    for r in results:
        rounds = r.get("rounds") or [r["seconds"]]
        print(f"{r['name']:<24}{r['seconds']:>8.2f}{r['rows'] / r['seconds']:>14,.0f}"
              f"{r['peak_rss_mb']:>13,.0f}{r['matched']:>9,}{r.get('process_seconds', 0):>11.2f}"
              f"{r.get('cpu_seconds', 0):>8.2f}  {min(rounds):>5.2f}-{max(rounds):<5.2f}")
    clean = by.get("datahygiene-clean")
    print("\nratios (ours / baseline; time <= 1.0 means at least as fast):")
    for mine in ("datahygiene", "datahygiene-no-reports", "datahygiene-lean"):
        for base in ("floor-pyarrow", "duckdb-semijoin", "polars-semijoin"):
            if mine in by and base in by:
                o, b = by[mine], by[base]
                print(f"  {mine} / {base:<17} time {o['seconds'] / b['seconds']:.2f}   "
                      f"peak RSS {o['peak_rss_mb'] / b['peak_rss_mb']:.2f}" + round_ratios(o, b))
    if clean and "pyarrow-rewrite" in by:
        b = by["pyarrow-rewrite"]
        print(f"  datahygiene-clean / pyarrow-rewrite   time {clean['seconds'] / b['seconds']:.2f}   "
              f"peak RSS {clean['peak_rss_mb'] / b['peak_rss_mb']:.2f}")
    wrong = [r["name"] for r in results if r["name"] != "floor-pyarrow" and r["matched"] != planted]
    print(f"\nplanted matches: {planted}; contenders that found a different count: "
          f"{', '.join(wrong) or 'none'}")
    late = [f"{r['name']} ({', '.join(r['late_imports'])})" for r in results if r.get("late_imports")]
    print(f"modules first imported inside a contender's timed work: {'; '.join(late) or 'none'}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=20_000_000)
    p.add_argument("--list-size", type=int, default=5_000_000)
    p.add_argument("--planted", type=int, default=1_000)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--dir", default="bench-out", help="where data and outputs go (reused)")
    p.add_argument("--only", help="comma-separated contenders of the main table to run (\"\": none)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per contender; the median wall time is reported (default 3)")
    p.add_argument("--scaling", default="", help="comma-separated row counts for the memory "
                   "scaling check of our scan, e.g. 10000000,40000000")
    p.add_argument("--scaling-rare", default="", help="comma-separated row counts for the "
                   "marginal cost per row at LAION-5B's match density, ours (SHA-256 and BLAKE3 "
                   "input digests) and DuckDB's, e.g. 10000000,40000000")
    p.add_argument("--binary", action="store_true",
                   help="also scan a copy of the manifest whose md5 column is 16-byte binary")
    p.add_argument("--sparse", action="store_true",
                   help="also compare us and DuckDB on a manifest with matches as rare as "
                   "LAION-5B's (about one row in 5 million)")
    p.add_argument("--stored", action="store_true",
                   help="also compare us and DuckDB with LAION-rare matches and the list prepared "
                   "once: in our list store, and in a DuckDB database file")
    p.add_argument("--small-files", action="store_true",
                   help="also compare us and DuckDB on the same rows in files of 10,000 rows "
                   "(img2dataset's shards), with LAION-rare matches, zstd- and then "
                   "snappy-compressed (img2dataset's codec)")
    p.add_argument("--urls", action="store_true",
                   help="also compare a url-sha256 scan of a quarter of the rows with DuckDB "
                   "semi-joining sha256(url) (DuckDB hashes the URL as stored; we normalise it "
                   "first)")
    p.add_argument("--many-files", type=int, default=0, metavar="N",
                   help="also scan 2,000,000 rows in 200 files and in N files (N=20000: 100 rows "
                   "each) and print the peak memory each input file adds")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        from datahygiene.entry import tune_environment

        tune_environment()  # as the `datahygiene` command does, before numpy and pyarrow load
        print(json.dumps(run_child(a.child, Path(a.data), a.threads, Path(a.work))))
        return
    base = Path(a.dir)
    d = ensure_data(base, a.rows, a.list_size, a.planted)
    work = base / "work"
    # --only "": none of the main table's contenders (only the sections asked for)
    names = [n for n in a.only.split(",") if n] if a.only is not None else CONTENDERS
    print(f"machine: {os.cpu_count()} cores; threads per contender: {a.threads}; "
          f"{a.rows:,} rows, list {a.list_size:,} entries, {a.planted:,} planted")
    print(software_line(), flush=True)
    def each(name: str, r: dict[str, Any]) -> None:
        phases = "  ".join(f"{k} {v:.2f}" for k, v in r.get("phases", {}).items())
        print(f"  {name:<18} {r['seconds']:.2f}s  {r['peak_rss_mb']:,.0f} MB  "
              f"{r['page_faults']:,} page faults" + (f"  ({phases})" if phases else ""), flush=True)

    medians = median_runs(names, d, a.threads, work, a.repeat, each)
    results = [medians[n] for n in names]
    if results:
        print_table(results, a.planted)
    if a.binary:
        db = ensure_data(base, a.rows, a.list_size, a.planted, binary=True)
        rb = median_run("datahygiene", db, a.threads, work, a.repeat)
        hexr = next((r for r in results if r["name"] == "datahygiene"), None)
        print(f"\n`datahygiene scan` on the same rows with md5 stored as 16-byte binary: "
              f"{rb['seconds']:.2f}s, {rb['rows'] / rb['seconds']:,.0f} rows/s, "
              f"peak RSS {rb['peak_rss_mb']:,.0f} MB, matched {rb['matched']:,}"
              + (f" (binary / hex time {rb['seconds'] / hexr['seconds']:.2f})" if hexr else ""))
    if a.sparse:
        # About a thousand verified items in 5.85 billion rows: one in ~5 million. At
        # that density hardly any row group holds a match, so almost nothing is read
        # back for keys and report stubs: the scan itself is what is measured.
        k = max(1, a.rows // 5_000_000)
        dsp = ensure_data(base, a.rows, a.list_size, k, tag_planted=True)
        print(f"\nmatches as rare as in LAION-5B: {k:,} planted in {a.rows:,} rows "
              "(median of --repeat runs):")
        compare("duckdb-semijoin", "datahygiene", dsp, a.threads, work, a.repeat,
                also=("datahygiene-blake3",))
    if a.stored:
        k = max(1, a.rows // 5_000_000)
        dsp = ensure_data(base, a.rows, a.list_size, k, tag_planted=True)
        ensure_stored(dsp)
        print(f"\nthe same {k:,} planted in {a.rows:,} rows, the list prepared once (ours: the list "
              "store with its scan index; DuckDB: a database file holding the list table; median "
              "of --repeat runs):")
        compare("duckdb-semijoin-stored", "datahygiene-stored", dsp, a.threads, work, a.repeat)
    if a.small_files:
        # img2dataset writes one parquet file per shard of 10,000 images: a LAION-scale
        # run reads hundreds of thousands of small files, where per-file costs count.
        k = max(1, a.rows // 5_000_000)
        dsf = ensure_data(base, a.rows, a.list_size, k, tag_planted=True, file_rows=10_000)
        print(f"\nthe same rows in {a.rows // 10_000:,} files of 10,000 rows, {k:,} planted "
              "(median of --repeat runs):")
        compare("duckdb-semijoin", "datahygiene", dsf, a.threads, work, a.repeat)
        # as img2dataset writes them: pyarrow's default codec, snappy
        dss = ensure_data(base, a.rows, a.list_size, k, tag_planted=True, file_rows=10_000,
                          compression="snappy")
        print(f"\nthe same {a.rows // 10_000:,} files of 10,000 rows compressed with snappy, "
              "img2dataset's codec (median of --repeat runs):")
        compare("duckdb-semijoin", "datahygiene", dss, a.threads, work, a.repeat)
    if a.urls:
        n = max(1, a.rows // 4)
        du = ensure_data(base, n, a.list_size // 4, a.planted, urls=True)
        print(f"\nurl-sha256 digests of {n:,} rows' URLs, {a.planted:,} planted "
              "(median of --repeat runs):")
        compare("duckdb-url-semijoin", "datahygiene-url", du, a.threads, work, a.repeat)
    if a.many_files:
        # A scan reads every input's footer before it starts and keeps a little of each:
        # memory grows with the number of files, not the rows (see docs/scaling.md)
        rows, small_list = 2_000_000, max(1, a.list_size // 50)
        few = ensure_data(base, rows, small_list, 2, tag_planted=True, file_rows=rows // 200)
        many = ensure_data(base, rows, small_list, 2, tag_planted=True,
                           file_rows=max(1, rows // a.many_files))
        print(f"\nthe same {rows:,} rows in 200 and in {a.many_files:,} files, a {small_list:,}-entry "
              "list (median of --repeat runs):")
        got = []
        for files, dn in ((200, few), (a.many_files, many)):
            r = median_run("datahygiene", dn, a.threads, work, a.repeat)
            got.append(r)
            print(f"  datahygiene  {files:>7,} files  {r['seconds']:.2f}s  "
                  f"{r['rows'] / r['seconds']:,.0f} rows/s  peak RSS {r['peak_rss_mb']:,.0f} MB")
        per_file = (got[1]["peak_rss_mb"] - got[0]["peak_rss_mb"]) / (a.many_files - 200) * 1024
        print(f"  peak RSS per added input file: {per_file:.1f} KB")
    if a.scaling:
        sizes = [int(x) for x in a.scaling.split(",")]
        print("\nscaling with the manifest (same list size; median of --repeat runs):")
        scaling(base, sizes, a, work, {"datahygiene": [], "duckdb-semijoin": []},
                lambda n: ensure_data(base, n, a.list_size, a.planted), memory=True)
    if a.scaling_rare:
        sizes = [int(x) for x in a.scaling_rare.split(",")]
        print("\nscaling at LAION-5B's match density (one planted row in 5 million; median of "
              "--repeat runs): the per-row cost that decides a billion-row scan")
        scaling(base, sizes, a, work,
                {"datahygiene": [], "datahygiene-blake3": [], "duckdb-semijoin": []},
                lambda n: ensure_data(base, n, a.list_size, max(1, n // 5_000_000),
                                      tag_planted=True), memory=False)


def scaling(base: Path, sizes: list[int], a: argparse.Namespace, work: Path,
            by: dict[str, list[dict[str, Any]]], data: Any, memory: bool) -> None:
    """Run each contender on each size; print peak RSS growth (``memory``) and the
    marginal time per added row, ours / DuckDB's."""
    for n in sizes:
        dn = data(n)
        got = median_runs(list(by), dn, a.threads, work, a.repeat)
        for name in by:
            r = got[name]
            by[name].append(r)
            print(f"  {name:<18} {n:>12,} rows  {r['seconds']:.2f}s  "
                  f"{r['rows'] / r['seconds']:,.0f} rows/s  peak RSS {r['peak_rss_mb']:,.0f} MB")
    if memory:
        rss = [r["peak_rss_mb"] for r in by["datahygiene"]]
        print(f"  datahygiene peak RSS growth {sizes[0]:,} -> {sizes[-1]:,} rows: "
              f"{rss[-1] / rss[0] - 1:+.1%} (target < +20%)")
    # Marginal throughput: the rows added divided by the time they added. Fixed
    # costs (list loading, start-up, writing outputs) cancel out; what remains is
    # the per-row cost that decides a billion-row scan.
    added = sizes[-1] - sizes[0]
    marginal = {k: added / max(1e-9, v[-1]["seconds"] - v[0]["seconds"]) for k, v in by.items()}
    print(f"  marginal rows/s ({sizes[0]:,} -> {sizes[-1]:,}): "
          + ", ".join(f"{k} {v:,.0f}" for k, v in marginal.items()))
    for k in by:
        if k != "duckdb-semijoin":
            print(f"  {k} / duckdb-semijoin time per added row "
                  f"{marginal['duckdb-semijoin'] / marginal[k]:.2f}")

if __name__ == "__main__":
    main()
