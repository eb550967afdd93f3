"""The local engine's pool: results in task order whatever the thread count, small
row groups handed over several at a time, and an error after the results before it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from datahygiene.engines import local
from datahygiene.engines.local import Task, TaskResult, run_ordered
from datahygiene.step import EMPTY_EXCLUSIONS


def _tasks(rows: list[int]) -> list[Task]:
    return [Task(i, None, 0, 0, n) for i, n in enumerate(rows)]  # type: ignore[arg-type]


def _result(t: Task) -> TaskResult:
    return TaskResult(t, EMPTY_EXCLUSIONS, None)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_come_in_task_order(threads: int) -> None:
    tasks = _tasks([10_000] * 50 + [250_000] * 3 + [1] * 40)
    got = [r.task for r in run_ordered(tasks, _result, threads)]
    assert got == tasks


def test_small_row_groups_go_to_the_pool_together() -> None:
    """2,000 files of 10,000 rows were one job each, and each job's hand-over woke a
    thread: now up to GROUP_ROWS rows (or GROUP_TASKS tasks) go as one job."""
    tasks = _tasks([10_000] * 40 + [200_000] * 2 + [1] * 70)
    groups = list(local._groups(tasks))
    assert [t for g in groups for t in g] == tasks
    assert [len(g) for g in groups] == [13, 13, 13, 1, 1, 1, 32, 32, 6]
    assert all(sum(t.rows for t in g) <= local.GROUP_ROWS or len(g) == 1 for g in groups)


def test_an_error_comes_after_the_results_before_it() -> None:
    """A task that fails in the middle of a job: the results of the tasks before it
    are still handed back first (a --resume run keeps them), then its error."""
    tasks = _tasks([100] * 30)

    def fn(t: Task) -> TaskResult:
        if t.file_index == 17:
            raise pa.ArrowInvalid("page 17")
        return _result(t)

    got: list[int] = []
    with pytest.raises(pa.ArrowInvalid, match="page 17"):
        for r in run_ordered(tasks, fn, 2):
            got.append(r.task.file_index)
    assert got == list(range(17))
