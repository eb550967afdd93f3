"""A remote matching service as one check of the scan step.

The check reads image bytes from one column and asks the service about each row.
This is the one place where per-row Python is unavoidable -- a remote matcher takes
one image per request -- and it is bounded by the service's own rate, not by us.

Fail closed: a null or empty image, an image the service refuses, and a request that
still fails after the service's retries all make the row ``unverified`` with the
service's reason; a match is reported under the service's signal name, with the
service's list identity (e.g. ``photodna/NCMEC``) and its match id as entry ref.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.errors import InputError
from datahygiene.services.base import MatchService
from datahygiene.step import BaseCheck, CheckOutcome


def image_bytes(column: pa.Array | pa.ChunkedArray, name: str) -> pa.Array:
    """The column as binary: binary/large binary as is, or the ``bytes`` field of an
    img2dataset/HF ``{bytes, path}`` struct."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_struct(column.type):
        if column.type.get_field_index("bytes") < 0:
            raise InputError(f"column {name!r} is a struct without a 'bytes' field")
        column = pc.struct_field(column, "bytes")
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        raise InputError(f"column {name!r} must hold image bytes (binary), not {column.type}")
    return column


@dataclass
class ServiceCheck(BaseCheck):
    service: MatchService
    column: str

    @property
    def signal_name(self) -> str:  # type: ignore[override]
        return self.service.signal

    @property
    def columns(self) -> list[str]:
        return [self.column]

    def setup(self) -> None:
        self.service.setup()

    def describe(self) -> dict[str, Any]:
        return {"name": self.service.signal, "service": self.service.describe(), "column": self.column}

    def counters(self) -> dict[str, int]:
        return dict(getattr(self.service, "stats", None) or {})

    def add_counters(self, delta: dict[str, int]) -> None:
        self.service.add_stats(delta)

    def run(self, batch: pa.RecordBatch | pa.Table) -> CheckOutcome:
        col = image_bytes(batch.column(self.column), self.column)
        lengths = pc.fill_null(pc.binary_length(col), 0).to_numpy(zero_copy_only=False)
        present = np.flatnonzero(np.asarray(lengths) > 0)
        missing = np.flatnonzero(np.asarray(lengths) == 0)
        bad_rows: list[int] = [int(i) for i in missing]
        bad_reasons: list[str] = ["null" if not col[int(i)].is_valid else "empty" for i in missing]
        m_rows: list[int] = []
        m_lists: list[str] = []
        m_refs: list[str] = []
        if present.size:
            items = col.take(pa.array(present)).to_pylist()
            results = self.service.match(items)
            if len(results) != len(items):
                raise RuntimeError(f"service {self.service.name} returned {len(results)} results "
                                   f"for {len(items)} items")
            default_list = self.service.name
            for row, res in zip(present.tolist(), results, strict=True):
                if res.status == "match":
                    # one match per ref (a match without one is still a match), each
                    # under the list the service names for it, else the service's own
                    refs = res.refs or ("",)
                    named = tuple(res.details.get("lists", ()))[: len(refs)]
                    lists = named + (default_list,) * (len(refs) - len(named))
                    for ref, lst in zip(refs, lists, strict=True):
                        m_rows.append(row)
                        m_lists.append(str(lst))
                        m_refs.append(str(ref))
                elif res.status != "no-match":
                    bad_rows.append(row)
                    bad_reasons.append(res.reason or "unverified")
        order = np.argsort(np.asarray(bad_rows, dtype=np.int64), kind="stable")
        return CheckOutcome(
            self.signal_name,
            np.asarray(bad_rows, dtype=np.int64)[order],
            pa.array([bad_reasons[i] for i in order], pa.string()),
            np.asarray(m_rows, dtype=np.int64),
            pa.array(m_lists, pa.string()),
            pa.array(m_refs, pa.string()),
            np.zeros(len(m_rows), dtype=np.int32),
        )
