"""Exact digests (MD5, SHA-1, SHA-256) and the sorted-prefix index that matches them.

The index is a sorted fixed-width array (the DataComp pattern) with a prefilter in
front: a blocked Bloom filter on the leading 8 bytes answers "certainly not in the
list" with one memory access for almost every row, so the directory lookup and the
full-width comparison run only for the 1-3% of rows that may match.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from datahygiene import kernels, page_kernels
from datahygiene.lists.model import sort_rows_with_order
from datahygiene.signals.base import (
    BytesHasher,
    ColumnMatch,
    Matches,
    Normalized,
    SignalIndex,
    SignalType,
)
from datahygiene.signals.hexcodec import NULL, as_array, normalize_fixed, string_buffers


def prefix64(values: np.ndarray) -> np.ndarray:
    """First 8 bytes of each row as a big-endian uint64 (sort key; preserves byte order)."""
    n, w = values.shape
    if w >= 8:
        head = np.ascontiguousarray(values[:, :8])
    else:
        head = np.zeros((n, 8), dtype=np.uint8)
        head[:, :w] = values
    return head.view(">u8").ravel().astype(np.uint64)


_SCRATCH = threading.local()


def _scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-thread scratch arrays for the match kernels (uint64 keys, int64 rows, uint8
    flags, int64 value starts), kept between batches: fresh multi-megabyte arrays cost
    their page faults again on every batch."""
    have = getattr(_SCRATCH, "arrays", None)
    if have is None or have[0].shape[0] < n:
        size = max(n, 1)
        have = (np.empty(size, dtype=np.uint64), np.empty(size, dtype=np.int64),
                np.empty(size, dtype=np.uint8), np.empty(size, dtype=np.int64))
        _SCRATCH.arrays = have
    return have


