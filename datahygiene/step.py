"""The per-batch step: a pure function of (Arrow batch, loaded lists).

Every engine -- the local thread pool, Ray Data workers, ``datasets.map`` -- calls
:func:`check_batch` unchanged. It reads only the columns the plan names, runs every
signal check vectorised, and returns the rows that are *not* clean (excluded or
unverified) as a small Arrow table, plus a mask of the clean rows.

Decisions (fail closed):

* ``excluded`` -- at least one signal value matched a list entry;
* ``unverified`` -- no match, but at least one scanned signal could not be checked
  (null, malformed, wrong length, low quality...);
* ``clean`` -- every scanned signal was checked and none matched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.errors import InputError
from datahygiene.lists.model import HashList
from datahygiene.signals.base import Matches, SignalIndex, SignalType, take_rows

MATCH_TYPE = pa.struct([
    ("signal", pa.string()),
    ("list", pa.string()),
    ("entry_ref", pa.string()),
    ("distance", pa.int32()),
])
EXCLUSION_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("source_file", pa.string()),
    ("row_index", pa.int64()),
    ("decision", pa.string()),
    ("matches", pa.list_(MATCH_TYPE)),
    ("reasons", pa.list_(pa.string())),
])
# The flagged rows of a batch or task that has none. Tables are immutable, so one serves
# them all: building an empty table of this schema costs about 0.13 ms (its list<struct>
# columns), twice per task, which was a third of a 10,000-row file's scan overhead.
EMPTY_EXCLUSIONS = EXCLUSION_SCHEMA.empty_table()
_NO_STRINGS = pa.array([], pa.string())  # likewise (pa.array of an empty list: ~60 us)


def key_text(keys: pa.Array | pa.ChunkedArray, source_file: str, key_column: str) -> pa.Array:
    """Flagged rows' keys as text. A string column need not hold UTF-8 (parquet writers
    do not check), and a key that is not text cannot be written as one: an input error
    naming the column, never the value."""
    keys = pc.cast(keys, pa.string())
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    try:
        keys.validate(full=True)
    except pa.ArrowInvalid:
        raise InputError(f"{source_file}: row key column {key_column!r} holds a value that is not "
                         "UTF-8 text; a key must be text or a number (choose another with --key)"
                         ) from None
    return keys


def reason_column(column: str) -> str:
    """Name of the optional column a transform adds beside a derived signal column to
    say why a row's value is null (e.g. ``decode-error``); the check reports that
    reason instead of a bare ``null``."""
    return f"__reason__{column}"


@dataclass
class CheckOutcome:
    """What one check found in one batch: rows it could not check, and matches.

    ``invalid_reasons`` are short codes (``null``, ``malformed``, ``timeout``...);
    the signal name is prefixed by :func:`check_batch`.
    """

    signal: str
    # which rows matched which entries: never in a repr that may reach a log
    invalid_rows: np.ndarray = field(repr=False)
    invalid_reasons: pa.Array = field(repr=False)
    match_rows: np.ndarray = field(repr=False)
    match_list: pa.Array = field(repr=False)
    match_ref: pa.Array = field(repr=False)
    match_distance: np.ndarray = field(repr=False)

    @staticmethod
    def nothing(signal: str, invalid_rows: np.ndarray | None = None,
                invalid_reasons: pa.Array | None = None) -> CheckOutcome:
        z = np.zeros(0, dtype=np.int64)
        s = _NO_STRINGS
        return CheckOutcome(signal, z if invalid_rows is None else invalid_rows,
                            s if invalid_reasons is None else invalid_reasons,
                            z, s, s, np.zeros(0, dtype=np.int32))


class BaseCheck(ABC):
    """One thing checked per row: a signal column against lists, or a remote service.

    Implementations must be cheap to pickle (build heavy state in :meth:`setup`) and
    :meth:`run` must be a pure function of the batch and that state.
    """

    signal_name: str

    @property
    @abstractmethod
    def columns(self) -> list[str]:
        """Columns this check reads."""

    @property
    def lists(self) -> list[HashList]:
        return []

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Build indexes, open clients."""

    def counters(self) -> dict[str, int]:
        """Integer counters of what this check did so far (a service's requests...);
        empty for checks that keep none."""
        return {}

    def add_counters(self, delta: dict[str, int]) -> None:  # noqa: B027 - optional hook
        """Add counts made by a copy of this check in another process (a Ray worker)."""

    @abstractmethod
    def run(self, batch: pa.RecordBatch | pa.Table) -> CheckOutcome:
        """Check every row of the batch."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.signal_name, "columns": self.columns}


class BatchTransform(ABC):
    """Adds derived columns to a batch before the checks (e.g. hashes computed from
    image bytes). A row whose value cannot be derived gets null in the derived column
    and, ideally, a reason in :func:`reason_column` of it."""

    @property
    @abstractmethod
    def columns(self) -> list[str]:
        """Input columns read."""

    @property
    @abstractmethod
    def produces(self) -> list[str]:
        """Columns added."""

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load heavy state lazily."""

    @abstractmethod
    def __call__(self, batch: pa.RecordBatch | pa.Table, source_file: str | None = None
                 ) -> pa.RecordBatch | pa.Table:
        """Return the batch with the derived columns added. ``source_file``: the input
        the batch was read from, where the transform needs it (a webdataset sidecar's
        rows are joined to its own shard's images)."""


