"""Row keys: how many rows have none, and whether a flagged row's key also names
another row.

The exclusion log identifies a row by its key. If two inputs number their rows the
same way (two img2dataset runs, both from ``000000000``), an excluded row's key also
names a clean row elsewhere, and an auditor checking a release by key sees an
excluded key in it: the evidence cannot tell the two rows apart. Whether any key is
repeated across billions of rows cannot be known without holding them all; whether a
*flagged* row's key is repeated needs one more read of the key column, checked
against the few flagged keys. :func:`rows_sharing_flagged_keys` does that read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datahygiene.errors import InputError
from datahygiene.manifest import FileState, Footer, InputFile, check_after_reads, check_state


class KeyNotUnique(InputError):
    """A flagged row's key also names another row. Its message says how to go on; the
    generic "--resume skips the finished inputs" hint would mislead (a new --key is a
    new configuration, which --resume refuses)."""


def null_keys(footers: Iterable[Footer], key_column: str) -> int | None:
    """Rows whose key is null, from the footers' column statistics (no data read);
    None when a file does not record it (see :func:`datahygiene.manifest.column_nulls`)."""
    total = 0
    for ft in footers:
        n = ft.nulls(key_column)
        if n is None:
            return None
        total += n
    return total


def _effective_keys(column: pa.Array | pa.ChunkedArray, path: str, offset: int) -> pa.Array:
    """The key each row is known by in the outputs (datahygiene/step.py): the column's
    value as text, or ``FILE:ROW`` where it is null."""
    keys = pc.cast(column, pa.string())
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if keys.null_count:
        rows = pa.array(np.arange(offset, offset + len(keys), dtype=np.int64)).cast(pa.string())
        keys = pc.coalesce(keys, pc.binary_join_element_wise(f"{path}:", rows, ""))
    return keys


def _flagged_keys_in_file(f: InputFile, key_column: str, flagged: pa.Array,
                          state: FileState | None = None) -> dict[str, int]:
    """How many of the file's rows carry each flagged key it holds; ``state``: the
    file's as the scan read it, to be found before and after this read."""
    counts: dict[str, int] = {}
    try:
        # a remote file's key chunks fetched exactly, a row group's in one read: with
        # fsspec's read-ahead each fetched several MB of the other columns
        with f.open(exact=True) as fh:
            if state is not None and f.is_local:
                check_state(f, fh.fileno(), state)
            pf = pq.ParquetFile(fh, pre_buffer=not f.is_local)
            offset = 0
            for batch in pf.iter_batches(batch_size=1 << 20, columns=[key_column],
                                         use_threads=False):
                keys = _effective_keys(batch.column(0), f.path, offset)
                hits = keys.filter(pc.is_in(keys, value_set=flagged))
                if len(hits):
                    vc = pc.value_counts(hits)
                    for k, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(),
                                    strict=True):
                        counts[k] = counts.get(k, 0) + n
                offset += batch.num_rows
            check_after_reads(f, fh, state)
            return counts
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{f.path}: cannot read its key column {key_column!r} again "
                         f"({type(exc).__name__}); the file may have changed") from None


def rows_sharing_flagged_keys(files: list[InputFile], key_column: str, exclusions: pa.Table,
                              threads: int, states: Sequence[FileState | None] | None = None
                              ) -> tuple[int, int]:
    """(rows, files): how many rows carry the key of a flagged row beyond that row --
    clean rows, and flagged ones too (an excluded row and an unverified one kept with
    --keep-unverified must not share a key: the log could not tell which one a released
    key is) -- and in how many inputs the keys so shared are. Zero when every flagged
    key names one row alone. ``states``: each input's :data:`FileState` as the scan
    read it (a file found otherwise is :func:`changed_under_scan`'s error)."""
    if not exclusions.num_rows:
        return 0, 0
    flagged = pc.unique(exclusions.column("key").combine_chunks())
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="datahygiene-keys") as pool:
        per_file = list(pool.map(
            lambda i: _flagged_keys_in_file(files[i], key_column, flagged,
                                            states[i] if states is not None else None),
            range(len(files))))
    total: dict[str, int] = {}
    for counts in per_file:
        for k, n in counts.items():
            total[k] = total.get(k, 0) + n
    shared = {k for k, n in total.items() if n > 1}
    rows = sum(total[k] - 1 for k in shared)
    return rows, sum(1 for counts in per_file if shared & counts.keys())