class SortedPrefixIndex(SignalIndex):
    """Exact-match index: entries sorted, a filter and a bucket directory.

    A query row costs one random read of the filter (one 64-bit word holding three
    bits per entry, 8-16 bits per entry, so 1-3% of non-matching rows pass); a passing
    row costs one read of the directory (the start of its bucket of ~1-2 entries in
    the sorted values) instead of a binary search's ~log2(m) cache misses, then a
    comparison with the bucket's few entries. Memory: the values, 1-2 bytes per entry
    of filter, and ~2-4 bytes per entry of directory. Queries run in compiled kernels
    (datahygiene/kernels.py).
    """

    def __init__(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=np.uint8)
        self._order: np.ndarray | None = None
        # a single list arrives sorted and distinct (the kernel that checks it is loaded
        # already: the list's sort used it); several of one signal may repeat entries
        if kernels.rows_strictly_increasing(values) or kernels.rows_sorted(values):
            # sorted already: no copy, no sort
            self._values = values
        else:  # several lists of one signal, concatenated
            self._values, self._order = sort_rows_with_order(values)
        m = int(values.shape[0])
        self._m = m
        # A blocked Bloom filter: one 64-bit word per probe, three bits per entry, 8-16
        # bits per entry (~1-3% of non-matching rows pass). Measured on the benchmark:
        # the word fits the cache where a one-bit-per-probe bitmap of the same false-
        # positive rate (32-64 bits per entry) did not, and a probe missing the cache
        # cost 4-5 times one that hits it.
        wbits = int(min(46, max(1, int(np.ceil(np.log2(max(m, 1) / 6))))))
        self._wshift = np.uint64(64 - wbits)
        self._words = np.zeros(1 << wbits, dtype=np.uint64)
        dir_bits = int(min(28, max(8, int(np.ceil(np.log2(max(m, 1)))) - 1)))
        self._dshift = np.uint64(64 - dir_bits)
        self._dir = np.zeros((1 << dir_bits) + 1, dtype=np.int32 if m < 2**31 else np.int64)
        self._build(threads=2 if m >= 1_000_000 else 1)

    def _build(self, threads: int) -> None:
        """Fill the filter and the directory, in two halves on two threads for a large
        list: rows are sorted, so the halves' filter words and directory buckets are
        disjoint once the split falls between two words."""
        m, v = self._m, self._values
        nb = self._dir.shape[0]
        split = m // 2 if threads > 1 else m
        def key(i: int) -> int:  # in numpy, for a few rows: a kernel would be one more to load
            return int(prefix64(v[i : i + 1])[0])

        wshift, dshift = int(self._wshift), int(self._dshift)
        while 0 < split < m and key(split - 1) >> wshift == key(split) >> wshift:
            split += 1
        if split in (0, m):
            kernels.build_prefilter(v, self._words, self._wshift, self._dir, self._dshift, 0, m, 0, nb)
            return
        bsplit = (key(split) >> dshift) + 1
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda a: kernels.build_prefilter(v, self._words, self._wshift, self._dir,
                                                            self._dshift, *a),
                          [(0, split, 0, bsplit), (split, m, bsplit, nb)]))

    def __len__(self) -> int:
        return self._m

    def nbytes(self) -> int:
        return int(self._values.nbytes + self._words.nbytes + self._dir.nbytes
                   + (self._order.nbytes if self._order is not None else 0))

    def _matches(self, run: Any) -> Matches:
        """Call a match kernel (``run(out_rows, out_pos) -> count``), growing its
        outputs when a batch holds more matches than first guessed."""
        cap = 64
        while True:
            rows = np.empty(cap, dtype=np.int64)
            pos = np.empty(cap, dtype=np.int64)
            count = int(run(rows, pos))
            if count <= cap:
                break
            cap = count
        rows, pos = rows[:count], pos[:count]
        entries = pos if self._order is None else self._order[pos]
        return Matches(rows, entries, np.zeros(count, dtype=np.int32))

    def _args(self) -> tuple[Any, ...]:
        return (self._words, self._wshift, self._dir, self._dshift, self._values)

    def query(self, values: np.ndarray) -> Matches:
        return self.query_valid(values, np.ones(values.shape[0], dtype=bool))

    def query_valid(self, values: np.ndarray, valid: np.ndarray) -> Matches:
        """Matches of the rows of ``values`` where ``valid`` is set."""
        if self._m == 0 or values.shape[0] == 0:
            return Matches.empty()
        values = np.ascontiguousarray(values, dtype=np.uint8)
        valid = np.ascontiguousarray(valid, dtype=np.bool_)
        words, wshift, directory, dshift, entries = self._args()
        return self._matches(lambda rows, pos: kernels.match_rows(
            values, valid, words, wshift, directory, dshift, entries, rows, pos))

    def page_filter(self, hexed: bool, width: int) -> _PageFilter:
        """Which values of a parquet page the full check must see
        (:class:`datahygiene.parquet_pages.PageFilter`): all but the well-formed
        digests (hex text when ``hexed``, else raw bytes) that the filter says the list
        certainly lacks."""
        return _PageFilter(self, hexed, width)

    def query_hex(self, column: pa.Array, width: int) -> tuple[np.ndarray, Matches]:
        """Match a string column of hex digests in one pass (decode, validate, probe).

        Returns a status per row (``kernels.OK``, ``NULL_ROW``, or ``SLOW_ROW`` for a
        value that is not exactly ``2 * width`` hex digits: the caller parses those
        rows the general way) and the matches of the rows that were decoded."""
        n = len(column)
        status = np.zeros(n, dtype=np.uint8)
        data, offsets, validity = string_buffers(column)
        data16 = _as16(data)
        words, wshift, directory, dshift, entries = self._args()
        if self._m == 0:  # nothing to match: still tell nulls and malformed rows apart
            words = np.zeros(2, np.uint64)
            wshift, dshift = np.uint64(63), np.uint64(63)
            directory = np.zeros(3, np.int32)
        keys, cand, _, _ = _scratch(n)
        m = self._matches(lambda rows, pos: kernels.match_hex(
            data, data16, offsets, validity, column.offset, width, kernels.HEX_PAIRS, words, wshift,
            directory, dshift, entries, status, keys, cand, rows, pos))
        return status, m


