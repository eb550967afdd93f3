"""Running a scan end to end: load lists, find inputs, run an engine, write outputs.

This is the library entry point (``datahygiene.scan.run_scan``); the CLI is a thin
layer over it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datahygiene import __version__, kernels
from datahygiene.config import ScanConfig
from datahygiene.engines.local import (
    Task,
    TaskResult,
    default_threads,
    plan_tasks,
    run_ordered,
    run_task,
)
from datahygiene.errors import ConfigError, DatahygieneError, InputError, InterruptedAfterCommit, OutputError
from datahygiene.keycheck import KeyNotUnique, null_keys, rows_sharing_flagged_keys
from datahygiene.lists.files import shown_columns
from datahygiene.lists.model import HashList
from datahygiene.manifest import (
    WHOLE_LOCAL_MAX,
    WHOLE_REMOTE_MAX,
    Footer,
    FooterReader,
    InputDigests,
    InputFile,
    WholeReads,
    read_local_whole,
    remote_at_once,
    resolve_manifests,
)
from datahygiene.outputs import RESTRICTED, write_parquet, writing
from datahygiene.plugins import Registry, default_registry
from datahygiene.reporters.base import RowDetails
from datahygiene.resume import WORK_DIR, InputChanged, WorkArea, resume_identity
from datahygiene.step import EMPTY_EXCLUSIONS, BatchTransform, Check, ScanPlan
from datahygiene.summary import summarize

EXCLUSIONS = f"{RESTRICTED}/exclusions.parquet"
RUN_FORMAT = "datahygiene-run/2"  # 2: inputs[].digest (ALGORITHM:HEX) replaces inputs[].sha256

ProgressFn = Callable[[int, int], None]
# a Ctrl-C once run.json is in place: exit 130 still, but the run in OUT is complete
COMMITTED_NOTE = "the run was committed first ({out}/run.json is complete)"


@dataclass
class ScanResult:
    out: Path
    summary: dict[str, Any]
    run: dict[str, Any]
    exclusions: pa.Table = field(repr=False)


def load_lists(config: ScanConfig, registry: Registry) -> list[HashList]:
    lists: list[HashList] = []
    for spec in config.lists:
        source = registry.get("sources", spec.source).obj()
        lists.extend(source.load(spec, registry))
    seen: dict[tuple[str, str], str] = {}
    for hl in lists:
        k = (hl.id, hl.signal)
        if k in seen:
            raise ConfigError(f"list {hl.id} ({hl.signal}) is given twice ({seen[k]} and "
                              f"{hl.source}); give each list a distinct name or version")
        seen[k] = hl.source
    return lists


def _check_options(config: ScanConfig, registry: Registry) -> None:
    """[scan.options.NAME]: NAME is a signal or a service, and a signal's options are
    ones it reads, with values of the right type (even for a signal with no list in
    this run: a config's misspelling would surface only on the run that needs it)."""
    signals, services = registry.names("signals"), registry.names("services")
    for name, opts in sorted(config.options.items()):
        if not isinstance(opts, dict):
            raise ConfigError(f"[scan.options.{name}] must be a table of options")
        if name in signals:
            registry.signal(name, options=dict(opts))  # refuses an unknown option or type
        elif name not in services:
            raise ConfigError(f"[scan.options]: {name!r} is not a signal or service; known: "
                              f"{', '.join(sorted([*signals, *services]))}")


def build_plan(lists: list[HashList], config: ScanConfig, registry: Registry,
               key_column: str | None) -> ScanPlan:
    by_signal: dict[str, list[HashList]] = {}
    for hl in lists:
        by_signal.setdefault(hl.signal, []).append(hl)
    for name in sorted(set(config.columns) - set(by_signal)):
        registry.get("signals", name)  # an unknown signal name: the error lists the known ones
    _check_options(config, registry)
    unknown = sorted(set(config.columns) - set(by_signal) - config.file_columns)
    if unknown:
        raise ConfigError(f"--column names signal(s) with no list: {', '.join(unknown)}")
    checks: list[Check] = []
    for name in sorted(by_signal):
        group = by_signal[name]
        probe = registry.signal(name)
        thresholds = [hl.threshold for hl in group if hl.threshold is not None]
        threshold = max(thresholds) if thresholds else None
        sig = registry.signal(name, threshold=threshold,
                              options=dict(config.options.get(name, {})))
        column = config.columns.get(name, probe.default_column)
        checks.append(Check(sig, column, group))
    transforms: list[BatchTransform] = []
    if (config.image_column or config.image_path_column or config.webdataset or config.compute
            or config.dihedral or any(c.signal.options.get("quality_column") for c in checks)):
        from datahygiene.content import attach_content  # signals computed from images

        checks, transforms = attach_content(checks, config)
    if config.services:
        from datahygiene.services.check import ServiceCheck

        services = [ServiceCheck(registry.get("services", name).obj(options=dict(config.options.get(
            name, {}))), config.image_column or "image") for name in config.services]
        return ScanPlan([*checks, *services], key_column, transforms)
    return ScanPlan(checks, key_column, transforms)


def _signals(plan: ScanPlan) -> dict[str, Any]:
    """The signal types a plan checks, by name (services are not among them)."""
    return {sig.name: sig for sig in (getattr(c, "signal", None) for c in plan.checks)
            if sig is not None}


def _columns_in_force(config: ScanConfig, plan: ScanPlan) -> dict[str, str]:
    """The ``[columns]`` that change what a run reads, as recorded in run.json and its
    id: ``--column md5=md5`` names the column the scan reads anyway, and a config's
    entry for a signal with no list is not used, so neither may change the run id
    (the same run, given either way, would not resume). An exact signal's entry is
    dropped when it names the signal's default column; a perceptual signal's is kept,
    since naming its column (even the default one) means "read it, do not compute it"."""
    used = _signals(plan)
    return {name: column for name, column in sorted(config.columns.items())
            if name in used and not (getattr(used[name], "exact", False)
                                     and column == used[name].default_column)}


def _options_in_force(config: ScanConfig, plan: ScanPlan) -> dict[str, Any]:
    """The ``[scan.options.NAME]`` that change what a run does, as recorded in run.json
    and its id: a signal's options less those given with their default value
    (``normalization = "basic"`` is no option given), none for a signal with no list;
    a service's as given."""
    used = _signals(plan)
    out: dict[str, Any] = {}
    for name, given in sorted(config.options.items()):
        if name in used:
            given = used[name].options_in_force()
        elif name not in config.services:
            continue
        if given:
            out[name] = dict(sorted(given.items())) if isinstance(given, dict) else given
    return out


def _check_schemas(files: list[InputFile], opened: list[Footer | DatahygieneError], config: ScanConfig,
                   columns: list[str], computed: Iterable[str] = ()
                   ) -> tuple[list[Footer], list[pa.Schema], str | None]:
    """Each input's footer (``opened``: read by a :class:`FooterReader`) and schema,
    and the row key column; an input whose footer does not read, or that lacks a
    column the scan reads, holds one twice, or already holds a column named like one
    the scan computes (``computed``: hashes of images and why they are missing) is an
    input error."""
    footers, schemas = [], []
    key = config.key
    for i, (f, footer) in enumerate(zip(files, opened, strict=True)):
        if isinstance(footer, DatahygieneError):
            raise footer  # the first unreadable file, in input order
        schema = footer.schema
        if i == 0 and key is None and "key" in schema.names:
            key = "key"
        taken = sorted(set(computed) & set(schema.names))
        if taken:
            raise InputError(f"{f.path}: column {taken[0]!r} is named like a column datahygiene "
                             "computes while scanning; rename it in the manifest")
        needed = [*columns, *([key] if key else [])]
        for col in needed:
            if schema.names.count(col) > 1:
                raise InputError(f"{f.path}: column {col!r} appears {schema.names.count(col)} "
                                 "times; cannot tell which to read")
            if col not in schema.names:
                shown = shown_columns(schema.names)
                images = {config.image_column, config.image_path_column,
                          *(["image"] if config.services and not config.image_column else [])}
                what = "row key" if col == key else "image" if col in images else "hash"
                raise InputError(f"{f.path}: no {what} column {col!r} (columns: {shown})")
        if key:
            ktype = schema.field(key).type
            value_type = ktype.value_type if pa.types.is_dictionary(ktype) else ktype
            if isinstance(value_type, pa.BaseExtensionType):  # uuid, json...: as stored
                value_type = value_type.storage_type
            if pa.types.is_nested(value_type) or _is_binary(value_type):
                # a key is written as text: bytes need not be UTF-8 (cast fails mid-scan;
                # a uuid is 16 bytes, and was "the file may be corrupt")
                raise InputError(f"{f.path}: row key column {key!r} is {ktype}; a key must be "
                                 "text or a number (choose another with --key)")
        footers.append(footer)
        schemas.append(schema)
    return footers, schemas, key


def _is_binary(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t)
                or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t))


