"""The Ray engine: the local engine's row-group tasks, run by stateful Ray Data
actors, on one machine or an existing cluster.

``from_items(task numbers) -> map_batches(_TaskRunner, batch_format="pyarrow")``:
``_TaskRunner`` is a stateful class, so each Ray actor receives the scan plan (lists
included) and the task table once, through the object store, and builds its index
once -- lists are never shipped with every batch. For each task it gets, an actor
runs :func:`datahygiene.engines.local.run_task` -- the same per-batch step
(:func:`datahygiene.step.check_batch`) over one (file, row group), reading only the
needed columns -- and returns the flagged rows, the excluded rows' detail columns for
reporters and (with ``--write-clean``) the row group minus the rows that leave it,
serialised as Arrow IPC, tagged with the task's number.

Why outputs are byte-identical to the local engine's: every task's result is exactly
what the local engine computes for it, and the driver puts results back in task order
(buffering any that arrive early) before handing them to the same writer code
(:func:`datahygiene.scan.run_scan`).

Why not ``ray.data.read_parquet``: it gives no row positions, so the driver would have
to count rows and trust that blocks come back in file and row-group order. At 20
million rows on Ray 2.60 they did not (row groups of one file arrived out of order
even with ``preserve_order``), which misattributed flagged rows and would have
reordered clean files. Tasks named by number make the order explicit.

The clean output passes through the driver, which writes one file per input as the
local engine does; the scan itself (read, decode, normalise, match) is what spreads
over the cluster. See docs/scaling.md.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import socket
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from datahygiene.config import ScanConfig
from datahygiene.engines.local import Task, TaskResult, run_task
from datahygiene.errors import ConfigError, DatahygieneError, InputError
from datahygiene.step import ScanPlan

INSTALL_HINT = "--engine ray needs Ray, which is not installed: pip install 'datahygiene[ray]'"


def require_ray() -> Any:
    """Import Ray (an optional extra) or fail with a one-line install hint."""
    try:
        import ray
        import ray.data  # the ray[data] extra, not just ray core
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def _settle_optional_imports() -> None:
    """Ray Data probes fsspec's HTTP filesystem for every path, from several threads
    at once. Without aiohttp that import fails, and concurrent failing imports can
    surface as an ImportError Ray does not expect (it catches ModuleNotFoundError).
    Importing once here and recording a failure the way Python does (``None`` in
    ``sys.modules``) makes every later probe fail cleanly."""
    name = "fsspec.implementations.http"
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = None  # type: ignore[assignment]


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class _TaskRunner:
    """Runs in a Ray actor: the plan and task table arrive once, tasks one at a time."""

    def __init__(self, box: list[Any], batch_size: int, keep_clean: bool,
                 keep_unverified: bool, detail_columns: list[str] | None = None) -> None:
        import ray

        self.plan, self.tasks = ray.get(box[0])  # boxed: Ray would not resolve it otherwise
        self.failed: str | None = None
        try:
            self.plan.setup()
        except DatahygieneError as exc:
            self.failed = _error_text(exc)
        self.counted = self.plan.counters()
        self.batch_size = batch_size
        self.keep_clean = keep_clean
        self.keep_unverified = keep_unverified
        self.detail_columns = detail_columns

    def __call__(self, batch: pa.Table) -> pa.Table:
        numbers = batch.column("task").to_pylist()
        flagged: list[bytes | None] = []
        clean: list[bytes | None] = []
        details: list[bytes | None] = []
        error = self.failed
        for k in numbers:
            res = None
            if error is None:
                try:
                    res = run_task(self.tasks[k], self.plan, self.batch_size, self.keep_clean,
                                   self.keep_unverified, self.detail_columns)
                except DatahygieneError as exc:  # sent back as data (raised, Ray wraps it)
                    error = _error_text(exc)
            flagged.append(_ipc(res.flagged) if res is not None else None)
            clean.append(_ipc(res.clean) if res is not None and res.clean is not None else None)
            details.append(_ipc(res.details) if res is not None and res.details is not None else None)
        now = self.plan.counters()
        delta = json.dumps([{k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
                            for before, after in zip(self.counted, now, strict=True)])
        self.counted = now
        return pa.table({"task": pa.array(numbers, pa.int64()),
                         "flagged": pa.array(flagged, pa.large_binary()),
                         "clean": pa.array(clean, pa.large_binary()),
                         "details": pa.array(details, pa.large_binary()),
                         "error": pa.array(([error] if numbers else [])
                                           + [None] * (len(numbers) - 1), pa.string()),
                         # what the checks counted meanwhile (a service's requests...):
                         # on the call's first row only, so it is added once
                         "counters": pa.array(([delta] if numbers else [])
                                              + [None] * (len(numbers) - 1), pa.string())})


def ray_results(tasks: list[Task], plan: ScanPlan, config: ScanConfig,
                detail_columns: Sequence[str] | None = None) -> Iterator[TaskResult]:
    """TaskResults for ``tasks``, in order, computed on Ray (see the module docstring).

    Uses the Ray runtime this process is already connected to, else connects to
    ``config.ray_address`` or starts a local one (and shuts down what it started)."""
    if not tasks:
        return
    ray = require_ray()
    _settle_optional_imports()
    started = False
    if not ray.is_initialized():
        if config.ray_address:
            _check_reachable(config.ray_address)
        try:
            ray.init(address=config.ray_address or None, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as exc:
            raise ConfigError(f"--ray-address {config.ray_address}: cannot connect to a Ray "
                              f"cluster ({type(exc).__name__})") from None
        except BaseException:
            # a Ctrl-C while the runtime starts: shut down what had started, as on every
            # other way out (a runtime left to Ray's own exit handler has crashed there,
            # exit 139 instead of 130)
            with contextlib.suppress(Exception):
                ray.shutdown()
            raise
        started = True
    try:  # (from here on, what this call started is shut down whatever happens)
        yield from _results(ray, tasks, plan, config, detail_columns)
    finally:
        if started:
            ray.shutdown()


def _results(ray: Any, tasks: list[Task], plan: ScanPlan, config: ScanConfig,
             detail_columns: Sequence[str] | None) -> Iterator[TaskResult]:
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    try:
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False  # our own bar counts rows
        data_log.setLevel(logging.ERROR)
        workers = config.threads or max(1, int(ray.cluster_resources().get("CPU", 1)))
        ds = ray.data.from_items([{"task": k} for k in range(len(tasks))],
                                 override_num_blocks=len(tasks))
        out = ds.map_batches(
            _TaskRunner, batch_format="pyarrow", batch_size=1,
            fn_constructor_kwargs={"box": [ray.put((plan, tasks))], "batch_size": config.batch_size,
                                   "keep_clean": config.write_clean,
                                   "keep_unverified": config.keep_unverified,
                                   "detail_columns": list(detail_columns) if detail_columns else None},
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers))
        early: dict[int, TaskResult] = {}
        nxt = 0
        for block in _blocks(out.iter_batches(batch_format="pyarrow", batch_size=None)):
            _raise_worker_error(block)
            for delta in block.column("counters").to_pylist():
                if delta is not None:
                    plan.add_counters(json.loads(delta))
            for k, fb, cb, db in zip(block.column("task").to_pylist(),
                                     block.column("flagged").to_pylist(),
                                     block.column("clean").to_pylist(),
                                     block.column("details").to_pylist(), strict=True):
                early[k] = TaskResult(tasks[k], _from_ipc(fb),
                                      _from_ipc(cb) if cb is not None else None,
                                      _from_ipc(db) if db is not None else None)
            while nxt in early:
                yield early.pop(nxt)
                nxt += 1
        if nxt != len(tasks) or early:  # pragma: no cover - Ray lost or duplicated a task
            raise InputError(f"ray engine: {len(tasks) - nxt} of {len(tasks)} tasks came back "
                             "incomplete")
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
        data_log.setLevel(saved_level)


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """A cluster address that does not answer is a one-line error at once: ``ray.init``
    waits for it for minutes, printing its client's warnings."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return  # a form this check does not know: leave it to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"--ray-address {address}: cannot connect to a Ray cluster "
                          f"({exc.strerror or type(exc).__name__})") from None


def _error_text(exc: DatahygieneError) -> str:
    return json.dumps({"type": type(exc).__name__, "module": type(exc).__module__,
                       "message": str(exc)})


def _raise_worker_error(block: pa.Table) -> None:
    """A datahygiene error a worker met comes back as data, and is raised here as itself:
    one line and its own exit code, as on the local engine (raised in the worker, it
    reached the user as a Ray traceback, exit 1)."""
    found = [e for e in block.column("error").to_pylist() if e is not None]
    if not found:
        return
    info = json.loads(found[0])
    try:
        cls = getattr(importlib.import_module(info["module"]), info["type"])
    except (ImportError, AttributeError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, DatahygieneError)):
        cls = InputError
    raise cls(info["message"])


def _blocks(batches: Iterable[Any]) -> Iterator[pa.Table]:
    for b in batches:
        yield b if isinstance(b, pa.Table) else pa.Table.from_batches([b])
