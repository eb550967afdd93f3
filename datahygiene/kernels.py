"""Compiled kernels for the loops that decide a scan's speed.

* :func:`parse_hex_lines` -- a plain-text list of hex digests into canonical bytes,
  one pass over the file's bytes (pieces of the file on several threads);
* :func:`radix_scatter` / :func:`sort_buckets` -- a stable lexicographic sort of fixed-width byte rows:
  a counting pass into buckets on the leading bits, small sorts inside the buckets
  (linear for digests), disjoint bucket ranges on several threads;
* :func:`build_prefilter` -- the index's filter (blocked Bloom) and bucket directory;
* :func:`match_hex` / :func:`match_rows` -- exact matching of a column against the
  index: hex validation, decoding, the filter and the comparison over the
  column's own bytes, with no per-row intermediate materialised.

Written with numba (``nogil``: the local engine's threads run them in parallel;
``cache``: compiled once per installation -- ``python -m datahygiene.kernels`` --
then loaded in milliseconds). Each kernel decides exactly what the numpy code it
replaced decided, in the same order; tests/test_kernels.py compares them on the same
inputs. Kernels see values only as bytes: they never format, log or raise with one.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_JIT: dict[str, Any] = {"nogil": True, "cache": True}
# How many rows ahead the filter loops ask for their filter word (see prefetch).
# Measured on the filter pass alone (2026-12-07, the benchmark's 5M-entry filter,
# real keys, medians of five): one thread 6.6 ns a row at 16 rows ahead, 4.6 at 32,
# 4.0 at 64, 3.9 at 128, 16 with none; two threads at once 5.5, 4.9, 4.9 and 5.1. (An
# earlier measurement, with the probe inside the decoding loop, favoured 16.)
PREFETCH_AHEAD = 64


@intrinsic
def prefetch(typingctx: Any, arr: Any, i: Any) -> Any:
    """Ask the CPU to start loading ``arr[i]``'s cache line now (LLVM's prefetch:
    for reading, kept in all cache levels). A hint only: it changes no result, and an
    index past the end reads nothing. The filter loops use it for the word of a row
    a few rows ahead: the filter (megabytes) is mostly out of cache, and the loads of
    a plain loop overlapped too little to hide memory's latency (measured: 22-24 ns
    per row with the filter out of cache, 10 ns with the prefetch)."""
    sig = types.void(arr, i)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array = context.make_array(signature.args[0])(context, builder, args[0])
        byte_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", [byte_ptr], ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]))
        address = builder.bitcast(builder.gep(array.data, [args[1]]), byte_ptr)
        # read (0), highest locality (3), data cache (1)
        builder.call(fn, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


def _unaligned_load(bits: int) -> Any:
    """An intrinsic loading the ``bits // 8`` bytes that start at element ``i`` of
    ``arr`` (any element type) as one unsigned integer in the CPU's byte order: one
    unaligned load. The caller keeps those bytes inside the array: nothing is checked."""
    result = types.uint64 if bits == 64 else types.uint32

    def load(typingctx: Any, arr: Any, i: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            array = context.make_array(signature.args[0])(context, builder, args[0])
            word = builder.bitcast(builder.gep(array.data, [args[1]]), ir.IntType(bits).as_pointer())
            return builder.load(word, align=1)

        return result(arr, i), codegen

    return intrinsic(load)


load_u64 = _unaligned_load(64)
load_u32 = _unaligned_load(32)


@intrinsic
def bswap64(typingctx: Any, x: Any) -> Any:
    """``x`` with its bytes in reverse order (one instruction)."""
    sig = types.uint64(x)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fn = builder.module.declare_intrinsic("llvm.bswap", [ir.IntType(64)])
        return builder.call(fn, [args[0]])

    return sig, codegen


# Hex text eight characters at a time, in one machine word ("SWAR": each byte of the
# word a lane). Where words load least significant byte first (x86-64, AArch64 and
# POWER little-endian: every platform numba builds for), the kernels below use it;
# elsewhere they would take the pair table (HEX_PAIRS) as before. Measured on the
# benchmark's MD5 pages (2026-12-07, tenth session, one thread): 3.2 against 12.6 ns a
# row to validate a value and take its key; a text list's lines, 11 against 18 ns.
LITTLE_ENDIAN = sys.byteorder == "little"
_HIGH = np.uint64(0x8080808080808080)
_ONES = np.uint64(0x0101010101010101)


@numba.njit(inline="always", **_JIT)
def _at_least(v, k):
    """Per byte of ``v`` (each below 0x80): 0x80 where the byte is >= ``k`` (< 0x80),
    else 0. Each byte's subtraction starts from 0x80 or more and takes at most 0x7F, so
    no borrow crosses into the next byte."""
    return ((v | _HIGH) - _ONES * np.uint64(k)) & _HIGH


@numba.njit(inline="always", **_JIT)
def hex_word_bad(x):
    """0 when all eight characters of the word ``x`` are hex digits (0-9, a-f, A-F),
    else not 0."""
    v = x & ~_HIGH
    digit = _at_least(v, 0x30) & ~_at_least(v, 0x3A)
    lower = v | np.uint64(0x2020202020202020)  # a-f and A-F alike
    letter = _at_least(lower, 0x61) & ~_at_least(lower, 0x67)
    return (x & _HIGH) | ((digit | letter) ^ _HIGH)


@numba.njit(inline="always", **_JIT)
def hex_word_bytes(x):
    """The four bytes the eight hex digits of the word ``x`` spell, in a word's low 32
    bits in the word's byte order (the first two digits' byte lowest). Defined for hex
    digits only (:func:`hex_word_bad`)."""
    # a digit's low nibble is its value; a letter's (either case) is its value - 9, and
    # only letters have the 0x40 bit
    n = (x & np.uint64(0x0F0F0F0F0F0F0F0F)) + np.uint64(9) * ((x >> np.uint64(6)) & _ONES)
    t = ((n << np.uint64(4)) | (n >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    t = (t | (t >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    return (t | (t >> np.uint64(16))) & np.uint64(0xFFFFFFFF)


@numba.njit(inline="always", **_JIT)
def words_fit(width):
    """Whether :func:`hex_key_words` takes digests of ``width`` bytes here."""
    return LITTLE_ENDIAN and width >= 8 and width % 4 == 0


@numba.njit(inline="always", **_JIT)
def hex_key_words(buf, s, width):
    """Validate the ``2 * width`` hex digits (see :func:`words_fit`) at byte ``s`` of
    ``buf`` (uint8; any alignment): (not a digest, first 8 bytes as a big-endian
    uint64). (Loading the words through a uint16 view of the same bytes measured 2.5
    times slower.)"""
    w0 = load_u64(buf, s)
    w1 = load_u64(buf, s + 8)
    bad = hex_word_bad(w0) | hex_word_bad(w1)
    for j in range(2, width // 4):
        bad |= hex_word_bad(load_u64(buf, s + 8 * j))
    return bad != 0, bswap64(hex_word_bytes(w0) | (hex_word_bytes(w1) << np.uint64(32)))

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
    words = w2 // 8 if LITTLE_ENDIAN and w2 % 8 == 0 else 0
    out32 = values.view(np.uint32) if words else np.empty((0, 1), np.uint32)
    while i < n:
        end = i + w2
        if end <= n and (end == n or buf[end] == 10):
            # the usual line: exactly one digest, then the newline
            bad = 0
            if words:  # eight digits a word (see hex_word_bytes)
                for j in range(words):
                    x = load_u64(buf, i + 8 * j)
                    bad |= hex_word_bad(x)
                    out32[k, j] = np.uint32(hex_word_bytes(x))
                bad = 256 if bad else 0
            else:
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
def decode_hex_matrix(chars16, pairs, out, ok):
    """Rows of ``2 * w`` ASCII characters (given as ``(k, w)`` uint16: two characters
    per element) into ``(k, w)`` bytes; ``ok[i]`` is whether row i was all hex."""
    k, w = chars16.shape
    for i in range(k):
        bad = 0
        for b in range(w):
            v = pairs[chars16[i, b]]
            bad |= v
            out[i, b] = v & 255
        ok[i] = bad < 256


@numba.njit(inline="always", **_JIT)
def _key(values, i):
    """Row ``i``'s first 8 bytes as a big-endian uint64 (zero-padded).

    Spelled out for rows of 8 bytes or more, which the compiler turns into one load and
    a byte swap: the loop with its width test was 8 loads, 2 ns a row more (the list
    index's filter pass over 5M MD5 entries: 14 against 22 ms)."""
    if values.shape[1] >= 8:
        r = values[i]
        return ((np.uint64(r[0]) << np.uint64(56)) | (np.uint64(r[1]) << np.uint64(48))
                | (np.uint64(r[2]) << np.uint64(40)) | (np.uint64(r[3]) << np.uint64(32))
                | (np.uint64(r[4]) << np.uint64(24)) | (np.uint64(r[5]) << np.uint64(16))
                | (np.uint64(r[6]) << np.uint64(8)) | np.uint64(r[7]))
    hi = np.uint64(0)
    w = values.shape[1]
    for c in range(8):
        hi = (hi << np.uint64(8)) | np.uint64(values[i, c] if c < w else 0)
    return hi


@numba.njit(**_JIT)
def radix_counts(values, lo, hi, bits):
    """How many of rows ``lo..hi`` fall in each bucket of their 8-byte key's top ``bits``
    bits."""
    shift = np.uint64(64 - bits)
    counts = np.zeros(1 << bits, dtype=np.int64)
    for i in range(lo, hi):
        counts[np.int64(_key(values, i) >> shift)] += 1
    return counts


@numba.njit(**_JIT)
def radix_scatter(values, lo, hi, bits, fill, out, order, carry):
    """Copy rows ``lo..hi`` to ``out[fill[bucket]]`` (advancing it), and their
    positions -- or, when ``carry`` is not empty, their ``carry`` values -- to
    ``order``: a stable counting-sort pass on the top ``bits`` bits. The rows move
    here, in input order, rather than after the sort: a final gather by position would
    read the input at random, a cache miss per row. Threads given disjoint input
    ranges and disjoint ``fill`` regions write disjoint parts of the outputs."""
    shift = np.uint64(64 - bits)
    w = values.shape[1]
    carried = carry.shape[0] > 0
    if w % 8 == 0:
        src = values.view(np.uint64)
        dst = out.view(np.uint64)
        for i in range(lo, hi):
            b = np.int64(_key(values, i) >> shift)
            p = fill[b]
            fill[b] = p + 1
            for c in range(w // 8):
                dst[p, c] = src[i, c]
            order[p] = carry[i] if carried else i
    else:
        for i in range(lo, hi):
            b = np.int64(_key(values, i) >> shift)
            p = fill[b]
            fill[b] = p + 1
            for c in range(w):
                out[p, c] = values[i, c]
            order[p] = carry[i] if carried else i


@numba.njit(**_JIT)
def _tail_after(values, a, b):
    """Row ``a`` sorts after row ``b`` on the bytes after the 8-byte key?"""
    for c in range(8, values.shape[1]):
        if values[a, c] != values[b, c]:
            return values[a, c] > values[b, c]
    return False


@numba.njit(**_JIT)
def _insertion_sort(values, keys, order, lo, hi):
    """Stable insertion sort of ``keys[lo:hi]`` (and ``order``) on (key, rest of the row)."""
    if hi - lo > 64:  # a large run of close keys (clustered values): merge-sort the keys first
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


@numba.njit(inline="always", **_JIT)
def _mark_first(rows, lo, m, words, first):
    """``first[lo + j]``: whether sorted row ``lo + j`` differs from the row before it
    (the bucket's first row always does)."""
    first[lo] = 1
    if words:
        src = rows.view(np.uint64)
        for j in range(lo + 1, lo + m):
            same = True
            for c in range(words):
                same &= src[j, c] == src[j - 1, c]
            first[j] = not same
    else:
        for j in range(lo + 1, lo + m):
            same = True
            for c in range(rows.shape[1]):
                same &= rows[j, c] == rows[j - 1, c]
            first[j] = not same


@numba.njit(**_JIT)
def sort_buckets(rows, bits, starts, b0, b1, order, first):
    """Second stage of the list sort: sort, in place, the buckets ``[b0, b1)`` of the
    first pass (rows grouped by their top ``bits`` bits, bucket ``b`` at
    ``starts[b]:starts[b + 1]``, each in input order), moving ``order`` with the rows.

    Each bucket's keys are taken into a local array; a bucket of more than a few rows
    gets a second stable counting pass on the next bits, sized for ~4 rows per
    sub-bucket, which leaves small runs for an insertion sort; then the bucket's rows
    are put in that order. A bucket is a few kilobytes, so all of this stays in cache.
    Threads given disjoint bucket ranges write disjoint parts of the outputs.

    ``first`` (uint8, one per row, or empty): set to whether each sorted row differs
    from the one before it, so that de-duplication needs no pass of its own. Rows of
    different buckets differ in their top bits, so each bucket decides its own."""
    w = rows.shape[1]
    biggest = 0
    for b in range(b0, b1):
        biggest = max(biggest, starts[b + 1] - starts[b])
    lk = np.empty(biggest, dtype=np.uint64)  # the bucket's keys, in bucket order
    tk = np.empty(biggest, dtype=np.uint64)  # the same keys, being sorted
    tp = np.empty(biggest, dtype=np.int64)  # and the bucket position of each
    cnt = np.empty((1 << 16) + 1, dtype=np.int64)  # the sub-bucket counts, reused
    # rows move a machine word at a time where the width allows (MD5, SHA-256): 0.09
    # against 0.15 s for the benchmark's 5M MD5 entries on one thread, copying rows
    # as slices
    words = w // 8 if w % 8 == 0 else 0
    moved_words = np.empty((biggest if words else 0, words), dtype=np.uint64)
    moved = np.empty((0 if words else biggest, w), dtype=np.uint8)
    moved_order = np.empty(biggest, dtype=order.dtype)
    flag = first.shape[0] > 0
    for b in range(b0, b1):
        lo = starts[b]
        hi = starts[b + 1]
        m = hi - lo
        if m == 1 and flag:
            first[lo] = 1
        if m <= 1:
            continue
        part = rows[lo:hi]
        for j in range(m):
            lk[j] = _key(part, j)
        if m <= 16:
            for j in range(m):
                tk[j] = lk[j]
                tp[j] = j
            _insertion_sort(part, tk, tp, 0, m)
        else:
            b2 = 1
            while b2 < 16 and (np.int64(1) << b2) < m:
                b2 += 1
            shift2 = np.uint64(64 - bits - b2)
            mask = np.uint64((1 << b2) - 1)
            subs = np.int64(1) << b2
            cnt[: subs + 1] = 0
            for j in range(m):
                cnt[np.int64((lk[j] >> shift2) & mask) + 1] += 1
            for s in range(subs):
                cnt[s + 1] += cnt[s]
            for j in range(m):
                s = np.int64((lk[j] >> shift2) & mask)
                p = cnt[s]
                cnt[s] = p + 1
                tk[p] = lk[j]
                tp[p] = j
            s0 = 0
            for s in range(subs):  # cnt[s] is now where sub-bucket s ends
                if cnt[s] - s0 > 1:
                    _insertion_sort(part, tk, tp, s0, cnt[s])
                s0 = cnt[s]
        moved_any = False
        for j in range(m):
            if tp[j] != j:
                moved_any = True
                break
        if not moved_any:  # in order already
            if flag:
                _mark_first(rows, lo, m, words, first)
            continue
        if words:
            src = rows.view(np.uint64)
            for j in range(m):
                at = lo + tp[j]
                for c in range(words):
                    moved_words[j, c] = src[at, c]
                moved_order[j] = order[at]
            for j in range(m):
                for c in range(words):
                    src[lo + j, c] = moved_words[j, c]
                order[lo + j] = moved_order[j]
        else:
            for j in range(m):
                for c in range(w):
                    moved[j, c] = part[tp[j], c]
                moved_order[j] = order[lo + tp[j]]
            for j in range(m):
                for c in range(w):
                    part[j, c] = moved[j, c]
                order[lo + j] = moved_order[j]
        if flag:
            _mark_first(rows, lo, m, words, first)


@numba.njit(**_JIT)
def rows_sorted(values):
    """Whether the rows' 8-byte keys are in non-decreasing order."""
    prev = _key(values, 0) if values.shape[0] else np.uint64(0)
    for i in range(1, values.shape[0]):
        key = _key(values, i)
        if key < prev:
            return False
        prev = key
    return True


@numba.njit(**_JIT)
def rows_strictly_increasing(values):
    """Whether every row is greater than the one before (full-width byte order): the
    rows are sorted and unique already, as a list written in order is.

    Rows of 8 bytes or more are compared by their 8-byte keys first, the bytes after
    only where the keys are equal: sorted digests share their first 2-3 bytes with the
    row before, which a byte-by-byte comparison walked (5M MD5 entries: 5 against 16
    ms)."""
    n, w = values.shape
    keyed = w >= 8 and n > 0
    prev = _key(values, 0) if keyed else np.uint64(0)
    for i in range(1, n):
        first = 0
        if keyed:
            key = _key(values, i)
            if key != prev:
                if key < prev:
                    return False
                prev = key
                continue
            first = 8
        for c in range(first, w):
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
def _filter_mask(key, wshift):
    """The three bits a key sets in its filter word: three 6-bit fields of the key
    below the bits that choose the word (``wshift`` >= 18)."""
    one = np.uint64(1)
    six = np.uint64(63)
    return ((one << ((key >> (wshift - np.uint64(6))) & six))
            | (one << ((key >> (wshift - np.uint64(12))) & six))
            | (one << ((key >> (wshift - np.uint64(18))) & six)))


@numba.njit(**_JIT)
def build_prefilter(values, words, wshift, directory, dshift, r0, r1, b0, b1):
    """Fill the filter (a blocked Bloom filter: ``words[key >> wshift]`` holds three
    bits per entry, see :func:`_filter_mask`) from sorted rows ``r0..r1``, and the
    bucket directory (``directory[b]``: the first row whose ``key >> dshift`` is at
    least ``b``) for ``b0 <= b < b1``; ``key`` is a row's first 8 bytes. ``directory``
    must be zero on entry. Threads given row ranges whose filter words do not overlap,
    and the matching bucket ranges (:class:`datahygiene.signals.exact.SortedPrefixIndex`
    splits them: the bucket of a range's first row is the first bucket of its range or
    the last of the range before), write disjoint parts."""
    # One pass over the rows, each key read once: the filter's bits, and a count of the
    # rows in each bucket (at ``directory[bucket + 1]``) that a running sum from ``r0``
    # turns into first rows: the rows before ``r0`` all lie in buckets before ``b0``,
    # and those after ``r1`` in buckets from ``b1 - 1`` on, which no ``directory[b]``
    # here counts. Branch-free: the search per bucket it replaced mispredicted its loop
    # exit at every bucket (85 against 20 ms for 5M MD5 entries, on one thread).
    for i in range(r0, r1):
        key = _key(values, i)
        words[np.int64(key >> wshift)] |= _filter_mask(key, wshift)
        after = np.int64(key >> dshift) + 1
        if after < b1:
            directory[after] += 1
    run = r0
    for b in range(b0, b1):
        run += directory[b]
        directory[b] = run


@numba.njit(**_JIT)
def _may_hold(words, wshift, key):
    """Whether the filter may hold ``key`` (never False for an entry's key)."""
    mask = _filter_mask(key, wshift)
    return (words[np.int64(key >> wshift)] & mask) == mask


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


@numba.njit(inline="always", **_JIT)
def _is_null(validity, bit):
    """Whether an Arrow validity bitmap marks position ``bit`` null."""
    return (validity[bit >> 3] >> (bit & 7)) & 1 == 0


@numba.njit(**_JIT)
def _hex_key(data, s, width, pairs):
    """Validate the ``2 * width`` hex digits at byte ``s``; return (ok, first 8 bytes
    as a big-endian uint64). The general case: any width, any alignment."""
    if words_fit(width):
        wrong, hi = hex_key_words(data, s, width)
        return not wrong, hi
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


@numba.njit(inline="always", **_JIT)
def _decode_keys(data, data16, offsets, validity, vbase, nulls, width, pairs, status, keys):
    """Pass 1 of :func:`match_hex`: per row, status NULL_ROW, SLOW_ROW (wrong length or
    a non-hex character), 3 (a digest at an odd byte offset, or narrower than 8 bytes:
    left to the general parser), or OK with ``keys[i]`` its first 8 bytes; returns the
    number of status-3 rows. The usual row inline: eight characters a word
    (:func:`hex_key_words`), or two per 16-bit load and table lookup."""
    n = offsets.shape[0] - 1
    w2 = 2 * width
    odd = 0
    for i in range(n):
        if nulls and _is_null(validity, vbase + i):
            status[i] = 1
            continue
        s = offsets[i]
        if offsets[i + 1] - s != w2:
            status[i] = 2
            continue
        if words_fit(width):
            wrong, hi = hex_key_words(data, s, width)
        elif s & 1 or width < 8:
            status[i] = 3
            odd += 1
            continue
        else:
            wrong, hi = hex_key_even(data16, s >> 1, width, pairs)
        if wrong:
            status[i] = 2
            continue
        keys[i] = hi
    return odd


@numba.njit(inline="always", **_JIT)
def hex_key_even(data16, s2, width, pairs):
    """Validate the ``2 * width`` (>= 16) hex digits from the 16-bit word ``s2`` (byte
    ``2 * s2``): (not a digest, first 8 bytes as a big-endian uint64). Two characters
    per 16-bit load and table lookup; with the width a constant, the compiler unrolls
    the loops. (:func:`hex_key_words` is faster where it applies.)"""
    err = 0
    hi = np.uint64(0)
    for b in range(8):
        v = pairs[data16[s2 + b]]
        err |= v
        hi = (hi << np.uint64(8)) | np.uint64(v & 255)
    for b in range(8, width):
        err |= pairs[data16[s2 + b]]
    return err > 255, hi


@numba.njit(**_JIT)
def match_hex(data, data16, offsets, validity, vbase, width, pairs, words, wshift, directory,
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

    Three passes rather than one: decoding is compute-bound and the filter probe is
    bound by memory latency, and a loop doing only the probes keeps many cache misses
    in flight at once (measured about 2.5x faster than probing inside the decoding
    loop on the benchmark's MD5 column)."""
    n = offsets.shape[0] - 1
    # 1: validate every character (fail closed), keep the first 8 bytes as a key. The
    # digest widths in use get a copy of the loop each, where the width is a constant
    # the compiler unrolls (measured 1.6x faster than a run-time width on MD5 rows).
    nulls = validity.shape[0] > 0
    if width == 16:
        odd = _decode_keys(data, data16, offsets, validity, vbase, nulls, 16, pairs, status, keys)
    elif width == 20:
        odd = _decode_keys(data, data16, offsets, validity, vbase, nulls, 20, pairs, status, keys)
    elif width == 32:
        odd = _decode_keys(data, data16, offsets, validity, vbase, nulls, 32, pairs, status, keys)
    else:
        odd = _decode_keys(data, data16, offsets, validity, vbase, nulls, width, pairs, status, keys)
    if odd:  # digests at odd byte offsets (after a value of odd length), or narrow ones
        for i in range(n):
            if status[i] == 3:
                ok, hi = _hex_key(data, offsets[i], width, pairs)
                status[i] = 0 if ok else 2
                keys[i] = hi
    # 2: the filter, a tight loop of independent loads. Every row is written to
    # ``cand`` and the count moves on only for a passing one: no branch on the load's
    # result, so the next rows' loads issue before this one's answer (an ``if`` around
    # an append measured 2-3x slower; a separate compaction pass, 1.3x).
    nc = 0
    for i in range(min(PREFETCH_AHEAD, n)):
        prefetch(words, np.int64(keys[i] >> wshift))
    for i in range(n):  # (rows with a status hold garbage keys: masked)
        if i + PREFETCH_AHEAD < n:
            prefetch(words, np.int64(keys[i + PREFETCH_AHEAD] >> wshift))
        cand[nc] = i
        nc += np.int64(_may_hold(words, wshift, keys[i])) & np.int64(status[i] == 0)
    # 3: the few candidates (1-3% of rows). Each costs several cache misses (its
    # directory bucket, the index entries, the row's text), so each step runs over all
    # of them before the next one: independent loads overlap.
    lo = np.empty(nc, dtype=np.int64)
    hi = np.empty(nc, dtype=np.int64)
    for c in range(nc):
        b = np.int64(keys[cand[c]] >> dshift)
        lo[c] = directory[b]
        hi[c] = directory[b + 1]
    for c in range(nc):  # first entry whose leading 8 bytes are not below the row's
        key = keys[cand[c]]
        p = lo[c]
        while p < hi[c] and _key(values, p) < key:
            p += 1
        lo[c] = p
    q = np.empty(width, dtype=np.uint8)
    count = 0
    for c in range(nc):
        i = cand[c]
        if lo[c] >= hi[c] or _key(values, lo[c]) != keys[i]:
            continue  # no entry shares the row's leading 8 bytes
        s = offsets[i]
        for b in range(width):
            q[b] = pairs[np.int64(data[s + 2 * b]) | (np.int64(data[s + 2 * b + 1]) << 8)] & 255
        count = _probe(q, keys[i], i, directory, dshift, values, out_rows, out_pos, count)
    return count


@numba.njit(**_JIT)
def match_rows(query, valid, words, wshift, directory, dshift, values, out_rows, out_pos):
    """Match canonical rows (``query``: (n, w) uint8) where ``valid`` is set."""
    n, width = query.shape
    count = 0
    for i in range(n):
        if not valid[i]:
            continue
        hi = np.uint64(0)
        for b in range(8):
            hi = (hi << np.uint64(8)) | np.uint64(query[i, b] if b < width else 0)
        if _may_hold(words, wshift, hi):
            count = _probe(query[i], hi, i, directory, dshift, values, out_rows, out_pos, count)
    return count


@numba.njit(**_JIT)
def _scheme_char(c):
    return ((65 <= c <= 90) or (97 <= c <= 122) or (48 <= c <= 57)
            or c == 43 or c == 46 or c == 45)  # A-Z a-z 0-9 + . -


@numba.njit(**_JIT)
def normalize_urls_basic(data, offsets, validity, vbase, space, out, out_offsets, status):
    """The ``basic`` URL normalisation (datahygiene/signals/url.py) of the rows whose
    text is printable ASCII once surrounding whitespace is trimmed -- nearly every
    URL. Writes each such row's normalised bytes to ``out`` (at ``out_offsets``) and
    status 0; a null row gets 1; any other row gets 2, and the caller normalises it
    with the Arrow kernels that define the rule (Unicode whitespace and case, control
    characters). ``space`` marks the ASCII bytes Arrow trims as whitespace."""
    n = offsets.shape[0] - 1
    has_validity = validity.shape[0] > 0
    k = 0
    for i in range(n):
        out_offsets[i] = k
        if has_validity and _is_null(validity, vbase + i):
            status[i] = 1
            continue
        s = offsets[i]
        e = offsets[i + 1]
        while s < e and space[data[s]]:
            s += 1
        while e > s and space[data[e - 1]]:
            e -= 1
        slow = False
        cut = e
        for j in range(s, e):
            c = data[j]
            if c < 33 or c > 126:
                slow = True
                break
            if c == 35 and cut == e:  # '#': the fragment starts here
                cut = j
        if slow:
            status[i] = 2
            continue
        e = cut
        # scheme://authority, lower-cased, without a default port
        p = s
        auth_end = -1
        if p < e and ((65 <= data[p] <= 90) or (97 <= data[p] <= 122)):
            p += 1
            while p < e and _scheme_char(data[p]):
                p += 1
            if p + 2 < e and data[p] == 58 and data[p + 1] == 47 and data[p + 2] == 47:  # "://"
                q = p + 3
                while q < e and data[q] != 47 and data[q] != 63:  # up to '/' or '?'
                    q += 1
                auth_end = q
        start = k
        if auth_end < 0:
            for j in range(s, e):
                out[k] = data[j]
                k += 1
        else:
            for j in range(s, auth_end):
                c = data[j]
                out[k] = c + 32 if 65 <= c <= 90 else c
                k += 1
            # drop ":80" after http://, ":443" after https://
            alen = k - start
            if (alen >= 10 and out[start] == 104 and out[start + 1] == 116 and out[start + 2] == 116
                    and out[start + 3] == 112 and out[start + 4] == 58
                    and out[k - 3] == 58 and out[k - 2] == 56 and out[k - 1] == 48):
                k -= 3
            elif (alen >= 12 and out[start] == 104 and out[start + 1] == 116
                    and out[start + 2] == 116 and out[start + 3] == 112 and out[start + 4] == 115
                    and out[start + 5] == 58 and out[k - 4] == 58 and out[k - 3] == 52
                    and out[k - 2] == 52 and out[k - 1] == 51):
                k -= 4
            for j in range(auth_end, e):
                out[k] = data[j]
                k += 1
        status[i] = 0
    out_offsets[n] = k
    return k


def load_in_background() -> threading.Thread:
    """Start numba's one-off set-up (its type registries: about 0.2 s per process, paid
    by the first kernel call even when every kernel comes from the cache) on a thread,
    so it overlaps work that needs no kernel yet -- reading and decrypting a stored
    list, digesting inputs -- instead of stalling the first kernel call."""
    thread = threading.Thread(target=rows_strictly_increasing, args=(np.zeros((1, 1), np.uint8),),
                              name="datahygiene-kernels", daemon=True)
    thread.start()
    return thread


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel for the argument types a scan
    uses, so the first scan does not pause for compilation (several seconds, once per
    installation). ``make env`` runs this; ``python -m datahygiene.kernels`` too."""
    values = np.zeros((4, 16), dtype=np.uint8)
    text = np.frombuffer(b"00000000000000000000000000000000\n", dtype=np.uint8)
    for lines in (np.zeros(2, np.int32), np.zeros(2, np.int64)):
        # a text list's blocks are read into a writable buffer; bytes are read-only
        for buf in (text, text.copy()):
            parse_hex_lines(buf, 16, HEX_PAIRS, np.zeros((2, 16), np.uint8), lines)
        compact_rows(values, lines[:1].repeat(4), np.zeros(1, np.int64), np.ones(1, np.int64))
    keys = np.zeros(4, np.uint64)
    counts = radix_counts(values, 0, 4, 1)
    # positions (int64), or line numbers carried through the sort (int32 or int64; a
    # list's line numbers come read-only, from an Arrow array)
    ro32, ro64 = np.zeros(4, np.int32), np.zeros(4, np.int64)
    ro32.flags.writeable = ro64.flags.writeable = False
    for order, carry in ((np.zeros(4, np.int64), np.zeros(0, np.int64)),
                         (np.zeros(4, np.int64), np.zeros(4, np.int64)),
                         (np.zeros(4, np.int32), np.zeros(4, np.int32)),
                         (np.zeros(4, np.int64), ro64), (np.zeros(4, np.int32), ro32)):
        sorted_rows = values.copy()
        radix_scatter(values, 0, 4, 1, np.array([0, counts[0]]), sorted_rows, order, carry)
        for first in (np.zeros(0, np.uint8), np.zeros(4, np.uint8)):
            sort_buckets(sorted_rows, 1, np.array([0, counts[0], 4]), 0, 2, order, first)
    rows_sorted(values)
    from datahygiene.digests import digest_rows, hmac_sha256_rows, hmac_sha256_states

    for algorithm, width in ((0, 16), (1, 20), (2, 32)):  # URL digests
        digest_rows(algorithm, np.zeros(1, np.uint8), np.array([0, 1], np.int64),
                    np.zeros(1, np.int64), np.zeros((1, width), np.uint8))
    istate, ostate = hmac_sha256_states(b"k" * 32)  # row commitments (verify --released)
    hmac_sha256_rows(istate, ostate, np.zeros(1, np.uint8), np.zeros(1, np.uint8),
                     np.array([0, 1], np.int64), np.zeros((1, 32), np.uint8))
    url = np.frombuffer(b"HTTP://A:80/x", dtype=np.uint8)
    # Arrow's buffers reach the kernels writable, bytes objects read-only: numba compiles
    # each apart (a scan that met a missing one compiled it then, for a second or two)
    for data in (url, url.copy()):
        for offs in (np.array([0, 13], np.int32), np.array([0, 13], np.int64)):
            normalize_urls_basic(data, offs, np.zeros(0, np.uint8), 0, np.zeros(256, np.bool_),
                                 np.zeros(13, np.uint8), np.zeros(2, np.int64),
                                 np.zeros(1, np.uint8))
    decode_hex_matrix(np.zeros((2, 16), np.uint16), HEX_PAIRS, values[:2], np.zeros(2, np.bool_))
    rows_strictly_increasing(values)
    words = np.zeros(2, np.uint64)
    for directory in (np.zeros(3, np.int32), np.zeros(3, np.int64)):
        build_prefilter(values, words, np.uint64(63), directory, np.uint64(63), 0, 4, 0, 3)
        out = np.zeros(4, np.int64)
        match_rows(values, np.ones(4, np.bool_), words, np.uint64(63), directory, np.uint64(63),
                   values, out, out.copy())
        data = np.zeros(64, np.uint8)
        for offsets in (np.array([0, 32], np.int32), np.array([0, 32], np.int64)):
            match_hex(data, data.view(np.uint16), offsets, np.zeros(0, np.uint8), 0, 16, HEX_PAIRS,
                      words, np.uint64(63), directory, np.uint64(63), values, np.zeros(1, np.uint8),
                      keys, out, out, out.copy())
    from datahygiene.page_kernels import warm_up as warm_page_kernels

    warm_page_kernels()


if __name__ == "__main__":
    warm_up()