def _clean_names(files: list[InputFile]) -> list[str]:
    """Deterministic clean-output names: each input's location below the inputs' common
    directory (so ``data/a/x.parquet`` and ``data/b/x.parquet`` do not collide). Taken
    from where the files are (``InputFile.where``), not from how they were typed, so a
    name never climbs out of ``clean/`` (``../data/x.parquet`` beside ``y.parquet``)."""
    locs = [f.where or f.path for f in files]
    dirs = [posixpath.dirname(w) for w in locs]
    common = dirs[0] if dirs else ""
    for d in dict.fromkeys(dirs[1:]):  # each distinct directory once: linear in the inputs
        while common and not (d == common or d.startswith(common.rstrip("/") + "/")):
            common = "" if common == "/" or "/" not in common else posixpath.dirname(common)
    names = []
    for w in locs:
        rel = (w[len(common):] if common else w).lstrip("/")
        names.append(rel if rel.lower().endswith(".parquet") else rel + ".parquet")
    return names


def _refuse_clean_name_clash(files: list[InputFile], clean_names: list[str]) -> None:
    """Two inputs must never write one clean file: the second would replace the first's
    rows without a word (``b/y.pq`` and ``b/y.pq.parquet`` both become
    ``clean/b/y.pq.parquet``). Names that differ only in case or Unicode normal form
    clash too, as they would on a case-insensitive filesystem (macOS, Windows) the clean
    files are copied to; so does a clean file named like another's directory
    (``y.pq`` beside ``y.pq.parquet/z.parquet``). A name with ".." in it is refused."""
    def folded(name: str) -> str:
        return unicodedata.normalize("NFC", name).casefold()

    seen: dict[str, int] = {}
    for i, name in enumerate(clean_names):
        if ".." in name.split("/") or name.startswith("/"):
            raise ConfigError(f"{files[i].path}: cannot name its clean output ({name}); "
                              "give the manifest by another path")
        j = seen.setdefault(folded(name), i)
        if j != i:
            a, b = files[j].path, files[i].path
            if unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):  # look alike
                a, b = ascii(a), ascii(b)
            raise ConfigError(f"{a} and {b} would both be written to {clean_names[j]} (rename "
                              "one, or scan them into separate --out directories)")
    for i, name in enumerate(clean_names):
        parts = name.split("/")
        for k in range(1, len(parts)):
            above = seen.get(folded("/".join(parts[:k])))
            if above is not None:
                raise ConfigError(f"{files[i].path} would be written below {clean_names[above]}, "
                                  f"the clean file of {files[above].path} (rename one, or scan "
                                  "them into separate --out directories)")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _refuse_out_among_inputs(config: ScanConfig, files: list[InputFile]) -> None:
    """An OUT inside a manifest directory would be read back as input by the next run
    (clean/ and restricted/ hold parquet files too): refuse it before writing anything."""
    if config.out is None or "://" in config.out:
        return
    out = Path(config.out).resolve()
    for spec in config.manifests:
        root = Path(spec)
        if "://" in spec:
            continue
        if "**" in spec:  # a recursive glob reads everything below the part before it
            root = Path(spec.split("**", 1)[0] or ".")
        if root.is_dir() and (out == root.resolve() or root.resolve() in out.parents):
            raise ConfigError(f"--out {config.out} lies inside manifest directory {root}: its outputs "
                              "would be read as input by the next run; write the run elsewhere")
    def within(where: Path) -> bool:
        return out == where or out in where.parents

    inside: dict[str, bool] = {}  # each directory resolved and decided once, not each file
    for f in files:
        if "://" in f.path:
            continue
        parent, _, _ = f.fs_path.rpartition("/")
        if os.path.islink(f.fs_path):  # a link may point anywhere: follow it
            bad = within(Path(f.fs_path).resolve().parent)
        else:
            if parent not in inside:
                inside[parent] = within(Path(parent or ".").resolve())
            bad = inside[parent]
        if bad:
            raise ConfigError(f"{f.path}: manifest file lies inside the output directory {config.out}; "
                              "write the run elsewhere")


