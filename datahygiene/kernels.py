"""Compiled kernels for the loops that decide a scan's speed.

* :func:`parse_hex_lines` -- a plain-text list of hex digests into canonical bytes,
  one pass over the file's bytes (pieces of the file on several threads);
* :func:`sort_bucket_range` -- a stable lexicographic sort of fixed-width byte rows:
  a counting pass into buckets on the leading bits, small sorts inside the buckets
  (linear for digests), disjoint bucket ranges on several threads;
* :func:`build_prefilter` -- the index's bitmap and bucket directory;
* :func:`match_hex` / :func:`match_rows` -- exact matching of a column against the
  index: hex validation, decoding, the bitmap prefilter and the comparison over the
  column's own bytes, with no per-row intermediate materialised.

Written with numba (``nogil``: the local engine's threads run them in parallel;
``cache``: compiled once per installation -- ``python -m datahygiene.kernels`` --
then loaded in milliseconds). Each kernel decides exactly what the numpy code it
replaced decided, in the same order; tests/test_kernels.py compares them on the same
inputs. Kernels see values only as bytes: they never format, log or raise with one.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"nogil": True, "cache": True}

# Status codes per row, returned by the match kernels.
OK, NULL_ROW, SLOW_ROW = 0, 1, 2


def _pair_table() -> np.ndarray:
    """Lookup table from two ASCII hex characters (read as one little-endian uint16)
    to the byte they spell, or a value >= 256 when either character is not hex.

    Decoding two characters per lookup halves the work of a per-character table
    (measured 2-3x faster on MD5 columns); the table is 128 KiB, so it stays in cache."""
    digit = np.full(256, -1, dtype=np.int32)
    for i, c in enumerate(b"0123456789abcdef"):
        digit[c] = i
    for i, c in enumerate(b"ABCDEF"):
        digit[c] = 10 + i
    pairs = np.arange(65536)
    first, second = digit[pairs & 0xFF], digit[pairs >> 8]
    ok = (first >= 0) & (second >= 0)
    table = np.full(65536, 0xFF00, dtype=np.uint16)
    table[ok] = (first[ok] << 4) | second[ok]
    return table


HEX_PAIRS = _pair_table()


@numba.njit(**_JIT)
def _blank(c: int) -> bool:
    # ASCII space, tab, CR, vertical tab, form feed. Anything else outside hex sends
    # the file to the general parser, which knows Unicode whitespace.
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


@numba.njit(**_JIT)
def parse_hex_lines(buf, width, pairs, values, line_no):
    """Parse lines of ``buf`` (uint8) holding one hex digest of ``width`` bytes each,
    ``#`` comments and blank lines. Writes entries to ``values`` ((cap, width) uint8)
    and their 1-based line numbers to ``line_no``.

    Returns ``(entries, lines, bad)``: ``bad`` is the 0-based index of the first line
    that is not blank, a comment or exactly one digest (parsing stops there; the
    caller hands the file to the general parser, which names the fault), else -1.
    ``values`` needs ``len(buf) // (2 * width + 1) + 1`` rows: every entry line holds
    its digits and, except the last, a newline."""
    n = buf.shape[0]
    w2 = 2 * width
    i = 0
    line = 0
    k = 0
    while i < n:
        end = i + w2
        if end <= n and (end == n or buf[end] == 10):
            # the usual line: exactly one digest, then the newline
            bad = 0
            for b in range(width):
                v = pairs[np.int64(buf[i + 2 * b]) | (np.int64(buf[i + 2 * b + 1]) << 8)]
                bad |= v
                values[k, b] = v & 255
            if bad < 256:
                line_no[k] = line + 1
                k += 1
                line += 1
                i = end + 1
                continue
        j = i
        while j < n and buf[j] != 10:
            j += 1
        s = i
        e = i
        while e < j and buf[e] != 35:  # '#': the rest of the line is a comment
            e += 1
        while s < e and _blank(buf[s]):
            s += 1
        while e > s and _blank(buf[e - 1]):
            e -= 1
        if e > s:
            if e - s != w2:
                return k, line, line
            for b in range(width):
                v = pairs[np.int64(buf[s + 2 * b]) | (np.int64(buf[s + 2 * b + 1]) << 8)]
                if v > 255:
                    return k, line, line
                values[k, b] = v & 255
            k += 1
            line_no[k - 1] = line + 1
        line += 1
        i = j + 1
    return k, line, -1


@numba.njit(**_JIT)
def _key(values, i):
    """Row ``i``'s first 8 bytes as a big-endian uint64 (zero-padded)."""
    hi = np.uint64(0)
    w = values.shape[1]
    for c in range(8):
        hi = (hi << np.uint64(8)) | np.uint64(values[i, c] if c < w else 0)
    return hi


