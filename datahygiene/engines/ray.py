"""The Ray engine: the same per-batch step (:func:`datahygiene.step.check_batch`)
through Ray Data, on one machine or an existing cluster.

``read_parquet -> map_batches(_Checker, batch_format="pyarrow")``: ``_Checker`` is a
stateful class, so each Ray worker receives the scan plan (lists included) once,
through the object store, and builds its index once -- lists are never shipped with
every batch. Workers return, per batch, the flagged rows and (with ``--write-clean``)
the batch minus the rows that leave it, serialised as Arrow IPC.

Why outputs are byte-identical to the local engine's: a batch's rows are decided one
by one, whatever the batch boundaries; Ray Data is run with ``preserve_order``, so
results come back in input order, and the driver -- knowing every input's row-group
sizes from the parquet footers -- re-cuts them into the local engine's
(file, row group) units, fixing row indices and ``FILE:ROW`` keys, and hands them to
the same writer code as the local engine (:func:`datahygiene.scan.run_scan`). Row
positions come from counting, not from a path column, so a manifest may have a
column of any name; the driver checks that the counts add up exactly.

The clean output passes through the driver, which writes one file per input as the
local engine does; the scan itself (decode, normalise, match) is what spreads over
the cluster. See docs/scaling.md.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.config import ScanConfig
from datahygiene.engines.local import Task, TaskResult
from datahygiene.errors import ConfigError, InputError
from datahygiene.manifest import InputFile
from datahygiene.step import EXCLUSION_SCHEMA, ScanPlan, check_batch

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


def removed_rows(flagged: pa.Table, keep_unverified: bool) -> np.ndarray:
    """Row indices (as in ``flagged``) that leave the clean output."""
    rows = flagged.column("row_index").to_numpy()
    if keep_unverified and flagged.num_rows:
        excl = flagged.column("decision").to_numpy(zero_copy_only=False) == "excluded"
        rows = rows[excl]
    return np.asarray(rows, dtype=np.int64)


class _Checker:
    """Runs in a Ray worker: one instance per actor, the plan loaded once."""

    def __init__(self, plan_box: list[Any], types: pa.Schema, keep_clean: bool,
                 keep_unverified: bool) -> None:
        import ray

        self.plan: ScanPlan = ray.get(plan_box[0])  # boxed: Ray would not resolve it otherwise
        self.plan.setup()
        self.types = types
        self.keep_clean = keep_clean
        self.keep_unverified = keep_unverified

    def __call__(self, batch: pa.Table) -> pa.Table:
        # Ray may widen types (large_string...); the step sees what the local engine sees
        for j, name in enumerate(batch.schema.names):
            want = self.types.field(name).type if name in self.types.names else None
            if want is not None and batch.schema.field(j).type != want:
                batch = batch.set_column(j, name, batch.column(j).cast(want))
        res = check_batch(batch, self.plan, "", 0)
        clean = None
        if self.keep_clean:
            mask = np.ones(batch.num_rows, dtype=bool)
            mask[removed_rows(res.flagged, self.keep_unverified)] = False
            clean = _ipc(batch.filter(pa.array(mask)))
        return pa.table({"rows": pa.array([batch.num_rows], pa.int64()),
                         "flagged": pa.array([_ipc(res.flagged)], pa.large_binary()),
                         "clean": pa.array([clean], pa.large_binary())})


class _Recut:
    """Cuts the ordered stream of batch results back into row-group TaskResults."""

    def __init__(self, tasks: list[Task], plan: ScanPlan, schemas: list[pa.Schema],
                 keep_clean: bool, keep_unverified: bool) -> None:
        self.tasks = tasks
        self.plan = plan
        self.schemas = schemas
        self.keep_clean = keep_clean
        self.keep_unverified = keep_unverified
        self.ti = 0
        self.filled = 0
        self.flagged: list[pa.Table] = []
        self.clean: list[pa.Table] = []

    def _emit_ready(self) -> Iterator[TaskResult]:
        while self.ti < len(self.tasks) and self.filled == self.tasks[self.ti].rows:
            t = self.tasks[self.ti]
            flagged = pa.concat_tables(self.flagged) if self.flagged else EXCLUSION_SCHEMA.empty_table()
            clean = None
            if self.keep_clean:
                clean = (pa.concat_tables(self.clean) if self.clean
                         else self.schemas[t.file_index].empty_table())
            yield TaskResult(t, flagged, clean)
            self.ti += 1
            self.filled = 0
            self.flagged, self.clean = [], []

    def _fix(self, part: pa.Table, shift: int, t: Task) -> pa.Table:
        """Batch-relative rows -> the input file's row indices, source and keys."""
        path = t.file.path
        rows = pc.add(part.column("row_index"), pa.scalar(shift, pa.int64()))
        part = part.set_column(2, "row_index", rows)
        part = part.set_column(1, "source_file", pa.array(np.full(part.num_rows, path, dtype=object),
                                                          pa.string()))
        if self.plan.key_column is None:
            keys = pc.binary_join_element_wise(f"{path}:", rows.cast(pa.string()), "")
            part = part.set_column(0, "key", keys)
        return part

    def feed(self, n: int, flagged: pa.Table, clean: pa.Table | None) -> Iterator[TaskResult]:
        local = flagged.column("row_index").to_numpy()
        removed = removed_rows(flagged, self.keep_unverified) if self.keep_clean else None
        pos = cpos = 0
        while True:
            yield from self._emit_ready()
            if pos == n:
                return
            if self.ti == len(self.tasks):
                raise InputError("ray engine: Ray returned more rows than the inputs hold")
            t = self.tasks[self.ti]
            take = min(n - pos, t.rows - self.filled)
            lo, hi = np.searchsorted(local, [pos, pos + take])
            if hi > lo:
                shift = t.row_offset + self.filled - pos
                self.flagged.append(self._fix(flagged.slice(lo, hi - lo), shift, t))
            if clean is not None and removed is not None:
                rlo, rhi = np.searchsorted(removed, [pos, pos + take])
                keep = take - int(rhi - rlo)
                self.clean.append(clean.slice(cpos, keep))
                cpos += keep
            self.filled += take
            pos += take

    def finish(self) -> Iterator[TaskResult]:
        yield from self._emit_ready()
        if self.ti != len(self.tasks):
            t = self.tasks[self.ti]
            raise InputError(f"{t.file.path}: ray engine read fewer rows than the file holds")