# What a run writes into OUT, and files only a run writes: an OUT holding nothing else
# is an earlier run's, even without its run.json (a commit cut short deletes it first).
_RUN_NAMES = {"run.json", "summary.json", "clean", "restricted", "public"}
_RUN_MARKS = ("summary.json", "restricted/exclusions.parquet", "public/checkpoint")


def _refuse_foreign_out(config: ScanConfig) -> None:
    """A run replaces ``OUT/clean/`` and ``OUT/restricted/reports/`` whole. Writing into
    a directory that holds other things and no earlier run (no ``run.json``, no work
    area) could therefore delete a user's own files: refuse it."""
    if config.out is None or "://" in config.out:
        return
    out = Path(config.out)
    if not out.is_dir() or (out / "run.json").exists() or (out / WORK_DIR).exists():
        return
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(".staging-"))
    if set(foreign) <= _RUN_NAMES and any((out / p).is_file() for p in _RUN_MARKS):
        return  # a run's outputs whose commit was cut short (its run.json goes first)
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise ConfigError(f"--out {config.out} already holds files ({shown}) and no earlier run: "
                          "give a new or empty directory, or an earlier run's OUT")


def run_id_for(config_desc: dict[str, Any], lists: list[HashList],
               inputs: list[dict[str, Any]]) -> str:
    """A run id derived from what determines the result, so the same inputs, lists
    and configuration always give the same id (and the same evidence). The engine is
    left out: like threads and batch size it changes how fast a run goes, never what
    it finds, so a local and a Ray run over the same inputs share their id."""
    basis = {"config": {k: v for k, v in config_desc.items() if k != "engine"},
             "lists": [hl.fingerprint for hl in lists],
             "inputs": [(i["path"], i["digest"]) for i in inputs]}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:32]