@numba.njit(**_JIT)
def row_keys(values, keys):
    """Each row's first 8 bytes as a big-endian uint64 (zero-padded), into ``keys``."""
    for i in range(values.shape[0]):
        keys[i] = _key(values, i)


@numba.njit(**_JIT)
def bucket_starts(keys, bits):
    """First stage of :func:`sort_bucket_range`: where each bucket of the sorted rows
    starts, a bucket being the top ``bits`` bits of a row's 8-byte key."""
    shift = np.uint64(64 - bits)
    starts = np.zeros((1 << bits) + 1, dtype=np.int64)
    for i in range(keys.shape[0]):
        starts[np.int64(keys[i] >> shift) + 1] += 1
    for b in range(1 << bits):
        starts[b + 1] += starts[b]
    return starts


@numba.njit(**_JIT)
def _tail_after(values, a, b):
    """Row ``a`` sorts after row ``b`` on the bytes after the 8-byte key?"""
    for c in range(8, values.shape[1]):
        if values[a, c] != values[b, c]:
            return values[a, c] > values[b, c]
    return False


@numba.njit(**_JIT)
def sort_bucket_range(values, row_keys, bits, starts, b0, b1, out, order, keys):
    """Sort the rows of ``values`` (8-byte keys ``row_keys``) whose bucket is in
    ``[b0, b1)`` into ``out`` (the rows) and ``order`` (their input positions), at
    their final sorted places; ``keys`` is scratch of one uint64 per row. Threads given disjoint bucket ranges
    write disjoint parts of the outputs, so one sort runs on every core.

    A counting-sort pass places (key, position) pairs in buckets of ~16 (digests are
    uniform), in input order; each bucket is insertion-sorted on the keys, comparing
    the rest of the rows only where keys are equal; a large bucket (clustered
    values) is merge-sorted on its keys first. Every step is stable, so equal rows
    keep their input order and de-duplication keeps the first occurrence. The rows
    themselves move once, at the end."""
    shift = np.uint64(64 - bits)
    w = values.shape[1]
    fill = starts[b0:b1].copy()
    for i in range(values.shape[0]):
        key = row_keys[i]
        b = np.int64(key >> shift)
        if b < b0 or b >= b1:
            continue
        p = fill[b - b0]
        fill[b - b0] = p + 1
        order[p] = i
        keys[p] = key
    for b in range(b0, b1):
        lo = starts[b]
        hi = starts[b + 1]
        if hi - lo > 64:
            perm = np.argsort(keys[lo:hi], kind="mergesort")
            keys[lo:hi] = keys[lo:hi][perm]
            order[lo:hi] = order[lo:hi][perm]
        for i in range(lo + 1, hi):
            xk = keys[i]
            xo = order[i]
            j = i - 1
            while j >= lo and (keys[j] > xk or (keys[j] == xk and _tail_after(values, order[j], xo))):
                keys[j + 1] = keys[j]
                order[j + 1] = order[j]
                j -= 1
            keys[j + 1] = xk
            order[j + 1] = xo
    # the rows move once, 8 bytes at a time where the width allows
    if w % 8 == 0:
        src = values.view(np.uint64)
        dst = out.view(np.uint64)
        for p in range(starts[b0], starts[b1]):
            r = order[p]
            for c in range(w // 8):
                dst[p, c] = src[r, c]
    else:
        for p in range(starts[b0], starts[b1]):
            r = order[p]
            for c in range(w):
                out[p, c] = values[r, c]


@numba.njit(**_JIT)
def rows_sorted(values):
    """Whether the rows' 8-byte keys are in non-decreasing order."""
    for i in range(1, values.shape[0]):  # noqa: SIM110 - a loop numba compiles
        if _key(values, i) < _key(values, i - 1):
            return False
    return True


@numba.njit(**_JIT)
def rows_strictly_increasing(values):
    """Whether every row is greater than the one before (full-width byte order): the
    rows are sorted and unique already, as a list written in order is."""
    n, w = values.shape
    for i in range(1, n):
        for c in range(w):
            if values[i, c] != values[i - 1, c]:
                if values[i, c] < values[i - 1, c]:
                    return False
                break
        else:
            return False  # equal rows
    return True


@numba.njit(**_JIT)
def compact_rows(values, lines, starts, counts):
    """Move the pieces ``values[starts[j] : starts[j] + counts[j]]`` (and ``lines``)
    forward so they follow each other from row 0; return the total. In place:
    pieces are in order and every piece moves towards the start."""
    dst = 0
    for j in range(starts.shape[0]):
        src = starts[j]
        if src != dst:
            for r in range(counts[j]):
                for c in range(values.shape[1]):
                    values[dst + r, c] = values[src + r, c]
                lines[dst + r] = lines[src + r]
        dst += counts[j]
    return dst


@numba.njit(**_JIT)
def build_prefilter(values, bitmap, shift, directory, dshift):
    """Fill the bitmap (one bit per value of ``key >> shift``) and the bucket
    directory (``directory[b]``: the first row whose ``key >> dshift`` is at least
    ``b``) from sorted rows, ``key`` being a row's first 8 bytes."""
    m = values.shape[0]
    for i in range(m):
        key = _key(values, i) >> shift
        bitmap[np.int64(key >> np.uint64(3))] |= np.uint8(1) << np.uint8(key & np.uint64(7))
    nb = directory.shape[0] - 1
    p = 0
    for b in range(nb + 1):
        while p < m and np.int64(_key(values, p) >> dshift) < b:
            p += 1
        directory[b] = p


@numba.njit(**_JIT)
def _probe(q, hi, row, directory, dshift, values, out_rows, out_pos, count):
    """Append (row, position) for every index entry equal to ``q`` (whose first 8
    bytes are ``hi``), looking only in its directory bucket; return the new count
    (which may exceed the outputs' size)."""
    b = np.int64(hi >> dshift)
    w = values.shape[1]
    for p in range(directory[b], directory[b + 1]):
        same = True
        for c in range(w):
            if values[p, c] != q[c]:
                same = False
                break
        if same:
            if count < out_rows.shape[0]:
                out_rows[count] = row
                out_pos[count] = p
            count += 1
    return count


@numba.njit(**_JIT)
def _hex_key(data, s, width, pairs):
    """Validate the ``2 * width`` hex digits at byte ``s``; return (ok, first 8 bytes
    as a big-endian uint64). The general case: any width, any alignment."""
    bad = 0
    hi = np.uint64(0)
    for b in range(width):
        v = pairs[np.int64(data[s + 2 * b]) | (np.int64(data[s + 2 * b + 1]) << 8)]
        bad |= v
        if b < 8:
            hi = (hi << np.uint64(8)) | np.uint64(v & 255)
    if width < 8:
        hi = hi << np.uint64(8 * (8 - width))
    return bad < 256, hi


@numba.njit(**_JIT)
def match_hex(data, data16, offsets, validity, vbase, width, pairs, bitmap, shift, directory,
              dshift, values, status, keys, cand, out_rows, out_pos):
    """Match a string column of hex digests (Arrow layout: ``offsets``, ``data`` --
    also given as ``data16``, the same bytes as uint16 -- and the ``validity`` bitmap
    starting at bit ``vbase``; empty when there are no nulls).

    Per row: a null gets status NULL_ROW; a value that is not exactly ``2 * width``
    hex digits gets SLOW_ROW (the caller re-reads those few rows with the general
    parser, which trims whitespace and names the fault); a digest is decoded and
    probed. ``keys`` (uint64) and ``cand`` (int64) are scratch space of at least n
    rows (reused across calls: fresh memory costs page faults). Returns the number of
    matches (if above ``len(out_rows)``, call again with larger outputs).

    Three passes rather than one: decoding is compute-bound and the bitmap probe is
    bound by memory latency, and a loop doing only the probes keeps many cache misses
    in flight at once (measured about 2.5x faster than probing inside the decoding
    loop on the benchmark's MD5 column)."""
    n = offsets.shape[0] - 1
    w2 = 2 * width
    has_validity = validity.shape[0] > 0
    # 1: validate every character (fail closed), keep the first 8 bytes as a key.
    # The usual row inline: two characters per 16-bit load and table lookup.
    odd = 0
    for i in range(n):
        if has_validity:
            bit = vbase + i
            if (validity[bit >> 3] >> (bit & 7)) & 1 == 0:
                status[i] = 1
                continue
        s = offsets[i]
        if offsets[i + 1] - s != w2:
            status[i] = 2
            continue
        if s & 1 or width < 8:
            status[i] = 3
            odd += 1
            continue
        s2 = s >> 1
        bad = 0
        hi = np.uint64(0)
        for b in range(8):
            v = pairs[data16[s2 + b]]
            bad |= v
            hi = (hi << np.uint64(8)) | np.uint64(v & 255)
        for b in range(8, width):
            bad |= pairs[data16[s2 + b]]
        if bad > 255:
            status[i] = 2
            continue
        keys[i] = hi
    if odd:  # digests at odd byte offsets (after a value of odd length), or narrow ones
        for i in range(n):
            if status[i] == 3:
                ok, hi = _hex_key(data, offsets[i], width, pairs)
                status[i] = 0 if ok else 2
                keys[i] = hi
    # 2: the bitmap prefilter, a tight loop of independent loads
    nc = 0
    for i in range(n):
        key = keys[i] >> shift  # (rows with a status hold garbage keys: masked below)
        hit = (bitmap[np.int64(key >> np.uint64(3))] >> np.uint8(key & np.uint64(7))) & 1
        cand[nc] = i
        nc += np.int64(hit) & np.int64(status[i] == 0)
    # 3: the few candidates: decode in full, compare with their bucket's entries
    q = np.empty(width, dtype=np.uint8)
    count = 0
    for c in range(nc):
        i = cand[c]
        s = offsets[i]
        for b in range(width):
            q[b] = pairs[np.int64(data[s + 2 * b]) | (np.int64(data[s + 2 * b + 1]) << 8)] & 255
        # (no second bitmap test: the row passed it in pass 2, and its cache line is
        # long gone by now -- re-reading it cost a miss per candidate)
        count = _probe(q, keys[i], i, directory, dshift, values, out_rows, out_pos, count)
    return count


@numba.njit(**_JIT)
def match_rows(query, valid, bitmap, shift, directory, dshift, values, out_rows, out_pos):
    """Match canonical rows (``query``: (n, w) uint8) where ``valid`` is set."""
    n, width = query.shape
    count = 0
    for i in range(n):
        if not valid[i]:
            continue
        hi = np.uint64(0)
        for b in range(8):
            hi = (hi << np.uint64(8)) | np.uint64(query[i, b] if b < width else 0)
        key = hi >> shift
        if (bitmap[np.int64(key >> np.uint64(3))] >> np.uint8(key & np.uint64(7))) & 1:
            count = _probe(query[i], hi, i, directory, dshift, values, out_rows, out_pos, count)
    return count


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel for the argument types a scan
    uses, so the first scan does not pause for compilation (several seconds, once per
    installation). ``make env`` runs this; ``python -m datahygiene.kernels`` too."""
    values = np.zeros((4, 16), dtype=np.uint8)
    text = np.frombuffer(b"00000000000000000000000000000000\n", dtype=np.uint8)
    for lines in (np.zeros(2, np.int32), np.zeros(2, np.int64)):
        parse_hex_lines(text, 16, HEX_PAIRS, np.zeros((2, 16), np.uint8), lines)
        compact_rows(values, lines[:1].repeat(4), np.zeros(1, np.int64), np.ones(1, np.int64))
    keys = np.zeros(4, np.uint64)
    row_keys(values, keys)
    starts = bucket_starts(keys, 1)
    sort_bucket_range(values, keys, 1, starts, 0, 2, values.copy(), np.zeros(4, np.int64), keys.copy())
    rows_sorted(values)
    rows_strictly_increasing(values)
    bitmap = np.zeros(8, np.uint8)
    for directory in (np.zeros(3, np.int32), np.zeros(3, np.int64)):
        build_prefilter(values, bitmap, np.uint64(58), directory, np.uint64(63))
        out = np.zeros(4, np.int64)
        match_rows(values, np.ones(4, np.bool_), bitmap, np.uint64(58), directory, np.uint64(63),
                   values, out, out.copy())
        data = np.zeros(64, np.uint8)
        for offsets in (np.array([0, 32], np.int32), np.array([0, 32], np.int64)):
            match_hex(data, data.view(np.uint16), offsets, np.zeros(0, np.uint8), 0, 16, HEX_PAIRS,
                      bitmap, np.uint64(58), directory, np.uint64(63), values, np.zeros(1, np.uint8),
                      keys, out, out, out.copy())


if __name__ == "__main__":
    warm_up()
