"""The local engine: parquet row groups through a bounded thread pool.

Work is cut into (file, row group) tasks. Up to ``2 x threads`` tasks are in flight;
results are taken back strictly in submission order, so the output is the same
whatever the thread count, batch size or which task finishes first. Parquet decoding,
Arrow kernels and the numpy matching code release the GIL, so threads use the cores.
Memory stays at about (tasks in flight x row-group size) plus the list index,
whatever the size of the manifest.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datahygiene import parquet_pages as pages
from datahygiene.errors import InputError
from datahygiene.manifest import (
    FileState,
    Footer,
    InputFile,
    LocalFile,
    check_after_reads,
    check_state,
    in_order,
    open_input,
    open_parquet,
)
from datahygiene.signals.exact import ExactDigest, SortedPrefixIndex
from datahygiene.step import EMPTY_EXCLUSIONS, Check, ScanPlan, check_batch, key_text
from datahygiene.viewtypes import has_views, without_views

ProgressFn = Callable[[int, int], None]  # (rows done, rows flagged) increments
# Batch size of the late read: small enough that stopping after the last needed row
# leaves most of a row group undecoded when its matches come early.
LATE_BATCH = 16_384


@dataclass(frozen=True)
class Task:
    file_index: int
    file: InputFile
    row_group: int
    row_offset: int
    rows: int
    # the file's size and modification time (a remote file's size and version) when
    # its footer was read: the task's reads must find the same
    # (manifest.changed_under_scan)
    state: FileState | None = None


@dataclass
class TaskResult:
    task: Task
    # flagged rows' keys and matches: never in a repr that may reach a log
    flagged: pa.Table = field(repr=False)
    clean: pa.Table | None = field(repr=False)  # the row group minus flagged rows (with clean output)
    # ``row_index`` + the wanted detail columns the file has, one row per *excluded* row
    # (ascending), for reporters; None when nothing is excluded or no details were asked.
    # Matched rows' URLs and hashes: kept out of repr, so never in a log or traceback.
    details: pa.Table | None = field(default=None, repr=False)


def plan_tasks(files: list[InputFile], row_groups: list[Sequence[int]],
               states: Sequence[FileState | None] | None = None) -> list[Task]:
    """One task per row group: ``row_groups[i]``, the rows of file i's row groups
    (:func:`datahygiene.manifest.row_group_rows`); ``states[i]``, file i's
    :data:`~datahygiene.manifest.FileState` when its footer was read."""
    tasks: list[Task] = []
    for i, (f, counts) in enumerate(zip(files, row_groups, strict=True)):
        offset = 0
        state = states[i] if states is not None else None
        for rg, rows in enumerate(counts):
            tasks.append(Task(i, f, rg, offset, rows, state))
            offset += rows
    return tasks


def run_task(task: Task, plan: ScanPlan, batch_size: int, keep_clean: bool,
             keep_unverified: bool = False, detail_columns: Sequence[str] | None = None,
             known: Footer | None = None, whole: Callable[[], bytes | np.ndarray | str | None] | None = None
             ) -> TaskResult:
    """Check one row group. Pure apart from reading the file: safe to run anywhere
    (a thread here, a Ray actor).

    ``detail_columns``: manifest columns reporters want for excluded rows; those the
    file has come back in ``TaskResult.details``. ``known``: the file's footer (its size,
    schema and metadata), if already read (for small files, reading and parsing the
    footer again per task was a sizeable part of the work). ``whole`` (with ``known``):
    gives the whole file's bytes, or the path of a local copy of a remote one, to scan
    instead of reading the file (a scan's :class:`~datahygiene.manifest.WholeReads`
    and :func:`~datahygiene.manifest.read_local_whole`: each byte read once, its
    digest taken of those bytes), or None: read it by ranges."""
    try:
        return _run_task(task, plan, batch_size, keep_clean, keep_unverified, detail_columns,
                         known, whole)
    except (OSError, pa.ArrowException) as exc:
        # A file whose footer reads but whose pages do not (corrupt or changed
        # underneath us). Only the error's type: Arrow's text may quote a value.
        raise InputError(f"{task.file.path}: row group {task.row_group} cannot be read "
                         f"({type(exc).__name__}); the file may be corrupt") from None


def _excluded_local(flagged: pa.Table, offset: int) -> np.ndarray:
    """Positions, relative to ``offset``, of the flagged rows that are excluded."""
    excl = pc.equal(flagged.column("decision"), "excluded")
    return flagged.column("row_index").filter(excl).to_numpy() - offset


class _Source:
    """One task's file: one handle for all its reads, the footer, and a pyarrow reader
    made only when a read needs one (the page reader needs the handle alone: for a
    10,000-row file, opening it again and building a reader were a sizeable part of
    its cost).

    A local file is opened for positional reads only (:class:`LocalFile`): every
    system call releases the GIL and may hand it to another thread, and ``pa.OSFile``
    makes two to open (a ``stat``, then the ``open``)."""

    def __init__(self, f: InputFile, known: Footer | None, state: FileState | None = None,
                 whole: Callable[[], bytes | np.ndarray | str | None] | None = None) -> None:
        self.file = f
        self._reader: pq.ParquetFile | None = None
        self._reader_handle: Any = None
        # the file's FileState, to be found again after its reads: as its footer was
        # read (``state``), else (a local file) as first opened here
        self.state = state
        self._whole = False
        if known is None:  # a caller that read no footer before: the reader reads it
            self.handle = open_input(f)
            self._check_state(self.handle)
            self._reader = open_parquet(f, None, self.handle)
            self.metadata = self._reader.metadata
            self.schema_arrow = self.metadata.schema.to_arrow_schema()  # what the reader would give
            return
        got = whole() if whole is not None else None
        # bytes read whole were checked against the footer as read (manifest.
        # read_remote_whole, read_local_whole): no look at the file's state here
        self._whole = got is not None
        if isinstance(got, str):  # a local copy of it (manifest.spool_remote)
            self.handle = pa.memory_map(got)
        elif isinstance(got, np.ndarray) and got.flags.writeable:
            self.handle = got  # read in place by the page reader (parquet_pages.read_chunk)
        elif got is not None:
            self.handle = pa.BufferReader(got)
        else:
            # a remote file's reads fetch their column chunks exactly (no read-ahead)
            self.handle = (LocalFile.open(f, known.size) if f.is_local
                           else open_input(f, known.size, exact=True))
        self._check_state(self.handle)
        self.metadata = known.metadata
        self.schema_arrow = known.schema

    def _check_state(self, handle: Any) -> None:
        if self.file.is_local and not self._whole:
            self.state = check_state(self.file, handle.fileno(), self.state)

    def check_unchanged(self) -> None:
        """An input error if the file is not as it was (see :class:`Task`'s state): a
        remote file's version is asked for once, after the task's reads (a round trip,
        where checking at the open too would cost a second). Bytes read whole are what
        the task scanned, whatever the file holds now."""
        if not self._whole:
            self.state = check_after_reads(self.file, self.handle, self.state)

    @property
    def reader(self) -> pq.ParquetFile:
        if self._reader is None:
            handle = self.handle
            if isinstance(handle, LocalFile):  # positional reads only: open it for Arrow
                handle = self._reader_handle = open_input(self.file)
                self._check_state(handle)
            elif isinstance(handle, np.ndarray):
                handle = self._reader_handle = pa.BufferReader(pa.py_buffer(handle))
            self._reader = open_parquet(self.file, self.metadata, handle)
        return self._reader

    def close(self) -> None:
        if not isinstance(self.handle, np.ndarray):
            self.handle.close()
        if self._reader_handle is not None:
            self._reader_handle.close()


def _run_task(task: Task, plan: ScanPlan, batch_size: int, keep_clean: bool,
              keep_unverified: bool, detail_columns: Sequence[str] | None,
              known: Footer | None, whole: Callable[[], bytes | np.ndarray | str | None] | None = None
              ) -> TaskResult:
    state = task.state
    if state is None and known is not None and task.file.is_local:
        state = known.state  # as its footer was read; a remote file's only where the
        # task carries it (a scan has the file's digest, which follows its tasks, check it)
    pf = _Source(task.file, known, state, whole)
    try:
        try:
            res = _check_task(task, plan, batch_size, keep_clean, keep_unverified, detail_columns, pf)
        except Exception:
            pf.check_unchanged()  # a file written meanwhile explains the failure better
            raise
        pf.check_unchanged()  # the rows checked are those of the bytes the footer described
        return res
    finally:
        pf.close()


def _check_task(task: Task, plan: ScanPlan, batch_size: int, keep_clean: bool,
                keep_unverified: bool, detail_columns: Sequence[str] | None,
                pf: _Source) -> TaskResult:
    # The row key is needed only for flagged rows, which are rare in real data: read
    # it afterwards for row groups that have any, instead of decoding it for all rows.
    late_key = plan.key_column if (plan.key_column and not keep_clean) else None
    step_plan = replace(plan, key_column=None) if late_key else plan
    columns = None if keep_clean else step_plan.columns
    names = pf.schema_arrow.names
    wanted = list(dict.fromkeys(c for c in detail_columns or () if c in names))
    # detail columns the check already reads are taken from its batches; the others
    # join the late key read
    early = [c for c in wanted if columns is None or c in columns]
    late = [c for c in wanted if c not in early]
    flagged: list[pa.Table] = []
    clean: list[pa.RecordBatch] = []
    early_parts: list[pa.Table] = []
    offset = task.row_offset
    viewed = has_views(pf.schema_arrow)  # no take or filter for view types: cast them
    for batch, chosen in _batches(task, step_plan, pf, batch_size, columns, keep_clean, viewed):
        res = check_batch(batch, step_plan, task.file.path, offset, rows=chosen)
        if res.flagged.num_rows:
            flagged.append(res.flagged)
            if detail_columns is not None:
                rows = _excluded_local(res.flagged, offset)
                if rows.size:
                    take = pa.array(rows if chosen is None else np.searchsorted(chosen, rows))
                    early_parts.append(pa.table(
                        {"row_index": pa.array(rows + offset, pa.int64()),
                         **{c: batch.column(c).take(take) for c in early}}))
        if keep_clean:
            mask = res.clean
            if keep_unverified and res.flagged.num_rows:
                unv = res.flagged.column("decision").to_numpy(zero_copy_only=False) == "unverified"
                rows = res.flagged.column("row_index").to_numpy()[unv] - offset
                mask = mask.copy()
                mask[rows] = True
            clean.append(batch.filter(pa.array(mask)))
        if chosen is None:
            offset += batch.num_rows
    table = pa.concat_tables(flagged) if flagged else EMPTY_EXCLUSIONS
    details = pa.concat_tables(early_parts) if early_parts else None
    key_cols = [late_key] if late_key and table.num_rows else []
    late_cols = late if details is not None else []
    if key_cols or late_cols:
        # one read of [key + late detail columns], of the rows that need them (flagged
        # rows for the key, which include the excluded ones for the details)
        src = table if key_cols or details is None else details
        need = src.column("row_index").to_numpy() - task.row_offset
        got = _late_columns(task, pf, list(dict.fromkeys([*key_cols, *late_cols])), need,
                            min(batch_size, LATE_BATCH), viewed)
        if key_cols:
            found = key_text(got.column(key_cols[0]), task.file.path, key_cols[0])
            table = table.set_column(0, "key", pc.coalesce(found, table.column("key")))
        if late_cols and details is not None:
            excl = details.column("row_index").to_numpy() - task.row_offset
            picked = got.take(pa.array(np.searchsorted(need, excl)))
            for c in late_cols:
                details = details.append_column(picked.schema.field(c), picked.column(c))
    if details is not None:
        details = details.select(["row_index", *wanted])
    clean_table = None
    if keep_clean:
        clean_table = (pa.Table.from_batches(clean) if clean
                       else pf.schema_arrow.empty_table())
        if viewed and clean:
            clean_table = clean_table.cast(pf.schema_arrow)  # the input's own schema
    return TaskResult(task, table, clean_table, details)


def _prefilter(plan: ScanPlan) -> tuple[Check, SortedPrefixIndex] | None:
    """The plan's one check, when it is an exact digest matched with a filter in front
    (the case :func:`datahygiene.parquet_pages.candidate_rows` serves)."""
    if plan.transforms or len(plan.checks) != 1:
        return None
    check = plan.checks[0]
    if not (isinstance(check, Check) and isinstance(check.signal, ExactDigest)):
        return None
    index = check.index
    return (check, index) if isinstance(index, SortedPrefixIndex) else None


def _batches(task: Task, plan: ScanPlan, pf: _Source, batch_size: int,
             columns: list[str] | None, keep_clean: bool, viewed: bool
             ) -> Iterator[tuple[pa.RecordBatch, np.ndarray | None]]:
    """The row group as batches for :func:`check_batch`, each with the row numbers of
    its rows (relative to the row group) when it holds chosen rows, else None.

    An exact-digest check over a column the page reader handles gets one batch: the
    rows its list's filter cannot rule out, read where they lie in the decompressed
    pages (:mod:`datahygiene.parquet_pages`), with nulls and malformed values among
    them. Every other case reads the row group with pyarrow, batch by batch."""
    picked = None if keep_clean or viewed or not pages.enabled() else _prefilter(plan)
    if picked is not None:
        check, index = picked
        try:
            chunk = pages.column_chunk(pf.metadata, pf.schema_arrow, task.row_group, check.column)
            hexed = pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)
            width = check.signal.width
            rows, values = pages.candidate_rows(pf.handle, chunk, index.page_filter(hexed, width))
        except pages.Unsupported:
            pass  # read with pyarrow below
        else:
            field = pf.schema_arrow.field(check.column)
            yield pa.RecordBatch.from_arrays([values], schema=pa.schema([field])), rows
            return
    seen = 0
    for batch in pf.reader.iter_batches(batch_size=batch_size, row_groups=[task.row_group],
                                        columns=columns, use_threads=False):
        seen += batch.num_rows
        yield (without_views(batch) if viewed else batch), None
    if seen != task.rows:
        # a column chunk whose footer counts fewer values than its row group has rows
        # reads short, without an error: the rows it leaves out were never checked,
        # and the scan counts a row group's rows from the footer, not from its batches
        raise InputError(f"{task.file.path}: row group {task.row_group} holds {seen} rows, not "
                         f"the {task.rows} its metadata says; the file may be corrupt")


def _late_columns(task: Task, pf: _Source, columns: list[str], rows: np.ndarray,
                  batch_size: int, viewed: bool) -> pa.Table:
    """Columns ``columns`` of the (ascending, unique) row-group-relative ``rows``: from
    the pages that hold them (:func:`datahygiene.parquet_pages.read_rows`), or with
    pyarrow where the page reader does not handle a column."""
    if pages.enabled() and not viewed:
        try:
            arrays = [pages.read_rows(pf.handle, pages.column_chunk(pf.metadata, pf.schema_arrow,
                                                                    task.row_group, c), rows)
                      for c in columns]
        except pages.Unsupported:
            pass
        else:
            return pa.Table.from_arrays(arrays, schema=pa.schema([pf.schema_arrow.field(c)
                                                                  for c in columns]))
    return _late_read(pf.reader, task.row_group, columns, rows, batch_size, viewed,
                      task.file.path)


def _late_read(pf: pq.ParquetFile, row_group: int, columns: list[str], rows: np.ndarray,
               batch_size: int, viewed: bool = False, path: str = "input") -> pa.Table:
    """Columns ``columns`` of the (ascending, unique) row-group-relative ``rows``.

    Batch by batch, keeping only the needed rows of each, and stopping after the batch
    that holds the last one: pages after it are never decompressed, and memory stays
    at one batch of these columns."""
    parts: list[pa.RecordBatch] = []
    start, last = 0, int(rows[-1])
    batches = pf.iter_batches(batch_size=batch_size, row_groups=[row_group], columns=columns,
                              use_threads=False)
    for b in batches:
        end = start + b.num_rows
        lo, hi = np.searchsorted(rows, [start, end])
        if hi > lo:
            parts.append((without_views(b) if viewed else b).take(pa.array(rows[lo:hi] - start)))
        start = end
        if start > last:
            break
    if start <= last:  # pragma: no cover - the footer promised more rows than came back
        raise InputError(f"{path}: row group {row_group} holds fewer rows than its metadata "
                         "says; the file may be corrupt")
    return pa.Table.from_batches(parts)


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def run_ordered(tasks: list[Task], fn: Callable[[Task], TaskResult], threads: int
                ) -> Iterator[TaskResult]:
    """Run ``fn`` over tasks on a pool, yielding results in task order.

    Small row groups go to the pool several at a time (:func:`_groups`): each job
    handed over wakes the thread that waits for its result, and every wake-up can hand
    the GIL from one thread to another. For 2,000 files of 10,000 rows, one job per
    task was one such wake-up per file."""
    threads = threads or default_threads()
    if threads == 1:
        for t in tasks:
            yield fn(t)
        return
    def run(group: list[Task]) -> _Done:
        done: list[TaskResult] = []
        try:
            for t in group:
                done.append(fn(t))
        except Exception as exc:  # the results before it still count (--resume keeps them)
            return _Done(done, exc)
        return _Done(done, None)

    # at most 2 x threads jobs handed over and not yet taken back; closing the
    # generator (the caller stopped) cancels those not started
    with (ThreadPoolExecutor(threads, thread_name_prefix="datahygiene") as pool,
          contextlib.closing(in_order(pool, run, _groups(tasks), ahead=2 * threads)) as jobs):
        for job in jobs:
            yield from job.results()


# A job for the pool: consecutive tasks up to this many rows (or tasks) in all.
GROUP_ROWS = 131_072
GROUP_TASKS = 32


def _groups(tasks: list[Task]) -> Iterator[list[Task]]:
    group: list[Task] = []
    rows = 0
    for t in tasks:
        if group and (rows + t.rows > GROUP_ROWS or len(group) >= GROUP_TASKS):
            yield group
            group, rows = [], 0
        group.append(t)
        rows += t.rows
    if group:
        yield group


@dataclass
class _Done:
    """A job's results in order, and the error that stopped it, if one did."""

    done: list[TaskResult]
    error: Exception | None

    def results(self) -> Iterator[TaskResult]:
        yield from self.done
        if self.error is not None:
            raise self.error

