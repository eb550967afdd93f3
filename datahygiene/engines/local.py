"""The local engine: parquet row groups through a bounded thread pool.

Work is cut into (file, row group) tasks. Up to ``2 x threads`` tasks are in flight;
results are taken back strictly in submission order, so the output is the same
whatever the thread count, batch size or which task finishes first. Parquet decoding,
Arrow kernels and the numpy matching code release the GIL, so threads use the cores.
Memory stays at about (tasks in flight x row-group size) plus the list index,
whatever the size of the manifest.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datahygiene.errors import InputError
from datahygiene.manifest import InputFile, open_parquet
from datahygiene.step import EXCLUSION_SCHEMA, ScanPlan, check_batch

ProgressFn = Callable[[int, int], None]  # (rows done, rows flagged) increments


@dataclass(frozen=True)
class Task:
    file_index: int
    file: InputFile
    row_group: int
    row_offset: int
    rows: int


@dataclass
class TaskResult:
    task: Task
    flagged: pa.Table
    clean: pa.Table | None  # the row group minus flagged rows (when writing clean output)


def plan_tasks(files: list[InputFile], metadata: list[pq.FileMetaData]) -> list[Task]:
    tasks: list[Task] = []
    for i, (f, md) in enumerate(zip(files, metadata, strict=True)):
        offset = 0
        for rg in range(md.num_row_groups):
            rows = md.row_group(rg).num_rows
            tasks.append(Task(i, f, rg, offset, rows))
            offset += rows
    return tasks


def run_task(task: Task, plan: ScanPlan, batch_size: int, keep_clean: bool,
             keep_unverified: bool = False) -> TaskResult:
    """Check one row group. Pure apart from reading the file: safe to run anywhere
    (a thread here, a Ray actor)."""
    try:
        return _run_task(task, plan, batch_size, keep_clean, keep_unverified)
    except (OSError, pa.ArrowException) as exc:
        # A file whose footer reads but whose pages do not (corrupt or changed
        # underneath us). Only the error's type: Arrow's text may quote a value.
        raise InputError(f"{task.file.path}: row group {task.row_group} cannot be read "
                         f"({type(exc).__name__}); the file may be corrupt") from None


def _run_task(task: Task, plan: ScanPlan, batch_size: int, keep_clean: bool,
              keep_unverified: bool) -> TaskResult:
    pf = open_parquet(task.file)
    # The row key is needed only for flagged rows, which are rare in real data: read
    # it afterwards for row groups that have any, instead of decoding it for all rows.
    late_key = plan.key_column if (plan.key_column and not keep_clean) else None
    step_plan = replace(plan, key_column=None) if late_key else plan
    columns = None if keep_clean else step_plan.columns
    flagged: list[pa.Table] = []
    clean: list[pa.RecordBatch] = []
    offset = task.row_offset
    for batch in pf.iter_batches(batch_size=batch_size, row_groups=[task.row_group],
                                 columns=columns, use_threads=False):
        res = check_batch(batch, step_plan, task.file.path, offset)
        if res.flagged.num_rows:
            flagged.append(res.flagged)
        if keep_clean:
            mask = res.clean
            if keep_unverified and res.flagged.num_rows:
                unv = res.flagged.column("decision").to_numpy(zero_copy_only=False) == "unverified"
                rows = res.flagged.column("row_index").to_numpy()[unv] - offset
                mask = mask.copy()
                mask[rows] = True
            clean.append(batch.filter(pa.array(mask)))
        offset += batch.num_rows
    table = pa.concat_tables(flagged) if flagged else EXCLUSION_SCHEMA.empty_table()
    if late_key and table.num_rows:
        keys = pf.read_row_group(task.row_group, columns=[late_key], use_threads=False).column(0)
        local = pc.subtract(table.column("row_index"), task.row_offset)
        found = pc.cast(keys.take(local), pa.string())
        table = table.set_column(0, "key", pc.coalesce(found, table.column("key")))
    clean_table = None
    if keep_clean:
        clean_table = (pa.Table.from_batches(clean) if clean
                       else pf.schema_arrow.empty_table())
    return TaskResult(task, table, clean_table)


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def run_ordered(tasks: list[Task], fn: Callable[[Task], TaskResult], threads: int
                ) -> Iterator[TaskResult]:
    """Run ``fn`` over tasks on a pool, yielding results in task order."""
    threads = threads or default_threads()
    if threads == 1:
        for t in tasks:
            yield fn(t)
        return
    window = 2 * threads
    pending: deque[Future[TaskResult]] = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="datahygiene") as pool:
        it = iter(tasks)
        try:
            for t in it:
                pending.append(pool.submit(fn, t))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()