@dataclass
class Check(BaseCheck):
    """One signal read from one column, matched against every list of that signal.

    Lists of the same signal share one index: entries are concatenated and each
    remembers its list, so one query answers for all of them.
    """

    signal: SignalType
    column: str
    list_group: list[HashList]
    _index: SignalIndex | None = field(default=None, repr=False)
    _entry_list: pa.Array | None = field(default=None, repr=False)
    _list_starts: np.ndarray | None = field(default=None, repr=False)
    _entry_threshold: np.ndarray | None = field(default=None, repr=False)
    # the column a transform fills with why a row's derived value is null (see
    # :func:`reason_column`); None for a manifest column, whose neighbours are the
    # user's data: a manifest column named like a reason column is never read as one
    reasons_column: str | None = None

    @property
    def signal_name(self) -> str:  # type: ignore[override]
        return self.signal.name

    @property
    def columns(self) -> list[str]:
        return [self.column]

    @property
    def lists(self) -> list[HashList]:
        return self.list_group

    def describe(self) -> dict[str, Any]:
        return {**self.signal.describe(), "column": self.column,
                "lists": [hl.id for hl in self.list_group]}

    def setup(self) -> None:
        if self._index is not None:
            return
        widths = {hl.values.shape[1] for hl in self.list_group}
        values = (self.list_group[0].values if len(self.list_group) == 1  # no copy
                  else np.concatenate([hl.values for hl in self.list_group]) if self.list_group
                  else np.zeros((0, self.signal.width), np.uint8))
        if widths and widths != {self.signal.width}:
            raise ValueError(f"lists for {self.signal.name} have the wrong width")
        self._index = self.signal.build_index(values)
        self._entry_list = pa.array(range(len(self.list_group)), type=pa.int32())  # list numbers
        self._list_starts = np.cumsum([0] + [len(hl) for hl in self.list_group])
        if not self.signal.exact:
            # one index at the largest threshold; each list's own threshold applied after
            default = self.signal.default_threshold
            self._entry_threshold = np.repeat(
                np.array([default if hl.threshold is None else hl.threshold
                          for hl in self.list_group], dtype=np.int32),
                [len(hl) for hl in self.list_group])

    def __getstate__(self) -> dict[str, Any]:
        # Indexes are rebuilt where they are used (a Ray worker, a datasets process):
        # shipping the lists is cheaper than shipping an index several times their size.
        state = dict(self.__dict__)
        for k in ("_index", "_entry_list", "_list_starts", "_entry_threshold"):
            state[k] = None
        return state

    @property
    def index(self) -> SignalIndex:
        self.setup()
        assert self._index is not None
        return self._index

    def run(self, batch: pa.RecordBatch | pa.Table) -> CheckOutcome:
        index = self.index
        column = batch.column(self.column)
        fused = self.signal.match_column(column, index)
        if fused is not None:  # normalised and matched in one pass
            bad, reasons, m = fused.bad_rows, fused.bad_reasons, fused.matches
            rows = m.query
        else:
            norm = self.signal.normalize(column)
            valid = norm.valid
            if valid.all():
                bad, reasons = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
                m = index.query(norm.values)
                rows = m.query
            else:
                bad = np.flatnonzero(~valid)
                reasons = np.asarray(norm.reasons, dtype=object)[bad]
                good = np.flatnonzero(valid)
                m = index.query(take_rows(norm.values, good))
                rows = good[m.query]
        bad_reasons = pa.array(reasons, type=pa.string()) if len(reasons) else _NO_STRINGS
        if bad.size and self.reasons_column:
            rcol = self.reasons_column
            if rcol in batch.schema.names:
                given = batch.column(rcol).take(pa.array(bad)).cast(pa.string())
                bad_reasons = pc.coalesce(given, bad_reasons)
                if isinstance(bad_reasons, pa.ChunkedArray):
                    bad_reasons = bad_reasons.combine_chunks()
        if self._entry_threshold is not None and len(m):
            within = m.distance <= self._entry_threshold[m.entry]
            m = Matches(m.query[within], m.entry[within], m.distance[within])
            rows = rows[within]
        if not len(m):
            return CheckOutcome.nothing(self.signal.name, bad, bad_reasons)
        assert self._entry_list is not None and self._list_starts is not None
        entry = np.asarray(m.entry, dtype=np.int64)
        which = np.searchsorted(self._list_starts, entry, side="right") - 1
        refs: list[pa.Array] = []
        order: list[np.ndarray] = []
        for li in np.unique(which):  # per list, not per row: matches are few
            sel = np.flatnonzero(which == li)
            refs.append(self.list_group[li].ref_strings(entry[sel] - self._list_starts[li]))
            order.append(sel)
        perm = np.concatenate(order)
        rows, entry, dist = np.asarray(rows, np.int64)[perm], entry[perm], m.distance[perm]
        ids = pa.array([hl.id for hl in self.list_group], type=pa.string())
        return CheckOutcome(self.signal.name, bad, bad_reasons, rows,
                            ids.take(pa.array(which[perm])), pa.concat_arrays(refs),
                            np.asarray(dist, np.int32))