def _with_resume_hint(exc: DatahygieneError | OSError, work_area: WorkArea, out: str
                      ) -> DatahygieneError | OSError:
    """The same error, saying that the inputs finished before it were kept (the work
    area survives an error once an input is finished) and how to use them."""
    kept = len(work_area.records)
    if not kept or not work_area.root.exists() or isinstance(exc, KeyNotUnique | InputChanged):
        return exc
    hint = (f"; {kept} finished input(s) kept in {out}/.work: once the cause is fixed, "
            "--resume skips them (if an input or list had to change, rerun without --resume)")
    if isinstance(exc, DatahygieneError):
        return type(exc)(f"{exc}{hint}")
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    return OutputError(f"{where}{exc.strerror or str(exc) or type(exc).__name__}{hint}")


# Worker threads when every input is remote and none is rewritten: a task there waits on
# round trips, not on a core (docs/scaling.md#remote-inputs: 200 shards behind 20 ms of
# latency, 2.9-3.1 s of scan on two threads, 0.9-1.0 s on eight).
REMOTE_THREADS = 8


def _default_threads(files: list[InputFile], write_clean: bool) -> int:
    """One per core; :data:`REMOTE_THREADS` at least when every input is remote and
    none is rewritten (``--write-clean`` holds a whole row group per task in flight:
    more threads, more memory)."""
    cores = default_threads()
    if files and not write_clean and not any(f.is_local for f in files):
        return max(cores, REMOTE_THREADS)
    return cores


