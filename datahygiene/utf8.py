"""Text that may not be text: parquet writers do not check that a string column holds
UTF-8, and Arrow's kernels raise on such a value. One decoder for the few places that
must take those values one by one (error paths and flagged rows, never a whole column
in the per-batch loop)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def decode_utf8(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """A string or binary column as ``large_string``, with a value that is not UTF-8
    made null; and which rows held such a value (a null stays null, not marked)."""
    texts: list[str | None] = []
    bad = np.zeros(len(column), dtype=bool)
    for i, v in enumerate(column.cast(pa.large_binary()).to_pylist()):
        try:
            texts.append(None if v is None else v.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
            bad[i] = True
    return pa.array(texts, pa.large_string()), bad