@dataclass
class ScanPlan:
    checks: list[Any]  # BaseCheck instances
    key_column: str | None = None
    transforms: list[BatchTransform] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """Columns to read from the manifest (projection)."""
        produced = {c for t in self.transforms for c in t.produces}
        cols = [c for t in self.transforms for c in t.columns]
        cols += [c for ch in self.checks for c in ch.columns if c not in produced]
        if self.key_column:
            cols.append(self.key_column)
        return list(dict.fromkeys(cols))

    @property
    def lists(self) -> list[HashList]:
        return [hl for c in self.checks for hl in c.lists]

    def setup(self) -> None:
        for t in self.transforms:
            t.setup()
        for c in self.checks:
            c.setup()

    def counters(self) -> list[dict[str, int]]:
        """Each check's counters (see :meth:`BaseCheck.counters`), in check order."""
        return [c.counters() for c in self.checks]

    def add_counters(self, deltas: list[dict[str, int]]) -> None:
        for c, d in zip(self.checks, deltas, strict=True):
            if d:
                c.add_counters(d)


@dataclass
class BatchResult:
    # flagged rows' keys and matches: never in a repr that may reach a log
    flagged: pa.Table = field(repr=False)  # EXCLUSION_SCHEMA, sorted by row_index
    clean: np.ndarray = field(repr=False)  # bool per input row
    num_rows: int


def _strictly_increasing(rows: np.ndarray) -> bool:
    """Whether every row number is larger than the one before it: each row once, in
    order, which spares sorting and grouping a batch's few flagged rows (Arrow's
    calls cost about a millisecond a batch; a scan with a match in every row group
    made 80 of them)."""
    return bool(rows.shape[0] < 2 or (rows[1:] > rows[:-1]).all())