class _PageFilter:
    """:meth:`SortedPrefixIndex.page_filter`: the filter's kernels over page values."""

    def __init__(self, index: SortedPrefixIndex, hexed: bool, width: int) -> None:
        self._hexed, self._width = hexed, width
        # (an empty list's filter is all zeros: it rules every digest out)
        self._words, self._wshift = index._words, index._wshift

    def spans(self, buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
        keys, out, bad, _ = _scratch(starts.shape[0])
        count = page_kernels.digest_candidates(
            buf, _as16(buf), starts, lens, self._hexed, self._width, kernels.HEX_PAIRS,
            self._words, self._wshift, bad, keys, out)
        return out[:count].copy()

    def plain(self, buf: np.ndarray, pos: int, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        keys, out, bad, starts = _scratch(count)
        kept = page_kernels.plain_digest_candidates(
            buf, _as16(buf), pos, buf.shape[0], count, self._hexed, self._width, kernels.HEX_PAIRS,
            self._words, self._wshift, bad, keys, starts, out)
        if kept < 0:
            return None
        keep = out[:kept].copy()
        return keep, starts[keep]


def _as16(buf: np.ndarray) -> np.ndarray:
    return buf[: buf.shape[0] // 2 * 2].view(np.uint16)


def match_fixed_column(column: pa.Array | pa.ChunkedArray, width: int,
                       index: SignalIndex) -> ColumnMatch | None:
    """Normalise and match a column of fixed-width digests (hex text or binary)
    against a :class:`SortedPrefixIndex` in one pass.

    Hex text goes through the fused kernel; the rare rows it cannot decode as they
    stand (surrounding whitespace, wrong length, a non-hex character) are parsed by
    :func:`normalize_fixed`, which decides them exactly as it would in a full column."""
    if not isinstance(index, SortedPrefixIndex):
        return None
    arr = as_array(column)
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        status, m = index.query_hex(arr, width)
        if not status.any():
            return ColumnMatch(np.zeros(0, np.int64), np.zeros(0, object), m)
        bad = [np.flatnonzero(status == kernels.NULL_ROW)]
        reasons = [np.full(bad[0].shape[0], NULL, dtype=object)]
        slow = np.flatnonzero(status == kernels.SLOW_ROW)
        if slow.size:
            norm = normalize_fixed(arr.take(pa.array(slow)), width)
            if norm.valid.any():
                more = index.query_valid(norm.values, norm.valid)
                m = Matches(np.concatenate([m.query, slow[more.query]]),
                            np.concatenate([m.entry, more.entry]),
                            np.concatenate([m.distance, more.distance]))
            bad.append(slow[~norm.valid])
            reasons.append(np.asarray(norm.reasons, dtype=object)[~norm.valid])
        rows, why = np.concatenate(bad), np.concatenate(reasons)
        order = np.argsort(rows, kind="stable")
        return ColumnMatch(rows[order], why[order], m)
    if pa.types.is_fixed_size_binary(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        norm = normalize_fixed(arr, width)
        bad_rows = np.flatnonzero(~norm.valid)
        return ColumnMatch(bad_rows, np.asarray(norm.reasons, dtype=object)[bad_rows],
                           index.query_valid(norm.values, norm.valid))
    return None


class ExactDigest(SignalType, BytesHasher):
    """A cryptographic digest compared by equality."""

    algorithm: ClassVar[str]
    hex_entries = True
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}  # none

    def normalize(self, column: pa.Array | pa.ChunkedArray) -> Normalized:
        return normalize_fixed(column, self.width)

    def match_column(self, column: pa.Array | pa.ChunkedArray,
                     index: SignalIndex) -> ColumnMatch | None:
        return match_fixed_column(column, self.width, index)

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
