"""Compiled kernels for parquet page encodings (see :mod:`datahygiene.parquet_pages`).

* :func:`hybrid` -- parquet's RLE / bit-packing hybrid (definition levels, dictionary
  indices);
* :func:`dictionary_indices` -- a data page's dictionary indices, checked against the
  dictionary; :func:`dictionary_candidates` -- the same, keeping only the values whose
  entry a filter kept;
* :func:`plain_spans` -- where each value of a PLAIN-encoded BYTE_ARRAY page lies;
* :func:`gather_spans` -- chosen values into Arrow's layout (offsets and data);
* :func:`digest_candidates` -- which values of a hash column an index's filter cannot
  rule out;
* :func:`footer_chunks` -- what a footer says of each column chunk (type, codec,
  level histograms); :func:`chunks_fit` -- whether that fits the schema.

Every kernel checks its reads against the buffer's end and reports a page that does
not add up (-1) instead of reading past it; the reader then leaves the column chunk
to pyarrow. Kernels see values only as bytes: they never format, log or raise with one.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from datahygiene.kernels import (
    LITTLE_ENDIAN,
    PREFETCH_AHEAD,
    _hex_key,
    _may_hold,
    hex_key_even,
    hex_key_words,
    load_u32,
    prefetch,
    words_fit,
)

_JIT: dict[str, Any] = {"nogil": True, "cache": True}

# numba keys each cached kernel to its own file's content, not to the code it inlines
# from kernels.py: after kernels.py changes, these kernels would load from the cache
# with kernels.py's old code inlined (an editable install after `git pull`; an
# upgrade, which leaves __pycache__ behind). This line changes with kernels.py
# (tests/test_kernel_cache.py checks that it is kernels.py's SHA-256), and so this
# file's content, and every kernel here is compiled again.
KERNELS_PY_SHA256 = "8799efc26db747814b879a7f5836a27ee63bfa13944d2a4bc272c98f7cf5f577"


@numba.njit(**_JIT)
def hybrid(buf, pos, end, width, n, out):
    """Decode ``n`` values of bit width ``width`` (0-32) from ``buf[pos:end]`` into
    ``out``; return the position after the last run read, or -1 when the runs end
    before ``n`` values or a value does not fit ``width``."""
    i = 0
    vbytes = (width + 7) // 8
    mask = (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    while i < n:
        header = np.uint64(0)
        shift = np.uint64(0)
        while True:
            if pos >= end or shift > np.uint64(56):
                return -1
            b = np.uint64(buf[pos])
            pos += 1
            header |= (b & np.uint64(127)) << shift
            if b < np.uint64(128):
                break
            shift += np.uint64(7)
        if header & np.uint64(1):  # bit-packed: groups of 8 values, LSB first
            # a count from the file, up to 2**62: times 8 or the width it could wrap
            # negative (reads and writes outside the buffers). Cut to more than both
            # the values wanted and the bytes left, which changes nothing else.
            groups = min(np.int64(header >> np.uint64(1)), np.int64(n) + end - pos)
            nbytes = groups * width
            take = min(groups * 8, n - i)
            need = (take * width + 7) // 8  # a last run may stop short of its groups
            if pos + need > end:
                return -1
            for k in range(take):
                bit = k * width
                byte = pos + (bit >> 3)
                v = np.uint64(0)
                got = 0
                while got < (bit & 7) + width:
                    v |= np.uint64(buf[byte]) << np.uint64(got)
                    byte += 1
                    got += 8
                out[i + k] = (v >> np.uint64(bit & 7)) & mask
            i += take
            pos = min(pos + nbytes, end)
        else:  # a run of one value
            count = np.int64(header >> np.uint64(1))
            if pos + vbytes > end:
                return -1
            v = np.uint64(0)
            for k in range(vbytes):
                v |= np.uint64(buf[pos + k]) << np.uint64(8 * k)
            if v > mask:
                return -1
            pos += vbytes
            take = min(count, n - i)
            for k in range(take):
                out[i + k] = v
            i += take
    return pos


@numba.njit(**_JIT)
def dictionary_indices(buf, pos, end, width, n, count, out):
    """Decode a data page's ``n`` dictionary indices (:func:`hybrid`) into ``out``;
    return 0, -1 when they do not decode, -2 when one is past the dictionary's
    ``count`` entries."""
    if hybrid(buf, pos, end, width, n, out) < 0:
        return -1
    for i in range(n):
        if out[i] >= count:
            return -2
    return 0


@numba.njit(**_JIT)
def dictionary_candidates(buf, pos, end, width, n, count, place, keep, pick):
    """Which of a data page's ``n`` values the full check must see, from their
    dictionary indices (decoded from ``buf[pos:end]`` as :func:`dictionary_indices`
    does) and ``place``, each entry's place among the kept ones (-1: ruled out): the
    value numbers to ``keep`` and their entries' places to ``pick``. Returns how many,
    or :func:`dictionary_indices`' negative code. One call where decoding, checking
    and mapping the indices were five, each releasing and taking back the GIL."""
    idx = np.empty(n, dtype=np.uint32)
    code = dictionary_indices(buf, pos, end, width, n, count, idx)
    if code < 0:
        return code
    m = 0
    for i in range(n):
        at = place[idx[i]]
        if at >= 0:
            keep[m] = i
            pick[m] = at
            m += 1
    return m


@numba.njit(inline="always", **_JIT)
def _length_at(buf, p):
    """The 4-byte little-endian length of the PLAIN BYTE_ARRAY value at ``p``."""
    if LITTLE_ENDIAN:
        return np.int64(load_u32(buf, p))
    return (np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8) | (np.int64(buf[p + 2]) << 16)
            | (np.int64(buf[p + 3]) << 24))


@numba.njit(inline="always", **_JIT)
def _stride(buf, pos, end, n):
    """``L`` when the ``n`` PLAIN BYTE_ARRAY values from ``buf[pos:end]`` can all be
    ``L`` bytes long -- the first one is, and ``n`` of them fill it exactly -- else -1.

    Values of one length (hex digests, img2dataset's keys, many ids) sit at a fixed
    stride: a loop that finds each where it must be, and checks its length there, makes
    independent loads, where walking from value to value makes each position wait for
    the length before it. When every length checks, that walk would have visited
    exactly these places; the first that does not sends the caller to the walk."""
    if n <= 0 or end - pos < 4:
        return -1
    ln = _length_at(buf, pos)
    if ln > end - pos or (end - pos) != n * (4 + ln):
        return -1
    return ln


@numba.njit(**_JIT)
def plain_spans(buf, pos, end, n, starts, lens):
    """Where the ``n`` PLAIN BYTE_ARRAY values from ``buf[pos:end]`` lie (each a 4-byte
    little-endian length, then its bytes); return the position after the last, or -1
    when a value runs past ``end``."""
    one = _stride(buf, pos, end, n)
    if one >= 0:
        bad = 0
        for i in range(n):
            p = pos + i * (4 + one)
            bad |= _length_at(buf, p) != one
            starts[i] = p + 4
            lens[i] = one
        if not bad:
            return end
    for i in range(n):
        if pos + 4 > end:
            return -1
        ln = _length_at(buf, pos)
        pos += 4
        if ln > end - pos:
            return -1
        starts[i] = pos
        lens[i] = ln
        pos += ln
    return pos


@numba.njit(**_JIT)
def gather_spans(buf, starts, lens, pick, out_offsets, out_data):
    """Copy values ``pick`` (indices into ``starts``/``lens``; -1 for a null, which
    gets no bytes) into Arrow's layout: ``out_offsets`` (len(pick) + 1) and
    ``out_data`` (at least the picked values' total length)."""
    k = 0
    out_offsets[0] = 0
    for j in range(pick.shape[0]):
        p = pick[j]
        if p >= 0:
            s = starts[p]
            for b in range(lens[p]):
                out_data[k + b] = buf[s + b]
            k += lens[p]
        out_offsets[j + 1] = k
    return k


@numba.njit(inline="always", **_JIT)
def _hex_value(buf, data16, s, width, pairs):
    """Validate and decode the ``2 * width`` hex digits at byte ``s``: (not a digest,
    first 8 bytes as a big-endian uint64). Eight characters a word where the width
    allows (``kernels.hex_key_words``), else two per 16-bit load and table lookup, as
    in ``kernels.match_hex``, where a value at an odd byte offset (after one of odd
    length) takes the general loop."""
    if words_fit(width):
        return hex_key_words(buf, s, width)
    if s & 1:
        ok, hi = _hex_key(buf, s, width, pairs)
        return not ok, hi
    return hex_key_even(data16, s >> 1, width, pairs)


@numba.njit(inline="always", **_JIT)
def _raw_key(buf, s):
    """The 8 bytes at ``s`` as a big-endian uint64 (a binary digest's key)."""
    hi = np.uint64(0)
    for b in range(8):
        hi = (hi << np.uint64(8)) | np.uint64(buf[s + b])
    return hi


@numba.njit(inline="always", **_JIT)
def _value_key(buf, data16, s, hexed, width, pairs):
    """(not a digest, key) of a value of the digest's length at ``s``: hex text
    validated and decoded (:func:`_hex_value`), or raw bytes taken as they are."""
    if hexed:
        return _hex_value(buf, data16, s, width, pairs)
    return False, _raw_key(buf, s)


@numba.njit(inline="always", **_JIT)
def _hex_keys(buf, data16, starts, lens, width, pairs, bad, keys):
    """Pass 1 of :func:`digest_candidates` for hex text: ``bad[i]`` set for a value
    that is not ``2 * width`` hex digits, else ``keys[i]`` its first 8 bytes."""
    w2 = 2 * width
    for i in range(starts.shape[0]):
        if lens[i] != w2:
            bad[i] = 1
            continue
        wrong, hi = _hex_value(buf, data16, starts[i], width, pairs)
        bad[i] = wrong
        keys[i] = hi


@numba.njit(inline="always", **_JIT)
def _filter_pass(keys, bad, n, words, wshift, out):
    """Pass 2: the indices of the values to keep -- bad ones, and those whose key the
    filter may hold -- in a tight loop of independent loads with a branch-free append
    and the filter word prefetched a few rows ahead (see ``kernels.match_hex``). A bad
    value's key is whatever pass 1 left: it is kept whatever the filter says."""
    nc = 0
    for i in range(min(PREFETCH_AHEAD, n)):
        prefetch(words, np.int64(keys[i] >> wshift))
    for i in range(n):
        if i + PREFETCH_AHEAD < n:
            prefetch(words, np.int64(keys[i + PREFETCH_AHEAD] >> wshift))
        out[nc] = i
        nc += np.int64(bad[i] != 0) | np.int64(_may_hold(words, wshift, keys[i]))
    return nc


@numba.njit(**_JIT)
def digest_candidates(buf, data16, starts, lens, hexed, width, pairs, words, wshift, bad, keys,
                      out):
    """Indices of the values the filter cannot rule out: every value that is not a
    well-formed digest (wrong length, a character that is not hex -- the full check
    decides those), and every digest whose leading 8 bytes the filter ``words`` may
    hold. A value is left out only when it is a well-formed digest the list certainly
    lacks. ``hexed``: values are hex text (``2 * width`` characters; ``data16`` is
    ``buf``'s bytes as uint16); else raw bytes (``width``). ``bad`` (uint8), ``keys``
    (uint64): scratch of at least ``len(starts)``. Returns the count written to
    ``out``."""
    n = starts.shape[0]
    if width < 8:  # no 8-byte key to test: every value goes to the full check
        for i in range(n):
            out[i] = i
        return n
    # 1: decode (compute-bound), with the usual digest widths as constants the
    # compiler unrolls
    if hexed:
        if width == 16:
            _hex_keys(buf, data16, starts, lens, 16, pairs, bad, keys)
        elif width == 20:
            _hex_keys(buf, data16, starts, lens, 20, pairs, bad, keys)
        elif width == 32:
            _hex_keys(buf, data16, starts, lens, 32, pairs, bad, keys)
        else:
            _hex_keys(buf, data16, starts, lens, width, pairs, bad, keys)
    else:
        for i in range(n):
            s = starts[i]
            bad[i] = lens[i] != width
            keys[i] = _raw_key(buf, s) if lens[i] >= 8 else np.uint64(0)
    return _filter_pass(keys, bad, n, words, wshift, out)  # 2: the filter


@numba.njit(inline="always", **_JIT)
def _plain_keys(buf, data16, pos, end, n, hexed, width, pairs, bad, keys, starts):
    """Pass 1 of :func:`plain_digest_candidates`: walk ``n`` PLAIN BYTE_ARRAY values
    from ``pos`` (as :func:`plain_spans`), recording each value's start, and decode
    it as :func:`_hex_keys` does (or take its first 8 raw bytes); return the position
    after the last value, or -1 when one runs past ``end``."""
    want = 2 * width if hexed else width
    for i in range(n):
        if pos + 4 > end:
            return -1
        ln = _length_at(buf, pos)
        s = pos + 4
        if ln > end - s:
            return -1
        starts[i] = s
        pos = s + ln
        if ln != want:
            bad[i] = 1
            continue
        wrong, hi = _value_key(buf, data16, s, hexed, width, pairs)
        bad[i] = wrong
        keys[i] = hi
    return pos


@numba.njit(inline="always", **_JIT)
def _stride_keys(buf, data16, pos, end, n, hexed, width, pairs, bad, keys, starts):
    """:func:`_plain_keys` for values that all have the digest's length (see
    :func:`_stride`): each found where the stride puts it and its length checked
    there; ``end``, or -1 when one's length is another (the caller then walks)."""
    want = 2 * width if hexed else width
    if _stride(buf, pos, end, n) != want:
        return -1
    odd = 0
    for i in range(n):
        p = pos + i * (4 + want)
        odd |= _length_at(buf, p) != want
        s = p + 4
        starts[i] = s
        wrong, hi = _value_key(buf, data16, s, hexed, width, pairs)
        bad[i] = wrong
        keys[i] = hi
    return -1 if odd else end


# :func:`_stride_keys` compiled apart for each usual hex width (a constant the compiler
# unrolls), and for any other: inlined into :func:`plain_digest_candidates` beside the
# walk and the filter it ran slower (24.0 against 22.7 ns a row), apart faster (12.6
# against 15.9 ns for the keys alone)
@numba.njit(**_JIT)
def _stride_hex16(buf, data16, pos, end, n, pairs, bad, keys, starts):
    return _stride_keys(buf, data16, pos, end, n, True, 16, pairs, bad, keys, starts)


@numba.njit(**_JIT)
def _stride_hex20(buf, data16, pos, end, n, pairs, bad, keys, starts):
    return _stride_keys(buf, data16, pos, end, n, True, 20, pairs, bad, keys, starts)


@numba.njit(**_JIT)
def _stride_hex32(buf, data16, pos, end, n, pairs, bad, keys, starts):
    return _stride_keys(buf, data16, pos, end, n, True, 32, pairs, bad, keys, starts)


@numba.njit(**_JIT)
def _stride_any(buf, data16, pos, end, n, hexed, width, pairs, bad, keys, starts):
    return _stride_keys(buf, data16, pos, end, n, hexed, width, pairs, bad, keys, starts)


@numba.njit(**_JIT)
def plain_digest_candidates(buf, data16, pos, end, n, hexed, width, pairs, words, wshift, bad,
                            keys, starts, out):
    """:func:`digest_candidates` for a PLAIN BYTE_ARRAY page, walking its values and
    deciding them in one pass: the ``n`` values from ``buf[pos:end]`` must fill it
    exactly (else -1). Writes each value's start to ``starts`` and the kept values'
    indices to ``out``; returns their count."""
    if width < 8:
        if plain_spans(buf, pos, end, n, starts, keys.view(np.int64)) != end:
            return -1
        for i in range(n):
            out[i] = i
        return n
    if hexed and width == 16:
        stop = _stride_hex16(buf, data16, pos, end, n, pairs, bad, keys, starts)
    elif hexed and width == 20:
        stop = _stride_hex20(buf, data16, pos, end, n, pairs, bad, keys, starts)
    elif hexed and width == 32:
        stop = _stride_hex32(buf, data16, pos, end, n, pairs, bad, keys, starts)
    else:
        stop = _stride_any(buf, data16, pos, end, n, hexed, width, pairs, bad, keys, starts)
    if stop == end:
        return _filter_pass(keys, bad, n, words, wshift, out)
    if hexed:
        if width == 16:
            stop = _plain_keys(buf, data16, pos, end, n, True, 16, pairs, bad, keys, starts)
        elif width == 20:
            stop = _plain_keys(buf, data16, pos, end, n, True, 20, pairs, bad, keys, starts)
        elif width == 32:
            stop = _plain_keys(buf, data16, pos, end, n, True, 32, pairs, bad, keys, starts)
        else:
            stop = _plain_keys(buf, data16, pos, end, n, True, width, pairs, bad, keys, starts)
    else:
        stop = _plain_keys(buf, data16, pos, end, n, False, width, pairs, bad, keys, starts)
    if stop != end:
        return -1
    return _filter_pass(keys, bad, n, words, wshift, out)


@numba.njit(inline="always", **_JIT)
def _varint(buf, p):
    """An unsigned LEB128 varint at ``p``: (value, position after it), or (0, -1) when
    it runs past the buffer or past 64 bits."""
    n = buf.shape[0]
    v = np.int64(0)
    shift = 0
    while True:
        if p >= n or shift > 63:
            return np.int64(0), -1
        x = np.int64(buf[p])
        p += 1
        v |= (x & 127) << shift
        if x < 128:
            return v, p
        shift += 7


@numba.njit(inline="always", **_JIT)
def _field_header(buf, p, fid):
    """A Thrift compact struct's next field header at ``p``, after field ``fid``: (its
    type, its id, the position after it); type 0 at the struct's end, and a position
    of -1 when it runs past the buffer."""
    if p >= buf.shape[0]:
        return np.int64(0), fid, -1
    h = np.int64(buf[p])
    p += 1
    if h == 0:
        return np.int64(0), fid, p
    if h >> 4:
        return h & 15, fid + (h >> 4), p
    v, p = _varint(buf, p)  # a zigzag varint field id
    if p < 0:
        return np.int64(0), fid, -1
    return h & 15, (v >> 1) ^ -(v & 1), p


@numba.njit(inline="always", **_JIT)
def _list_header(buf, p):
    """A Thrift compact list's or set's header at ``p``: (its element count, its
    element type, the position after it), or a position of -1 when it runs past the
    buffer or counts more elements than bytes are left (each takes a byte at least)."""
    n = buf.shape[0]
    if p >= n:
        return np.int64(0), np.int64(0), -1
    h = np.int64(buf[p])
    p += 1
    size = h >> 4
    if size == 15:
        size, p = _varint(buf, p)
        if p < 0:
            return np.int64(0), np.int64(0), -1
    if size < 0 or size > n - p:
        return np.int64(0), np.int64(0), -1
    return size, h & 15, p


# footer_chunks's columns, one row per column chunk (-1: the footer does not say)
CHUNK_ROW_GROUP, CHUNK_COLUMN, CHUNK_TYPE, CHUNK_CODEC, CHUNK_REP_HIST, CHUNK_DEF_HIST = range(6)
CHUNK_FIELDS = 6


@numba.njit(**_JIT)
def footer_chunks(buf, out, spans):
    """What a parquet footer (``buf``: its Thrift compact FileMetaData) says of each
    column chunk, one row of ``out`` (CHUNK_FIELDS wide) per chunk in order: its row
    group and its place in it, and from its ColumnMetaData the physical type, the
    codec and the lengths of the size statistics' repetition and definition level
    histograms (-1 where absent). Returns how many chunks, or -1 when the bytes do
    not parse (or hold more than ``len(out)`` chunks). Walks every field.

    ``spans`` (4 long) gets where the values of the FileMetaData's ``schema`` (field
    2) and ``key_value_metadata`` (field 5) lie in ``buf``: start and end of each, -1
    for one absent. What a file's Arrow schema is made of, as bytes to compare."""
    n = buf.shape[0]
    for k in range(4):
        spans[k] = -1
    spanned = -1  # the top-level field whose value is being walked, if spanned
    # one entry per open struct or list: its role on the way to a chunk's facts (-1
    # for any other), and for a list, its element type and elements left
    depth_max = 32
    role = np.empty(depth_max, np.int64)
    is_list = np.empty(depth_max, np.bool_)
    left = np.empty(depth_max, np.int64)
    etype = np.empty(depth_max, np.int64)
    fid = np.empty(depth_max, np.int64)
    d = 0
    role[0] = 0  # FileMetaData
    is_list[0] = False
    fid[0] = 0
    p = 0
    count = 0
    group = -1
    column = -1
    while d >= 0:
        if is_list[d]:
            if left[d] == 0:
                d -= 1
                continue
            left[d] -= 1
            t = etype[d]
            child_role = -1
            if role[d] == 1 and t == 12:
                child_role = 2  # a RowGroup
                group += 1
                column = -1
            elif role[d] == 3 and t == 12:
                child_role = 4  # a ColumnChunk
                if count >= out.shape[0]:
                    return -1
                column += 1
                for k in range(CHUNK_FIELDS):
                    out[count, k] = -1
                out[count, CHUNK_ROW_GROUP] = group
                out[count, CHUNK_COLUMN] = column
                count += 1
            field = -1
        else:
            if d == 0 and spanned >= 0:  # the spanned field's value ends here
                spans[spanned + 1] = p
                spanned = -1
            t, fid[d], p = _field_header(buf, p, fid[d])
            if p < 0:
                return -1
            if t == 0:  # end of the struct
                d -= 1
                continue
            field = fid[d]
            if d == 0 and (field == 2 or field == 5):
                spanned = 0 if field == 2 else 2
                spans[spanned] = p
            child_role = -1
            if role[d] == 0 and field == 4:
                child_role = 1  # row_groups
            elif role[d] == 2 and field == 1:
                child_role = 3  # columns
            elif role[d] == 4 and field == 3:
                child_role = 5  # meta_data
            elif role[d] == 5 and field == 16:
                child_role = 6  # size_statistics
        # the value of type t
        if t == 1 or t == 2:
            if is_list[d]:
                p += 1  # a boolean in a list takes a byte
            continue
        if t == 3:
            p += 1
            continue
        if t == 4 or t == 5 or t == 6:
            v, p = _varint(buf, p)
            if p < 0:
                return -1
            if not is_list[d] and role[d] == 5 and t == 5 and (field == 1 or field == 4):
                # ColumnMetaData.type, .codec (an enum's i32: outside 0..2**31 is no value)
                out[count - 1, CHUNK_TYPE if field == 1 else CHUNK_CODEC] = (
                    (v >> 1) ^ -(v & 1)) & 0xFFFFFFFF
            continue
        if t == 7:
            p += 8
            continue
        if t == 8:
            v, p = _varint(buf, p)
            if p < 0:
                return -1
            if v < 0 or v > n - p:
                return -1
            p += v
            continue
        if d + 1 >= depth_max:
            return -1
        if t == 9 or t == 10:
            size, et, p = _list_header(buf, p)
            if p < 0:
                return -1
            if not is_list[d] and role[d] == 6 and (field == 2 or field == 3):
                out[count - 1, CHUNK_REP_HIST if field == 2 else CHUNK_DEF_HIST] = size
            d += 1
            is_list[d] = True
            left[d] = size
            etype[d] = et
            role[d] = child_role
            continue
        if t == 11:
            return -1  # no map on the way to a chunk; none in a footer today
        if t == 12:
            d += 1
            is_list[d] = False
            fid[d] = 0
            role[d] = child_role
            continue
        return -1
    return count


# page_header's fields: the PageHeader's type and sizes, then those of its
# DataPageHeader, DictionaryPageHeader and DataPageHeaderV2, then whether each of those
# three was there (1); PAGE_ABSENT where the header does not give a field
(PAGE_TYPE, PAGE_USIZE, PAGE_CSIZE,
 DATA_VALUES, DATA_ENCODING, DATA_DEF_ENCODING, DATA_REP_ENCODING,
 DICT_VALUES, DICT_ENCODING,
 V2_VALUES, V2_NULLS, V2_ROWS, V2_ENCODING, V2_DEF_LENGTH, V2_REP_LENGTH, V2_COMPRESSED,
 HAS_DATA, HAS_DICT, HAS_V2) = range(19)
PAGE_FIELDS = 19
PAGE_ABSENT = -(1 << 62)


@numba.njit(inline="always", **_JIT)
def _page_slot(role, field):
    """Where page_header keeps field ``field`` of a struct in role ``role`` (0: the
    PageHeader, 1-3: its data, dictionary and v2 data page headers), or -1."""
    if role == 0 and 1 <= field <= 3:
        return PAGE_TYPE + field - 1
    if role == 1 and 1 <= field <= 4:
        return DATA_VALUES + field - 1
    if role == 2 and 1 <= field <= 2:
        return DICT_VALUES + field - 1
    if role == 3 and 1 <= field <= 7:
        return V2_VALUES + field - 1
    return -1


@numba.njit(**_JIT)
def page_header(buf, p, out):
    """Parse the Thrift compact PageHeader at ``buf[p:]`` into ``out`` (PAGE_FIELDS
    long; see PAGE_TYPE ...): return the position after it, or -1 when it does not
    parse, runs past the buffer, nests deeper than 8, or gives a field of another type
    than parquet's (the reader then leaves the chunk to pyarrow). Every other field --
    statistics, checksums, fields of later versions -- is walked over unread."""
    for k in range(PAGE_FIELDS):
        out[k] = PAGE_ABSENT
    n = buf.shape[0]
    depth_max = 10
    kind = np.empty(depth_max, np.int64)  # 0 struct, 1 list or set, 2 map
    role = np.empty(depth_max, np.int64)
    fid = np.empty(depth_max, np.int64)
    left = np.empty(depth_max, np.int64)
    etype = np.empty(depth_max, np.int64)  # a list's element type, a map's key type
    vtype = np.empty(depth_max, np.int64)  # a map's value type
    value_next = np.zeros(depth_max, np.bool_)  # a map: its next is a value
    d = 0
    kind[0] = 0
    role[0] = 0
    fid[0] = 0
    while d >= 0:
        slot = -1
        child = -1
        if kind[d] == 0:
            t, fid[d], p = _field_header(buf, p, fid[d])
            if p < 0:
                return -1
            if t == 0:  # the struct's end
                d -= 1
                continue
            slot = _page_slot(role[d], fid[d])
            if role[d] == 0 and 5 <= fid[d] <= 8 and fid[d] != 6:
                child = 1 if fid[d] == 5 else 2 if fid[d] == 7 else 3
                if t != 12:
                    return -1
            in_struct = True
        else:
            if (kind[d] == 1 or not value_next[d]) and left[d] == 0:
                d -= 1
                continue
            if kind[d] == 1:
                left[d] -= 1
                t = etype[d]
            elif value_next[d]:
                t = vtype[d]
                value_next[d] = False
                left[d] -= 1
            else:
                t = etype[d]
                value_next[d] = True
            in_struct = False
        if t == 1 or t == 2:  # a boolean: in its field's type, or a byte in a container
            if not in_struct:
                p += 1
                if p > n:
                    return -1
            elif slot == V2_COMPRESSED:
                out[slot] = 1 if t == 1 else 0
            elif slot >= 0:
                return -1
            continue
        if slot == V2_COMPRESSED:
            return -1
        if t == 3:  # a byte
            if p >= n:
                return -1
            if slot >= 0:
                out[slot] = np.int64(buf[p])
            p += 1
            continue
        if t == 4 or t == 5 or t == 6:
            v, p = _varint(buf, p)
            if p < 0:
                return -1
            if slot >= 0:
                out[slot] = (v >> 1) ^ -(v & 1)
            continue
        if slot >= 0:
            return -1  # a field that must be an integer is not
        if t == 7:  # a double
            p += 8
            if p > n:
                return -1
            continue
        if t == 8:  # binary (statistics): skipped, never read
            v, p = _varint(buf, p)
            if p < 0 or v < 0 or v > n - p:
                return -1
            p += v
            continue
        if d + 1 >= depth_max - 1:
            return -1
        if t == 9 or t == 10:
            size, et, p = _list_header(buf, p)
            if p < 0:
                return -1
            d += 1
            kind[d] = 1
            left[d] = size
            etype[d] = et
            continue
        if t == 11:
            size, p = _varint(buf, p)
            if p < 0 or size < 0 or size > n - p:
                return -1
            d += 1
            kind[d] = 2
            left[d] = size
            value_next[d] = False
            if size:
                if p >= n:
                    return -1
                h = np.int64(buf[p])
                p += 1
                etype[d] = h >> 4
                vtype[d] = h & 15
            continue
        if t == 12:
            d += 1
            kind[d] = 0
            fid[d] = 0
            role[d] = child
            if child > 0:
                out[HAS_DATA + child - 1] = 1
            continue
        return -1
    return p


# chunks_fit's verdicts
FIT, UNKNOWN_CODEC, MISSING_CHUNK, WRONG_TYPE, WRONG_HISTOGRAM = range(5)


@numba.njit(**_JIT)
def chunks_fit(chunks, expect, groups, codecs):
    """Whether the chunks :func:`footer_chunks` found fit the schema: ``expect`` holds
    per column (in schema order) its physical type and its maximum repetition and
    definition levels plus one (the length of a level histogram); ``groups`` is the
    number of row groups, ``codecs`` the number of codecs parquet has (0 to
    codecs - 1). FIT, or the first problem found."""
    ncols = expect.shape[0]
    seen = np.zeros(groups, np.int64)
    for i in range(chunks.shape[0]):
        codec = chunks[i, CHUNK_CODEC]
        if codec < 0 or codec >= codecs:
            return UNKNOWN_CODEC
        g = chunks[i, CHUNK_ROW_GROUP]
        j = chunks[i, CHUNK_COLUMN]
        if g < 0 or g >= groups or j != seen[g] or j >= ncols:
            return MISSING_CHUNK
        seen[g] += 1
        if chunks[i, CHUNK_TYPE] != expect[j, 0]:
            return WRONG_TYPE
        for slot, k in ((CHUNK_REP_HIST, 1), (CHUNK_DEF_HIST, 2)):
            size = chunks[i, slot]
            if size > 0 and size != expect[j, k]:
                return WRONG_HISTOGRAM
    if chunks.shape[0]:
        for g in range(groups):
            if seen[g] != ncols:
                return MISSING_CHUNK
    return FIT


def warm_up() -> None:
    """Compile (or load from numba's cache) each kernel for the types the reader uses:
    page buffers come writable (the read buffer, Arrow's decompressed pages) and, in
    tests, read-only; numba compiles each apart."""
    from datahygiene.kernels import HEX_PAIRS

    writable = np.zeros(64, np.uint8)
    for buf in (writable, np.frombuffer(bytes(64), np.uint8)):
        hybrid(buf, 0, 64, 1, 8, np.zeros(8, np.uint32))
        dictionary_indices(buf, 0, 64, 1, 8, 2, np.zeros(8, np.uint32))
        dictionary_candidates(buf, 0, 64, 1, 8, 2, np.zeros(2, np.int64), np.zeros(8, np.int64),
                              np.zeros(8, np.int64))
        starts, lens = np.zeros(2, np.int64), np.zeros(2, np.int64)
        plain_spans(buf, 0, 64, 2, starts, lens)
        pick = np.zeros(2, np.int64)
        for offsets in (np.zeros(3, np.int64), np.zeros(3, np.int32)):
            gather_spans(buf, starts, lens, pick, offsets, np.zeros(8, np.uint8))
        for hexed in (True, False):
            scratch = (np.zeros(2, np.uint64), np.uint64(63), np.zeros(2, np.uint8),
                       np.zeros(2, np.uint64))
            plain_digest_candidates(buf, buf.view(np.uint16), 0, 64, 2, hexed, 16, HEX_PAIRS,
                                    *scratch, starts, np.zeros(2, np.int64))
            digest_candidates(buf, buf.view(np.uint16), starts, lens, hexed, 16, HEX_PAIRS, *scratch,
                              np.zeros(2, np.int64))
        footer_chunks(buf, np.zeros((2, CHUNK_FIELDS), np.int64), np.zeros(4, np.int64))
        page_header(buf, 0, np.zeros(PAGE_FIELDS, np.int64))
        chunks_fit(np.zeros((2, CHUNK_FIELDS), np.int64), np.zeros((1, 3), np.int64), 1, 8)
