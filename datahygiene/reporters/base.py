"""The reporter interface: turns a finished run into report stubs for people.

Reporters write only under the run's ``restricted/`` directory (owner-only), since a
report necessarily points at matched items. They never submit anything anywhere.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from datahygiene.utf8 import decode_utf8


def write_owner_only(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, created owner-only (0600) whatever the umask: a
    report points at matched items, and a file made readable by others under the
    umask stays so if the directory around it is ever copied or opened up."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        fh.write(data)
    return path


def records(table: pa.Table) -> list[dict[str, Any]]:
    """``table.to_pylist()``, except that a string value that is not UTF-8 (parquet
    writers do not check) comes back as None, like a null: it is no text to report,
    and decoding it raised mid-report."""
    for i, column in enumerate(table.columns):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            table = table.set_column(i, table.field(i), decode_utf8(column)[0].cast(column.type))
    return table.to_pylist()


@dataclass(frozen=True)
class RowDetails:
    """Manifest values of excluded rows, captured while the scan was reading them, so
    a reporter need not open the inputs again.

    ``tables`` maps an input (its ``source_file`` in the exclusions) to a table of
    ``row_index`` plus those of the wanted columns the input has: one row per excluded
    row, ascending. An input with no entry -- finished by an earlier, interrupted run
    and skipped on ``--resume`` -- has no details; a reporter reads those rows back.

    The values point at matched items: they go to ``restricted/`` outputs only, and are
    kept out of ``repr`` so that no log or traceback can show them.
    """

    tables: Mapping[str, pa.Table] = field(default_factory=dict, repr=False)

    def lookup(self, source_file: str, rows: Sequence[int]) -> list[dict[str, Any] | None]:
        """Column -> value for each of ``rows`` of ``source_file``; ``None`` for a row
        with no details (read it back from the input)."""
        table = self.tables.get(source_file)
        out: list[dict[str, Any] | None] = [None] * len(rows)
        if table is None or not table.num_rows or not len(rows):
            return out
        have = table.column("row_index").to_numpy()
        want = np.asarray(rows, dtype=np.int64)
        pos = np.minimum(np.searchsorted(have, want), have.shape[0] - 1)
        hit = np.flatnonzero(have[pos] == want)
        values = table.drop_columns(["row_index"])
        # (an input with none of the wanted columns still has its rows: empty records)
        recs = (records(values.take(pa.array(pos[hit]))) if values.num_columns
                else [{} for _ in hit])
        for k, rec in zip(hit.tolist(), recs, strict=True):
            out[k] = rec
        return out


class Reporter(ABC):
    name: ClassVar[str]

    def detail_columns(self, signals: list[dict[str, Any]]) -> list[str]:
        """Manifest columns this reporter needs for each excluded row, given the run's
        signals (``run["signals"]``: dicts with ``name`` and ``column``). The scan
        captures them while it reads the rows and passes them to :meth:`write` as
        ``details``; a reporter returning ``[]`` (the default) is called without it."""
        return []

    @abstractmethod
    def write(self, exclusions: pa.Table, run: dict[str, Any], summary: dict[str, Any],
              directory: Path, *, details: RowDetails | None = None) -> list[Path]:
        """Write stubs into ``directory`` (already owner-only); return the paths written.

        ``details`` (only for a reporter whose :meth:`detail_columns` is not empty):
        the values of those columns for excluded rows; see :class:`RowDetails`."""