def _filesystem(files: list[InputFile]) -> Any:
    protocols = {getattr(f.fs, "protocol", "file") for f in files}
    if all(p in ("file", "local", ("file", "local")) for p in protocols):
        return None
    import pyarrow.fs as pafs

    return pafs.PyFileSystem(pafs.FSSpecHandler(files[0].fs))


def ray_results(tasks: list[Task], plan: ScanPlan, files: list[InputFile], schemas: list[pa.Schema],
                config: ScanConfig) -> Iterator[TaskResult]:
    """TaskResults for ``tasks``, in order, computed on Ray (see the module docstring).

    Uses the Ray runtime this process is already connected to, else connects to
    ``config.ray_address`` or starts a local one (and shuts down what it started)."""
    if not tasks:
        return
    ray = require_ray()
    _settle_optional_imports()
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=config.ray_address or None, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
        except ConnectionError as exc:
            raise ConfigError(f"--ray-address {config.ray_address}: cannot connect to a Ray "
                              f"cluster ({type(exc).__name__})") from None
        started = True
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    try:
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False  # our own bar counts rows
        data_log.setLevel(logging.ERROR)
        todo = sorted({t.file_index for t in tasks})
        ds = ray.data.read_parquet([files[i].fs_path for i in todo], filesystem=_filesystem(files))
        if not config.write_clean:
            ds = ds.select_columns(plan.columns)
        workers = config.threads or max(1, int(ray.cluster_resources().get("CPU", 1)))
        out = ds.map_batches(
            _Checker, batch_format="pyarrow", batch_size=config.batch_size,
            fn_constructor_kwargs={"plan_box": [ray.put(plan)], "types": schemas[todo[0]],
                                   "keep_clean": config.write_clean,
                                   "keep_unverified": config.keep_unverified},
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers))
        recut = _Recut(tasks, plan, schemas, config.write_clean, config.keep_unverified)
        for block in _blocks(out.iter_batches(batch_format="pyarrow", batch_size=None)):
            for n, fb, cb in zip(block.column("rows").to_pylist(), block.column("flagged").to_pylist(),
                                 block.column("clean").to_pylist(), strict=True):
                flagged = _from_ipc(fb)
                yield from recut.feed(n, flagged, _from_ipc(cb) if cb is not None else None)
        yield from recut.finish()
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
        data_log.setLevel(saved_level)
        if started:
            ray.shutdown()


def _blocks(batches: Iterable[Any]) -> Iterator[pa.Table]:
    for b in batches:
        yield b if isinstance(b, pa.Table) else pa.Table.from_batches([b])
