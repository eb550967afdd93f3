"""Exact digests (MD5, SHA-1, SHA-256) and the sorted-prefix index that matches them.

The index is the DataComp pattern (a sorted fixed-width array searched with
vectorised binary search) plus a bitmap prefilter on the leading bits. The prefilter
answers "certainly not in the list" with one memory access for almost every row, so
the binary search -- about log2(m) cache misses -- only runs for the few rows that may
match; the full-width comparison then runs only on rows whose 64-bit prefix matched.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import pyarrow as pa

from datahygiene.signals.base import BytesHasher, Matches, Normalized, SignalIndex, SignalType, take_rows
from datahygiene.signals.hexcodec import normalize_fixed


def prefix64(values: np.ndarray) -> np.ndarray:
    """First 8 bytes of each row as a big-endian uint64 (sort key; preserves byte order)."""
    n, w = values.shape
    if w >= 8:
        head = np.ascontiguousarray(values[:, :8])
    else:
        head = np.zeros((n, 8), dtype=np.uint8)
        head[:, :w] = values
    return head.view(">u8").ravel().astype(np.uint64)


class SortedPrefixIndex(SignalIndex):
    """Exact-match index: entries sorted by 64-bit prefix, a bitmap prefilter and a
    bucket directory.

    A query row costs one random read of the bitmap (about 32 bits per entry, so ~3%
    of non-matching rows pass); a passing row costs one read of the directory (the
    start of its bucket of ~1 entry in the sorted prefixes) instead of a binary
    search's ~log2(m) cache misses; rows whose prefix then matches are compared in
    full. Memory: the values, their prefixes, 4 bytes per entry of bitmap, and ~4-8
    bytes per entry of directory.
    """

    def __init__(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.uint8)
        prefixes = prefix64(values)
        self._order: np.ndarray | None = None
        if prefixes.size < 2 or bool(np.all(prefixes[1:] >= prefixes[:-1])):
            # a single list arrives sorted already: no copy, no sort
            self._prefix, self._values = prefixes, values
        else:
            order = np.argsort(prefixes, kind="stable")
            self._prefix = prefixes[order]
            self._values = take_rows(values, order)
            self._order = order.astype(np.int64)
        m = int(self._prefix.shape[0])
        self._m = m
        # ~32 bits of bitmap per entry keeps the false-positive rate near 3%.
        self._bits = int(min(34, max(16, int(np.ceil(np.log2(max(m, 1) * 32))))))
        self._shift = np.uint64(64 - self._bits)
        self._bitmap = np.zeros((1 << self._bits) // 8, dtype=np.uint8)
        dir_bits = int(min(28, max(8, int(np.ceil(np.log2(max(m, 1)))) - 1)))
        self._dshift = np.uint64(64 - dir_bits)
        if m:
            # keys are sorted (the prefixes are), so the bits of one bitmap byte are
            # adjacent: OR each run together instead of a slow unbuffered ufunc.at
            keys = self._prefix >> self._shift
            byte = (keys >> np.uint64(3)).astype(np.int64)
            bit = np.left_shift(np.uint8(1), (keys & np.uint64(7)).astype(np.uint8))
            starts = np.flatnonzero(np.concatenate(([True], byte[1:] != byte[:-1])))
            self._bitmap[byte[starts]] = np.bitwise_or.reduceat(bit, starts)
        dtype = np.int32 if m < 2**31 else np.int64
        self._dir = np.zeros((1 << dir_bits) + 1, dtype=dtype)
        np.cumsum(np.bincount((self._prefix >> self._dshift).astype(np.intp), minlength=1 << dir_bits),
                  out=self._dir[1:])

    def __len__(self) -> int:
        return self._m

    def nbytes(self) -> int:
        return int(self._prefix.nbytes + self._values.nbytes + self._bitmap.nbytes
                   + self._dir.nbytes + (self._order.nbytes if self._order is not None else 0))

    def query(self, values: np.ndarray) -> Matches:
        if len(self) == 0 or values.shape[0] == 0:
            return Matches.empty()
        return self.query_prefix(prefix64(values), lambda rows: take_rows(values, rows))

    def query_prefix(self, qp: np.ndarray, full_rows: object) -> Matches:
        """Match by prefix first; ``full_rows(rows)`` returns the full values of the
        candidate rows only (lets callers decode the full hash for candidates alone)."""
        keys = qp >> self._shift
        hit = (self._bitmap[(keys >> np.uint64(3)).astype(np.intp)]
               >> (keys & np.uint64(7)).astype(np.uint8)) & 1
        cand = np.flatnonzero(hit)
        if cand.size == 0:
            return Matches.empty()
        qc = qp[cand]
        bucket = (qc >> self._dshift).astype(np.intp)
        lo = self._dir[bucket].astype(np.int64)
        cnt = self._dir[bucket + 1].astype(np.int64) - lo
        keep = cnt > 0
        if not keep.any():
            return Matches.empty()
        cand, lo, cnt, qc = cand[keep], lo[keep], cnt[keep], qc[keep]
        rows = np.repeat(cand, cnt)
        pos = np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(rows.shape[0])
        same = self._prefix[pos] == np.repeat(qc, cnt)
        rows, pos = rows[same], pos[same]
        if rows.size == 0:
            return Matches.empty()
        full = full_rows(rows)  # type: ignore[operator]
        eq = np.all(full == take_rows(self._values, pos), axis=1)
        q = rows[eq].astype(np.int64)
        entries = pos[eq] if self._order is None else self._order[pos[eq]]
        return Matches(q, entries.astype(np.int64), np.zeros(q.shape[0], dtype=np.int32))


class ExactDigest(SignalType, BytesHasher):
    """A cryptographic digest compared by equality."""

    algorithm: ClassVar[str]

    def normalize(self, column: pa.Array | pa.ChunkedArray) -> Normalized:
        return normalize_fixed(column, self.width)

    def build_index(self, values: np.ndarray) -> SignalIndex:
        return SortedPrefixIndex(values)

    def hash_bytes(self, data: bytes) -> tuple[bytes, int | None]:
        return hashlib.new(self.algorithm, data).digest(), None


def _examples(algorithm: str) -> dict[str, list[object]]:
    digest = hashlib.new(algorithm, b"datahygiene synthetic example").digest()
    h = digest.hex()
    return {h: [h, h.upper(), f"  {h}\n", digest]}


class MD5(ExactDigest):
    name = "md5"
    width = 16
    default_column = "md5"
    algorithm = "md5"
    examples = _examples("md5")
    invalid_examples = ["xyz", "0" * 31, "g" * 32, b"\x00" * 15, None]


class SHA1(ExactDigest):
    name = "sha1"
    width = 20
    default_column = "sha1"
    algorithm = "sha1"
    examples = _examples("sha1")
    invalid_examples = ["0" * 39, "z" * 40, b"\x00" * 16, None]


class SHA256(ExactDigest):
    name = "sha256"
    width = 32
    default_column = "sha256"
    algorithm = "sha256"
    examples = _examples("sha256")
    invalid_examples = ["0" * 63, "q" * 64, b"\x00" * 20, None]
