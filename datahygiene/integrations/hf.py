"""Hugging Face ``datasets``: annotate every row with a decision, then split.

    from datahygiene.integrations.hf import Annotator, split

    hygiene = Annotator(["md5=lists/partner-md5.txt"])
    annotated = ds.with_format("arrow").map(hygiene, batched=True, num_proc=8)
    clean, excluded = split(annotated)

:class:`Annotator` is the same per-batch step as ``datahygiene scan``
(:func:`datahygiene.step.check_batch`) wrapped for ``datasets.map``. Three things make
it behave well there:

* **Picklable and lazily loaded.** It pickles as its list specs (paths and metadata)
  plus a fingerprint -- never the lists or the index. Each worker process
  (``num_proc > 1``) loads the lists and builds the index once, on its first batch.
* **A stable, cheap fingerprint.** ``datasets`` caches ``map`` results under a hash of
  the function, computed by pickling it. Pickling an Annotator yields only specs,
  settings and :attr:`Annotator.fingerprint` -- a digest of the tool version, the
  settings and each list's *content* fingerprint, computed once when the Annotator
  is made. The same lists give the same cache entry in every session; a list
  snapshot that changes (even under the same file name) gives a new one.
* **Fail closed.** Rows that could not be checked are ``unverified`` and :func:`split`
  keeps them out of the clean side unless asked.

Columns added: ``hygiene_decision`` (``clean`` / ``excluded`` / ``unverified``) and
``hygiene_reasons`` (e.g. ``md5:match``, ``md5:null``). Neither holds a hash, a URL or
a list entry: the dataset's own columns are what a curator already holds. Which list
entry matched is in ``datahygiene scan``'s restricted exclusion manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene import __version__
from datahygiene.errors import InputError, ListError
from datahygiene.lists.files import shown_columns
from datahygiene.lists.spec import ListSpec
from datahygiene.step import ScanPlan, check_batch

DECISION = "hygiene_decision"
REASONS = "hygiene_reasons"


def _spec(item: ListSpec | str) -> ListSpec:
    if isinstance(item, ListSpec):
        return item
    from datahygiene.commands.scan import parse_list_option

    return parse_list_option(item)


class Annotator:
    """Adds the decision and reason columns to an Arrow batch; see the module docstring.

    ``lists``: :class:`~datahygiene.lists.spec.ListSpec` objects or the command
    line's ``SIGNAL=PATH`` strings. ``columns``: signal -> column, as ``--column``.
    """

    def __init__(self, lists: Iterable[ListSpec | str], columns: Mapping[str, str] | None = None,
                 options: Mapping[str, Any] | None = None, decision_column: str = DECISION,
                 reasons_column: str = REASONS) -> None:
        self.specs = tuple(_spec(x) for x in lists)
        self.columns = dict(sorted((columns or {}).items()))
        self.options = {k: dict(v) for k, v in sorted((options or {}).items())}
        self.decision_column = decision_column
        self.reasons_column = reasons_column
        self._plan: ScanPlan | None = None
        # once, here: fails early on a bad list, and fixes the fingerprint
        self.fingerprint = self._fingerprint_of(self._load())

    def _load(self) -> ScanPlan:
        if self._plan is None:
            from datahygiene.config import ScanConfig
            from datahygiene.plugins import default_registry
            from datahygiene.scan import build_plan, load_lists

            config = ScanConfig(lists=list(self.specs), columns=dict(self.columns),
                                options=dict(self.options))
            registry = default_registry()
            plan = build_plan(load_lists(config, registry), config, registry, None)
            plan.setup()
            expected = getattr(self, "fingerprint", None)
            if expected is not None and self._fingerprint_of(plan) != expected:
                # A worker re-reads the list files; if they changed since the Annotator
                # was made, its results would be cached under the old lists' fingerprint.
                raise ListError("a list file changed after the Annotator was made (its content "
                                "fingerprint differs): make a new Annotator")
            self._plan = plan
        return self._plan

    def _fingerprint_of(self, plan: ScanPlan) -> str:
        basis = {"tool": __version__, "columns": self.columns, "options": self.options,
                 "output": [self.decision_column, self.reasons_column],
                 "lists": [(hl.id, hl.signal, hl.fingerprint) for hl in plan.lists],
                 "signals": [c.describe() for c in plan.checks]}
        return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()

    # What pickles (for num_proc workers, and for datasets' cache hash): specs,
    # settings and the fingerprint -- small, deterministic, and never the lists.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.specs, self.columns, self.options, self.decision_column,
                           self.reasons_column, self.fingerprint))

    def __repr__(self) -> str:
        return f"Annotator(lists={len(self.specs)}, fingerprint={self.fingerprint[:16]})"

    def check_columns(self, names: Iterable[str] | None) -> None:
        """The error ``scan`` gives for a column the lists need that the dataset lacks
        (it was a bare pyarrow KeyError from inside ``map``)."""
        if names is None:  # an iterable dataset whose columns are not known yet
            return
        names = list(names)
        missing = [c for c in self._load().columns if c not in names]
        if missing:
            shown = shown_columns(names)
            raise InputError(f"dataset: no hash column {missing[0]!r} (columns: {shown}); "
                             "name the column with columns={SIGNAL: COLUMN}")

    def __call__(self, batch: pa.Table | pa.RecordBatch) -> pa.Table:
        if not isinstance(batch, pa.Table | pa.RecordBatch):
            raise TypeError("Annotator works on Arrow batches: use ds.with_format('arrow')"
                            ".map(annotator, batched=True)")
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        plan = self._load()
        self.check_columns(table.column_names)
        res = check_batch(table, plan, "dataset", 0)
        n = table.num_rows
        decision = np.full(n, "clean", dtype=object)
        flagged = res.flagged
        reasons_offsets = np.zeros(n + 1, dtype=np.int32)
        values: pa.Array = pa.array([], pa.string())
        if flagged.num_rows:
            rows = flagged.column("row_index").to_numpy()
            decision[rows] = flagged.column("decision").to_numpy(zero_copy_only=False)
            lists = flagged.column("reasons").combine_chunks()
            counts = np.zeros(n, dtype=np.int32)
            counts[rows] = pc.list_value_length(lists).to_numpy()
            reasons_offsets[1:] = np.cumsum(counts)
            values = pc.list_flatten(lists)
            if isinstance(values, pa.ChunkedArray):
                values = values.combine_chunks()
        reasons = pa.ListArray.from_arrays(pa.array(reasons_offsets), values,
                                           type=pa.list_(pa.string()))
        for name in (self.decision_column, self.reasons_column):
            if name in table.schema.names:
                table = table.drop_columns([name])
        return (table.append_column(self.decision_column, pa.array(decision, pa.string()))
                .append_column(self.reasons_column, reasons))


def _restore(specs: tuple[ListSpec, ...], columns: dict[str, str], options: dict[str, Any],
             decision_column: str, reasons_column: str, fingerprint: str) -> Annotator:
    """Unpickle without loading the lists: a worker loads them on its first batch."""
    obj = Annotator.__new__(Annotator)
    obj.specs, obj.columns, obj.options = specs, columns, options
    obj.decision_column, obj.reasons_column = decision_column, reasons_column
    obj.fingerprint = fingerprint
    obj._plan = None
    return obj


class DecisionIn:
    """Picklable batched filter on the decision column (stable hash for the cache)."""

    def __init__(self, decisions: Iterable[str], column: str = DECISION) -> None:
        self.decisions = tuple(sorted(decisions))
        self.column = column

    def __call__(self, batch: pa.Table | pa.RecordBatch) -> pa.Array:
        col = batch.column(self.column)
        return pc.is_in(col, value_set=pa.array(self.decisions, pa.string()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (DecisionIn, (self.decisions, self.column))


def annotate(ds: Any, lists: Iterable[ListSpec | str] | Annotator, *, batch_size: int = 10_000,
             num_proc: int | None = None, **kw: Any) -> Any:
    """``ds`` (a ``Dataset`` or ``IterableDataset``) with the decision columns added, in
    the output format ``ds`` had. ``num_proc`` applies to a ``Dataset`` only."""
    fn = lists if isinstance(lists, Annotator) else Annotator(lists, **kw)
    fn.check_columns(getattr(ds, "column_names", None))  # before any map starts
    arrow = ds.with_format("arrow")
    map_kw: dict[str, Any] = {"batched": True, "batch_size": batch_size}
    if num_proc is not None and not _is_iterable(ds):
        map_kw["num_proc"] = num_proc
    if not _is_iterable(ds):
        map_kw["desc"] = "hygiene"
    return arrow.map(fn, **map_kw).with_format(_format_of(ds))


def split(annotated: Any, keep_unverified: bool = False, column: str = DECISION,
          num_proc: int | None = None) -> tuple[Any, Any]:
    """``(clean, excluded)`` from an annotated dataset, in its output format. Unverified
    rows go to the excluded side unless ``keep_unverified`` (they were not checked)."""
    keep = ("clean", "unverified") if keep_unverified else ("clean",)
    drop = ("excluded",) if keep_unverified else ("excluded", "unverified")
    arrow = annotated.with_format("arrow")
    kw: dict[str, Any] = {"batched": True}
    if num_proc is not None and not _is_iterable(annotated):
        kw["num_proc"] = num_proc
    fmt = _format_of(annotated)
    return (arrow.filter(DecisionIn(keep, column), **kw).with_format(fmt),
            arrow.filter(DecisionIn(drop, column), **kw).with_format(fmt))


def _format_of(ds: Any) -> str | None:
    """The output format a dataset was in (``None``: Python objects), so that what
    :func:`annotate` and :func:`split` return reads like what they were given."""
    if _is_iterable(ds):
        formatting = getattr(ds, "_formatting", None)
        return getattr(formatting, "format_type", None)
    fmt: str | None = ds.format.get("type")
    return fmt


def _is_iterable(ds: Any) -> bool:
    try:
        from datasets import IterableDataset
    except ImportError:  # pragma: no cover - only called with a datasets object
        return False
    return isinstance(ds, IterableDataset)
