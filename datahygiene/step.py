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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.lists.model import HashList
from datahygiene.signals.base import Matches, SignalIndex, SignalType

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


@dataclass
class Check:
    """One signal read from one column, matched against every list of that signal.

    Lists of the same signal share one index: entries are concatenated and each
    remembers its list, so one query answers for all of them.
    """

    signal: SignalType
    column: str
    lists: list[HashList]
    _index: SignalIndex | None = field(default=None, repr=False)
    _entry_list: pa.Array | None = field(default=None, repr=False)
    _entry_ref: pa.Array | None = field(default=None, repr=False)
    _entry_threshold: np.ndarray | None = field(default=None, repr=False)

    def setup(self) -> None:
        if self._index is not None:
            return
        widths = {hl.values.shape[1] for hl in self.lists}
        values = (np.concatenate([hl.values for hl in self.lists])
                  if self.lists else np.zeros((0, self.signal.width), np.uint8))
        if widths and widths != {self.signal.width}:
            raise ValueError(f"lists for {self.signal.name} have the wrong width")
        self._index = self.signal.build_index(values)
        self._entry_list = pa.array(
            np.repeat(np.arange(len(self.lists), dtype=np.int32), [len(hl) for hl in self.lists]),
            type=pa.int32(),
        )
        self._entry_ref = pa.concat_arrays([hl.refs for hl in self.lists]) if self.lists \
            else pa.array([], pa.string())
        if not self.signal.exact:
            # one index at the largest threshold; each list's own threshold applied after
            default = self.signal.default_threshold
            self._entry_threshold = np.repeat(
                np.array([default if hl.threshold is None else hl.threshold
                          for hl in self.lists], dtype=np.int32),
                [len(hl) for hl in self.lists])

    def __getstate__(self) -> dict[str, Any]:
        # Indexes are rebuilt where they are used (a Ray worker, a datasets process):
        # shipping the lists is cheaper than shipping an index several times their size.
        state = dict(self.__dict__)
        for k in ("_index", "_entry_list", "_entry_ref", "_entry_threshold"):
            state[k] = None
        return state

    @property
    def index(self) -> SignalIndex:
        self.setup()
        assert self._index is not None
        return self._index


@dataclass
class ScanPlan:
    checks: list[Check]
    key_column: str | None = None

    @property
    def columns(self) -> list[str]:
        cols = [c.column for c in self.checks]
        if self.key_column:
            cols.append(self.key_column)
        return list(dict.fromkeys(cols))

    @property
    def lists(self) -> list[HashList]:
        return [hl for c in self.checks for hl in c.lists]

    def setup(self) -> None:
        for c in self.checks:
            c.setup()


@dataclass
class BatchResult:
    flagged: pa.Table  # EXCLUSION_SCHEMA, sorted by row_index
    clean: np.ndarray  # bool per input row
    num_rows: int


def check_batch(batch: pa.RecordBatch | pa.Table, plan: ScanPlan, source_file: str,
                row_offset: int = 0) -> BatchResult:
    """Check one batch. ``row_offset`` is the batch's first row index in its file."""
    n = batch.num_rows
    match_parts: list[pa.Table] = []
    reason_rows: list[np.ndarray] = []
    reason_text: list[pa.Array] = []
    invalid_any = np.zeros(n, dtype=bool)
    for ci, check in enumerate(plan.checks):
        norm = check.signal.normalize(batch.column(check.column))
        valid = norm.valid
        if not valid.all():
            bad = np.flatnonzero(~valid)
            invalid_any[bad] = True
            reason_rows.append(bad)
            reason_text.append(pc.binary_join_element_wise(
                f"{check.signal.name}:", pa.array(norm.reasons[bad], type=pa.string()), ""))
            good = np.flatnonzero(valid)
            m = check.index.query(norm.values[good])
            rows = good[m.query]
        else:
            m = check.index.query(norm.values)
            rows = m.query
        if check._entry_threshold is not None and len(m):
            within = m.distance <= check._entry_threshold[m.entry]
            m = Matches(m.query[within], m.entry[within], m.distance[within])
            rows = rows[within]
        if len(m):
            assert check._entry_list is not None and check._entry_ref is not None
            entry = pa.array(m.entry, type=pa.int64())
            list_idx = check._entry_list.take(entry)
            ids = pa.array([hl.id for hl in check.lists], type=pa.string())
            match_parts.append(pa.table({
                "row": pa.array(rows, type=pa.int64()),
                "check": pa.array(np.full(len(m), ci, dtype=np.int32)),
                "signal": pa.array(np.full(len(m), check.signal.name, dtype=object), pa.string()),
                "list": ids.take(list_idx),
                "entry_ref": check._entry_ref.take(entry),
                "distance": pa.array(m.distance, type=pa.int32()),
            }))
            reason_rows.append(np.unique(rows))
            reason_text.append(pa.array(
                np.full(np.unique(rows).shape[0], f"{check.signal.name}:match", dtype=object),
                pa.string()))

    if match_parts:
        matches = pa.concat_tables(match_parts).sort_by(
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
        return BatchResult(EXCLUSION_SCHEMA.empty_table(), clean, n)

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
    rt = rt.group_by(["row", "reason"]).aggregate([]).sort_by([("row", "ascending"),
                                                               ("reason", "ascending")])
    rrows = rt.column("row").to_numpy()
    roffs = np.searchsorted(rrows, flagged_rows, side="left")
    reason_lists = pa.ListArray.from_arrays(
        pa.array(np.append(roffs, rrows.shape[0]).astype(np.int32)),
        rt.column("reason").combine_chunks(), type=pa.list_(pa.string()))

    is_excl = np.isin(flagged_rows, excluded_rows, assume_unique=True)
    decision = pa.array(np.where(is_excl, "excluded", "unverified").astype(object), pa.string())
    row_index = flagged_rows + row_offset
    if plan.key_column:
        keys = pc.cast(batch.column(plan.key_column).take(pa.array(flagged_rows)), pa.string())
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
    else:
        keys = pc.binary_join_element_wise(f"{source_file}:", pa.array(row_index).cast(pa.string()), "")
    flagged = pa.Table.from_arrays([
        keys,
        pa.array(np.full(flagged_rows.shape[0], source_file, dtype=object), pa.string()),
        pa.array(row_index, pa.int64()),
        decision,
        match_lists,
        reason_lists,
    ], schema=EXCLUSION_SCHEMA)
    return BatchResult(flagged, clean, n)