@contextlib.contextmanager
def _digests_ended(digests: InputDigests) -> Iterator[InputDigests]:
    """``digests`` closed when the scan's block ends: waited for when it ends well, and
    cancelled first when it fails, so that the error is not held up while the inputs
    the scan never reached are hashed (a failed run keeps only the resume markers
    already written; a large local dataset's digests can take minutes)."""
    try:
        yield digests
    except BaseException:
        digests.cancel()
        raise
    finally:
        digests.close()


def run_scan(config: ScanConfig, registry: Registry | None = None,
             progress: ProgressFn | None = None,
             on_start: Callable[[int, int], None] | None = None,
             on_footers: Callable[[int, int], None] | None = None) -> ScanResult:
    """Scan the configured manifests and write every output into ``config.out``.
    ``on_footers(read, inputs)``: how many inputs' footers are read, as they are (before
    the scan starts: minutes, for tens of thousands of remote shards); ``on_start(rows,
    inputs)`` once the scan starts; ``progress(rows, flagged)`` as tasks finish."""
    config.validate()
    if config.engine == "ray":
        from datahygiene.engines.ray import require_ray

        require_ray()  # fail before any work, with the install hint
    registry = registry or default_registry()
    t0 = time.perf_counter()
    kernels.load_in_background()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    at_once = remote_at_once(config.threads)  # remote lookups, footers, digests in flight
    files = resolve_manifests(config.manifests, at_once)
    clean_names = [f"clean/{name}" for name in _clean_names(files)]
    if config.write_clean:
        _refuse_clean_name_clash(files, clean_names)
    _refuse_out_among_inputs(config, files)
    _refuse_foreign_out(config)
    if config.keys and config.out and "://" not in config.out:
        from datahygiene.audit.evidence import check_log_extendable

        check_log_extendable(Path(config.out), config.keys)
    # Input digests (coverage evidence) need only the files: start them now, so they
    # run while the lists load (list loading is partly serial and leaves a core idle).
    # (a remote input's digest follows the scan's reads of it: see InputDigests.release)
    digests = InputDigests(files, config.input_digest, after_reads=True, at_once=at_once)
    footer_reader = FooterReader(  # as are footers
        files, [config.key or "key"], at_once=at_once,
        progress=(lambda n: on_footers(n, len(files))) if on_footers else None)
    try:
        lists = load_lists(config, registry)
        t_lists = time.perf_counter()
        probe_plan = build_plan(lists, config, registry, None)
        computed = [c for t in probe_plan.transforms for c in t.produces]
        # the footers were read on a thread of their own while the lists loaded; with
        # many small inputs, reading them takes longer and the scan waits here
        opened = footer_reader.result()
        t_footers = time.perf_counter()
        footers_read, schemas, key = _check_schemas(files, opened, config, probe_plan.columns, computed)
        del opened  # the footers are let go as their files finish (see Footer): no other hold
        plan = build_plan(lists, config, registry, key)
        plan.setup()
        reporters = [(name, registry.get("reporters", name).obj()) for name in config.reporters]
        signals = [c.describe() for c in plan.checks]
        # manifest columns reporters want for excluded rows (URLs, file hashes): captured
        # by the tasks as they read the rows, instead of a second pass over the inputs
        wants = {name: list(getattr(r, "detail_columns", lambda _: [])(signals)) for name, r in reporters}
        detail_columns = list(dict.fromkeys(c for cols in wants.values() for c in cols)) or None
        config_desc = config.describe()
        config_desc["key"] = key
        config_desc["columns"] = _columns_in_force(config, plan)
        config_desc.pop("options", None)
        if options := _options_in_force(config, plan):
            config_desc["options"] = options
        # Resume (datahygiene/resume.py): inputs a crashed run finished are not scanned again.
        work_area = WorkArea(config.out or "", resume_identity(
            config_desc, signals, lists, files, footers_read), config.resume)
        done = work_area.finished(files, clean_names if config.write_clean else None)
    except BaseException:
        # a one-line error must not wait for digests of files it will never scan
        digests.cancel()
        footer_reader.cancel()
        if "work_area" in locals():
            work_area.unlock()
        raise
    t_index = time.perf_counter()
    # the inputs' sizes and modification times as their footers were read: the digests
    # and the tasks must find the same (manifest.changed_under_scan)
    states = [ft.state for ft in footers_read]
    digests.expect(states)
    # A local input's tasks check its state around their reads (a system call each); a
    # remote input's scan the bytes it was digested from (read whole, below), or are
    # vouched for by its digest, which follows them and looks at its version again
    # after reading it all (a request each look, on object storage).
    tasks = [t for t in plan_tasks(files, [ft.row_group_rows for ft in footers_read],
                                   [st if f.is_local else None for f, st in zip(files, states,
                                                                                 strict=True)])
             if t.file_index not in done]
    last_task = {t.file_index: t for t in tasks}
    for i in range(len(files)):
        if i not in last_task:  # finished before (--resume), or no row group to read
            digests.release(i)
    key_nulls = null_keys(footers_read, key) if key else 0
    rows_of = [ft.num_rows for ft in footers_read]
    groups_of = [len(ft.row_group_rows) for ft in footers_read]
    # Each footer goes to its file's tasks, then is let go (its parse, when made again
    # for the tasks, with it: see manifest.Footer)
    footers: list[Footer | None] = [None if i in done else ft for i, ft in enumerate(footers_read)]
    # Remote inputs are read whole, once, for all their tasks, and digested from those
    # bytes (manifest.WholeReads): each byte fetched once for the scan and the digest
    # both, and a digest of the very bytes scanned. Small ones are held in memory,
    # larger ones copied to OUT/.work/spool/ (where its disk has room; else read by
    # ranges). The local engine's tasks only: a Ray worker's reads are its own.
    def footer_of(i: int) -> Footer:
        ft = footers[i]  # kept until the file's last task is done
        assert ft is not None
        return ft

    tasks_of = Counter(t.file_index for t in tasks)
    read_whole = {i: n for i, n in tasks_of.items()
                  if config.engine != "ray" and not files[i].is_local}
    spooled = {i for i in read_whole if footers_read[i].size > WHOLE_REMOTE_MAX}
    spool = work_area.root / "spool"
    shutil.rmtree(spool, ignore_errors=True)  # what a run cut short left
    if spooled:
        spool.mkdir(mode=0o700)
    whole = WholeReads(files, footer_of, read_whole, digests, spooled, str(spool))
    # Small local inputs of one task each, not digested yet when the scan starts, are
    # read whole by their task, which scans and digests those bytes (see InputDigests)
    whole_local = ({i for i, n in tasks_of.items() if n == 1 and files[i].is_local
                    and footers_read[i].size <= WHOLE_LOCAL_MAX}
                   if config.engine != "ray" and hasattr(os, "preadv") else set())
    del footers_read
    total_rows = sum(rows_of)
    if on_start:
        on_start(total_rows, len(files))
    threads = config.threads or _default_threads(files, config.write_clean)

    assert config.out is not None
    try:
        with work_area.writer() as writer, _digests_ended(digests):
            writers: dict[int, pq.ParquetWriter] = {}
            clean_outputs: list[dict[str, Any]] = []
            flagged_by_file: list[list[pa.Table]] = [[] for _ in files]
            details_by_file: dict[int, list[pa.Table]] = {}  # inputs scanned by this run only
            scanned = sum(r.rows for r in done.values())
            clean_rows = np.zeros(len(files), dtype=np.int64)
            for i, rec in done.items():
                flagged_by_file[i].append(work_area.load_flagged(i))
                clean_rows[i] = rec.clean_rows
            if progress and done:
                progress(scanned, sum(r.flagged for r in done.values()))

            def whole_local_read(i: int) -> np.ndarray:
                data = read_local_whole(files[i], footer_of(i))
                digests.digest_bytes(i, data)
                return data

            def work(task: Task) -> Any:
                i = task.file_index
                read = (partial(whole.bytes_of, i) if i in whole
                        else partial(whole_local_read, i) if i in whole_local and digests.claim(i)
                        else None)
                try:
                    return run_task(task, plan, config.batch_size, config.write_clean,
                                    config.keep_unverified, detail_columns, footers[i], read)
                finally:
                    if i in whole:
                        whole.task_done(i)

            results: Iterator[TaskResult] | None = None
            try:
                if config.engine == "ray":
                    from datahygiene.engines.ray import ray_results

                    results = ray_results(tasks, plan, config, detail_columns)
                else:
                    digests.hand_over(whole_local)
                    results = run_ordered(tasks, work, threads)
                for res in results:
                    scanned += res.task.rows
                    i = res.task.file_index
                    if res.flagged.num_rows:
                        flagged_by_file[i].append(res.flagged)
                    if res.details is not None:
                        details_by_file.setdefault(i, []).append(res.details)
                    if res.clean is not None:
                        with writing(writer.stage / clean_names[i]):
                            if i not in writers:
                                writers[i] = pq.ParquetWriter(
                                    writer.path(clean_names[i]), schemas[i],
                                    compression="zstd")
                            # one chunk: parquet page boundaries follow Arrow chunks, and
                            # they must not depend on the batch size or the engine
                            writers[i].write_table(res.clean.cast(schemas[i]).combine_chunks())
                        clean_rows[i] += res.clean.num_rows
                    if progress:
                        progress(res.task.rows, res.flagged.num_rows)
                    if last_task[i] is res.task:  # input i is finished: mark it for --resume
                        digests.release(i)
                        if i in writers:
                            with writing(writer.stage / clean_names[i]):
                                writers.pop(i).close()
                            writer.seal(clean_names[i])
                        footers[i] = None
                        work_area.complete(i, files[i].path, rows_of[i], flagged_by_file[i],
                                           int(clean_rows[i]), digests.of(i),
                                           clean_names[i] if config.write_clean else None)
                digests.scanned()
                work_area.flush()
            finally:
                # the engine's own clean-up now, not whenever the traceback is let go (a
                # Ray runtime left to Ray's own exit handler has crashed there: exit 139)
                if isinstance(results, Generator):
                    results.close()
                for w in writers.values():  # only after an error: it is the one to report
                    with contextlib.suppress(OSError):
                        w.close()
            t_scan = time.perf_counter()

            inputs: list[dict[str, Any]] = []
            for i, f in enumerate(files):
                digest, size = digests.result(i)
                inputs.append({"path": f.path, "digest": digest, "bytes": size,
                               "rows": rows_of[i], "row_groups": groups_of[i]})
            work_area.check_inputs(inputs)
            flagged_parts = [t for parts in flagged_by_file for t in parts]
            exclusions = (pa.concat_tables(flagged_parts) if flagged_parts
                          else EMPTY_EXCLUSIONS).combine_chunks()
            check_keys = bool(key) and (config.check_keys if config.check_keys is not None
                                        else bool(config.keys))
            t_keys0 = time.perf_counter()
            if check_keys:
                assert key is not None
                shared, in_files = rows_sharing_flagged_keys(files, key, exclusions, threads,
                                                              states)
                if shared:
                    raise KeyNotUnique(
                        f"key column {key!r} is not unique: {shared:,} more row(s) carry the key "
                        f"of an excluded or unverified row ({in_files} input(s) hold such keys), "
                        "so the exclusion log cannot tell them apart; rerun with a column unique across "
                        "the inputs (--key COLUMN) or --key '' (rows named FILE:ROW), or keep "
                        "this key with --resume --no-check-keys (the finished inputs are kept)")
            t_keys = time.perf_counter()
            write_parquet(exclusions, writer.path(EXCLUSIONS))
            writer.seal(EXCLUSIONS)

            if config.write_clean:
                for i, f in enumerate(files):
                    rel = clean_names[i]
                    if not (writer.stage / rel).exists():  # an input with no row groups: still one output
                        with writing(writer.stage / rel):
                            pq.write_table(schemas[i].empty_table(), writer.path(rel), compression="zstd")
                    clean_outputs.append({"path": rel, "source": f.path, "rows": int(clean_rows[i]),
                                          "sha256": _sha256_file(writer.stage / rel)})

            summary = summarize(exclusions, scanned, lists, len(files))
            writer.write_json("summary.json", summary)
            run = {
                "format": RUN_FORMAT,
                "run_id": run_id_for(config_desc, lists, inputs),
                "tool": {"name": "datahygiene", "version": __version__},
                "plugins": [{"kind": p.kind, "name": p.name, "distribution": p.distribution,
                             "version": p.version} for p in registry.all()],
                "config": config_desc,
                "signals": [c.describe() for c in plan.checks],
                "lists": [hl.describe() for hl in lists],
                "inputs": inputs,
                "coverage": {"files": len(files), "rows": total_rows, "rows_scanned": scanned},
                "outputs": {
                    "summary": "summary.json",
                    "exclusions": {"path": EXCLUSIONS, "rows": exclusions.num_rows,
                                   "sha256": _sha256_file(writer.stage / EXCLUSIONS)},
                    "clean": clean_outputs,
                },
                # the row key: a null one is replaced by FILE:ROW (null_rows is None where
                # the footers do not record null counts); flagged_keys_unique: the rows
                # were read again and no other row carries a flagged row's key
                "key": {"column": key or None, "null_rows": key_nulls if key else None,
                        "flagged_keys_unique": True if check_keys else None},
                "engine": {"name": config.engine, "threads": threads, "batch_size": config.batch_size},
                "started_at": started,
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "timings_s": {
                    "load_lists": round(t_lists - t0, 3),
                    "read_footers": round(t_footers - t_lists, 3),
                    "build_index": round(t_index - t_footers, 3),
                    "scan": round(t_scan - t_index, 3),
                    **({"check_keys": round(t_keys - t_keys0, 3)} if check_keys else {}),
                    "total": round(time.perf_counter() - t0, 3),
                },
            }
            if scanned != total_rows:  # pragma: no cover - a reader bug, never expected
                raise InputError(f"scanned {scanned} rows but the inputs hold {total_rows}")
            # --- evidence hook (issue 4): signed log, checkpoint, attestation go here ---
            from datahygiene.audit.evidence import write_evidence

            write_evidence(writer, config, run, summary, exclusions)  # run must not change after this
            # excluded rows' values, for inputs this run scanned (those skipped on --resume
            # have none: a reporter reads their rows back). Matched rows' URLs and hashes:
            # they go to reporters, which write under restricted/ only.
            details = RowDetails({files[i].path: pa.concat_tables(parts) for i, parts in
                                  details_by_file.items()}) if detail_columns else None
            for name, reporter in reporters:
                directory = writer.path(f"{RESTRICTED}/reports/{name}/x").parent
                extra = {"details": details} if wants[name] else {}
                with writing(directory):  # a reporter's write names no file when the disk is full
                    written = reporter.write(exclusions, run, summary, directory, **extra)
                for p in written:
                    writer.seal(str(p.relative_to(writer.stage)))
            writer.write_json("run.json", run)
            writer.commit()
            # made inside: a Ctrl-C while it is made is one after the commit
            result = ScanResult(Path(config.out), summary, run, exclusions)
    except KeyboardInterrupt:
        if "writer" in locals() and writer.committed:  # only the clean-up after run.json was cut short
            raise InterruptedAfterCommit(COMMITTED_NOTE.format(out=config.out)) from None
        raise
    except (DatahygieneError, OSError) as exc:
        hinted = _with_resume_hint(exc, work_area, config.out)
        if hinted is exc:
            raise
        raise hinted from exc
    return result