def check_batch(batch: pa.RecordBatch | pa.Table, plan: ScanPlan, source_file: str,
                row_offset: int = 0, rows: np.ndarray | None = None) -> BatchResult:
    """Check one batch. ``row_offset`` is the batch's first row index in its file.
    ``rows``: when the batch holds chosen rows rather than consecutive ones, their
    ascending row numbers counted from ``row_offset`` (the rows a prefilter could not
    rule out; every row left out must be one the checks would call clean)."""
    n = batch.num_rows
    for t in plan.transforms:
        batch = t(batch, source_file)
    match_parts: list[pa.Table] = []
    reason_rows: list[np.ndarray] = []
    reason_text: list[pa.Array] = []
    invalid_any = np.zeros(n, dtype=bool)
    for ci, check in enumerate(plan.checks):
        out = check.run(batch)
        name = out.signal
        if out.invalid_rows.size:
            invalid_any[out.invalid_rows] = True
            reason_rows.append(out.invalid_rows)
            reason_text.append(pc.binary_join_element_wise(f"{name}:", out.invalid_reasons, ""))
        k = out.match_rows.shape[0]
        if k:
            match_parts.append(pa.table({
                "row": pa.array(out.match_rows, type=pa.int64()),
                "check": pa.array(np.full(k, ci, dtype=np.int32)),
                "signal": pa.array(np.full(k, name, dtype=object), pa.string()),
                "list": out.match_list,
                "entry_ref": out.match_ref,
                "distance": pa.array(out.match_distance, type=pa.int32()),
            }))
            urows = np.unique(out.match_rows)
            reason_rows.append(urows)
            reason_text.append(pa.array(np.full(urows.shape[0], f"{name}:match", dtype=object),
                                        pa.string()))

    if not match_parts and not reason_rows:  # the common case: nothing flagged
        return BatchResult(EMPTY_EXCLUSIONS, np.ones(n, dtype=bool), n)
    if match_parts:
        matches = pa.concat_tables(match_parts)
        mrows = matches.column("row").to_numpy()
        if not _strictly_increasing(mrows):  # else one match a row, in order already
            matches = matches.sort_by(
                [("row", "ascending"), ("check", "ascending"), ("list", "ascending"),
                 ("entry_ref", "ascending"), ("distance", "ascending")])
            mrows = matches.column("row").to_numpy()
    else:
        matches = None
        mrows = np.zeros(0, dtype=np.int64)
    excluded_rows = np.unique(mrows)
    flagged_rows = np.union1d(excluded_rows, np.flatnonzero(invalid_any)).astype(np.int64)
    clean = np.ones(n, dtype=bool)
    clean[flagged_rows] = False
    if flagged_rows.size == 0:
        return BatchResult(EMPTY_EXCLUSIONS, clean, n)

    # matches: list<struct> per flagged row
    if matches is not None:
        structs = pa.StructArray.from_arrays(
            [matches.column(c).combine_chunks() for c in ("signal", "list", "entry_ref", "distance")],
            fields=list(MATCH_TYPE))
        offs = np.searchsorted(mrows, flagged_rows, side="left")
        match_lists = pa.ListArray.from_arrays(
            pa.array(np.append(offs, mrows.shape[0]).astype(np.int32)), structs,
            type=pa.list_(MATCH_TYPE))
    else:
        match_lists = pa.ListArray.from_arrays(
            pa.array(np.zeros(flagged_rows.shape[0] + 1, dtype=np.int32)),
            pa.array([], MATCH_TYPE), type=pa.list_(MATCH_TYPE))

    # reasons: sorted unique strings per flagged row
    rt = pa.table({"row": pa.array(np.concatenate(reason_rows), pa.int64()),
                   "reason": pa.concat_arrays([a.cast(pa.string()) for a in reason_text])})
    if not _strictly_increasing(rt.column("row").to_numpy()):  # else one reason a row
        rt = rt.group_by(["row", "reason"]).aggregate([]).sort_by([("row", "ascending"),
                                                                   ("reason", "ascending")])
    rrows = rt.column("row").to_numpy()
    roffs = np.searchsorted(rrows, flagged_rows, side="left")
    reason_lists = pa.ListArray.from_arrays(
        pa.array(np.append(roffs, rrows.shape[0]).astype(np.int32)),
        rt.column("reason").combine_chunks(), type=pa.list_(pa.string()))

    is_excl = np.isin(flagged_rows, excluded_rows, assume_unique=True)
    decision = pa.array(np.where(is_excl, "excluded", "unverified").astype(object), pa.string())
    row_index = (flagged_rows if rows is None else rows[flagged_rows]) + row_offset
    file_row = pc.binary_join_element_wise(f"{source_file}:", pa.array(row_index).cast(pa.string()), "")
    if plan.key_column:
        keys = key_text(batch.column(plan.key_column).take(pa.array(flagged_rows)), source_file,
                        plan.key_column)
        if keys.null_count:  # a row without a key is still identified: by FILE:ROW
            keys = pc.coalesce(keys, file_row)
    else:
        keys = file_row
    flagged = pa.Table.from_arrays([
        keys,
        pa.array(np.full(flagged_rows.shape[0], source_file, dtype=object), pa.string()),
        pa.array(row_index, pa.int64()),
        decision,
        match_lists,
        reason_lists,
    ], schema=EXCLUSION_SCHEMA)
    return BatchResult(flagged, clean, n)
