"""Parquet pages read directly, for the reads where pyarrow's column reader does more
work than the scan needs.

pyarrow decodes a whole column chunk into an Arrow array. Two reads of a scan need
far less of it:

* a hash column: only the rows a list's filter cannot rule out (1-3%) and the rows
  that cannot be checked go on to the full check (:func:`candidate_rows`); the
  values are tested where they lie in the decompressed pages, with no array built;
* the key and detail columns of flagged rows: only the pages that hold those rows are
  decompressed (:func:`read_rows`).

Scope: a top-level (not nested) BYTE_ARRAY or FIXED_LEN_BYTE_ARRAY column, PLAIN or
dictionary encoded, in data pages of either version, compressed with a codec Arrow
has. Anything else -- another encoding, a nested column, a page whose sizes do not
add up -- raises :class:`Unsupported`, and the caller reads that chunk with pyarrow
as before (which also gives a damaged file its usual error). Nothing here decides a
row is clean: the filter only says which rows the full check must see, and every row
of a chunk is accounted for (its pages' row counts must add up to the row group's).

The page header is Thrift's compact protocol; :func:`page_kernels.page_header` reads
just enough of it (compiled: in Python its walk took 0.14 s of CPU on the benchmark's
20M-row scan). Values never reach an exception or a log from this module.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import cramjam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datahygiene import page_kernels

# parquet Thrift enums
_DATA_PAGE, _INDEX_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 1, 2, 3
_PLAIN, _PLAIN_DICTIONARY, _RLE, _BIT_PACKED, _RLE_DICTIONARY = 0, 2, 3, 4, 8
_CODECS = {"UNCOMPRESSED": None, "SNAPPY": "snappy", "GZIP": "gzip", "BROTLI": "brotli",
           "ZSTD": "zstd", "LZ4_RAW": "lz4_raw"}
# Arrow types this reader builds, by the column's physical type
_BYTE_ARRAY_TYPES = (pa.string(), pa.large_string(), pa.binary(), pa.large_binary())


class Unsupported(Exception):
    """This chunk is read with pyarrow instead. Never shown to a user (it carries no
    value, only what the reader does not handle)."""


def enabled() -> bool:
    """Whether scans use this reader (``DATAHYGIENE_PAGE_READER=0`` turns it off:
    every column is then read with pyarrow; outputs are the same either way)."""
    return os.environ.get("DATAHYGIENE_PAGE_READER", "1") != "0"


@dataclass(frozen=True)
class Chunk:
    """Where one column chunk lies and how its pages are written."""

    start: int
    length: int
    codec: str | None  # Arrow's codec name, None when uncompressed
    width: int  # FIXED_LEN_BYTE_ARRAY's value width; 0 for BYTE_ARRAY
    nullable: bool  # max definition level 1 (else 0)
    rows: int
    type: pa.DataType  # the Arrow type pyarrow gives the column


def column_chunk(md: pq.FileMetaData, arrow_schema: pa.Schema, row_group: int, name: str) -> Chunk:
    """The chunk of top-level column ``name`` in ``row_group``, or Unsupported."""
    sch = md.schema
    field = arrow_schema.get_field_index(name)
    if field < 0:
        raise Unsupported("not a flat column")
    if md.num_columns == len(arrow_schema.names):
        # one leaf per field (the usual flat manifest): the field's own leaf, checked,
        # instead of a wrapper for every column of the file (img2dataset writes a dozen)
        col = sch.column(field)
        if col.path != name or col.name != name:
            raise Unsupported("not a flat column")
        j = field
    else:
        matches = [j for j in range(md.num_columns)
                   if sch.column(j).path == name and sch.column(j).name == name]
        if len(matches) != 1:
            raise Unsupported("not a flat column")
        j = matches[0]
        col = sch.column(j)
    atype = arrow_schema.field(name).type
    if col.max_repetition_level != 0 or col.max_definition_level > 1:
        raise Unsupported("nested column")
    if col.physical_type == "BYTE_ARRAY" and atype in _BYTE_ARRAY_TYPES:
        width = 0
    elif (col.physical_type == "FIXED_LEN_BYTE_ARRAY" and pa.types.is_fixed_size_binary(atype)
          and atype.byte_width == col.length > 0):
        width = col.length
    else:
        raise Unsupported("column type")
    rg = md.row_group(row_group)
    meta = rg.column(j)
    if meta.num_values != rg.num_rows:
        # a flat column has a value or a null per row: a footer that says otherwise is
        # damaged, and pyarrow (which reads num_values) gives its error, not our rows
        raise Unsupported("value count")
    if meta.compression not in _CODECS:
        raise Unsupported("codec")
    codec = _CODECS[meta.compression]
    if codec is not None and not pa.Codec.is_available(codec):
        raise Unsupported("codec")
    start = meta.data_page_offset
    if meta.has_dictionary_page and 0 < meta.dictionary_page_offset < start:
        start = meta.dictionary_page_offset
    if start <= 0 or meta.total_compressed_size <= 0:
        raise Unsupported("chunk location")
    return Chunk(start, meta.total_compressed_size, codec, width, col.max_definition_level == 1,
                 rg.num_rows, atype)


_SCRATCH = threading.local()


def read_chunk(fh: Any, chunk: Chunk) -> np.ndarray:
    """The chunk's bytes, with one read, into this thread's read buffer (valid until
    its next read_chunk): a fresh buffer per chunk cost its page faults every time,
    the allocator handing multi-megabyte blocks back to the kernel when freed. A
    chunk said to end past the file (a damaged footer) is refused before its size
    can size the buffer. ``fh`` may be the whole file's bytes, in a writable array
    (:func:`datahygiene.manifest.read_local_whole`): the chunk is then a view of them."""
    if isinstance(fh, np.ndarray):
        if chunk.start + chunk.length > fh.shape[0]:
            raise Unsupported("chunk beyond the file")
        return fh[chunk.start : chunk.start + chunk.length]
    size = _file_size(fh)
    if size is not None and chunk.start + chunk.length > size:
        raise Unsupported("chunk beyond the file")
    buf: np.ndarray | None = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.shape[0] < chunk.length:
        buf = np.empty(max(chunk.length, 1 << 20), dtype=np.uint8)
        _SCRATCH.buf = buf
    into = buf.data
    fd = _descriptor(fh)
    got = 0
    if fd is None:
        fh.seek(chunk.start)
    while got < chunk.length:
        n = (fh.readinto(into[got : chunk.length]) if fd is None
             else os.preadv(fd, [into[got : chunk.length]], chunk.start + got))
        if not n:
            raise Unsupported("short read")
        got += n
    return buf[: chunk.length]


def _descriptor(fh: Any) -> int | None:
    """A local file's descriptor, for positional reads (``pread``): they leave the
    handle's position alone, so a pyarrow reader sharing the handle is undisturbed."""
    if not hasattr(os, "preadv"):
        return None
    try:
        return int(fh.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation, pa.ArrowException):
        return None


def _file_size(fh: Any) -> int | None:
    """The size of an Arrow file (``size()``) or an fsspec one (``size``); None for a
    file object that does not say."""
    size = getattr(fh, "size", None)
    if callable(size):
        size = size()
    return size if isinstance(size, int) else None


# -- Thrift compact protocol -----------------------------------------------------------

def _varint(b: np.ndarray | bytes, p: int) -> tuple[int, int]:
    r = shift = 0
    while True:
        x = int(b[p])
        p += 1
        r |= (x & 0x7F) << shift
        if x < 0x80:
            return r, p
        shift += 7
        if shift > 63:
            raise Unsupported("bad varint")


# parquet's CompressionCodec values (UNCOMPRESSED ... LZ4_RAW)
KNOWN_CODECS = frozenset(range(8))
# parquet's physical types by pyarrow's name for them
PHYSICAL_TYPES = {"BOOLEAN": 0, "INT32": 1, "INT64": 2, "INT96": 3, "FLOAT": 4, "DOUBLE": 5,
                  "BYTE_ARRAY": 6, "FIXED_LEN_BYTE_ARRAY": 7}


def footer_chunks(footer: bytes, spans: np.ndarray | None = None) -> np.ndarray:
    """What a file's footer (its Thrift FileMetaData, without the trailing length and
    magic) says of each column chunk: one row per chunk, columns as
    ``page_kernels.CHUNK_*`` (row group, place in it, physical type, codec, level
    histogram lengths; -1 where absent); Unsupported when it does not parse.
    ``spans`` (4 int64), if given, gets where the footer's schema and key-value
    metadata lie in it (see :func:`datahygiene.page_kernels.footer_chunks`).

    pyarrow reads a footer without looking at these, but asking its metadata for a
    chunk whose codec is unknown, whose type contradicts the schema or whose level
    histograms do not fit the column ends the process (an untranslated C++
    exception): a footer is checked with this first (:func:`datahygiene.manifest.
    read_footer`). Compiled (:func:`datahygiene.page_kernels.footer_chunks`): walked
    in Python, a 1 KB footer took 0.14 ms, a tenth of a 2,000-file scan's time."""
    b = np.frombuffer(footer, dtype=np.uint8)
    # a chunk's metadata takes more than 8 bytes
    out = np.empty((max(16, b.shape[0] // 8), page_kernels.CHUNK_FIELDS), dtype=np.int64)
    count = page_kernels.footer_chunks(b, out, np.empty(4, np.int64) if spans is None else spans)
    if count < 0:
        raise Unsupported("footer")
    return out[:count]


@dataclass
class Page:
    """One data page's values, decoded as far as locating them."""

    first_row: int
    rows: int
    defined: np.ndarray | None  # bool per row; None when every row has a value
    buf: np.ndarray  # the bytes the values lie in
    count: int  # values (rows with one)
    # PLAIN BYTE_ARRAY: where the values start in ``buf`` (they must fill the rest of
    # it); their spans are found when asked for. -1 when the spans are known.
    plain_at: int = -1
    starts: np.ndarray | None = None  # int64, per value (defined rows in order)
    lens: np.ndarray | None = None  # int64, per value
    # dictionary encoded (``buf`` is the dictionary's; read through ``dictionary``,
    # never through :meth:`spans`): each value's entry in the chunk's dictionary, from
    # ``index_bytes[index_at:]`` at ``bit_width`` bits, decoded when asked for
    # (:meth:`entries`, or :func:`candidate_rows` in one pass with its filter)
    dictionary: Dictionary | None = None
    index_bytes: np.ndarray | None = None
    index_at: int = 0
    bit_width: int = 0
    _entries: np.ndarray | None = None

    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each value lies (a PLAIN page's)."""
        if self.starts is None or self.lens is None:
            self.starts, self.lens = _plain(self.buf, self.plain_at, self.count, 0)
        return self.starts, self.lens

    def entries(self) -> np.ndarray:
        """A dictionary page's entry per value (uint32), checked against the dictionary."""
        if self._entries is None:
            assert self.index_bytes is not None and self.dictionary is not None
            idx = np.empty(self.count, dtype=np.uint32)
            if self.count:
                _index_code(page_kernels.dictionary_indices(
                    self.index_bytes, self.index_at, self.index_bytes.shape[0], self.bit_width,
                    self.count, self.dictionary.count, idx))
            self._entries = idx
        return self._entries


def _index_code(code: int) -> int:
    """A dictionary index kernel's result, or Unsupported for its error codes."""
    if code == -1:
        raise Unsupported("dictionary indices")
    if code < 0:
        raise Unsupported("dictionary index")
    return code


@dataclass
class Dictionary:
    """A chunk's dictionary page: its ``count`` PLAIN entries, filling ``buf``, of
    ``width`` bytes each (0: BYTE_ARRAY, each after its 4-byte length). Where they lie
    is found when asked for (:meth:`spans`, which checks they fill the page); which of
    them a :class:`PageFilter` keeps is found once for all the chunk's pages
    (:meth:`kept`): each entry once, in order, instead of every row's value through
    its index."""

    buf: np.ndarray
    count: int
    width: int
    _spans: tuple[np.ndarray, np.ndarray] | None = None
    # the kept entries: for each entry its place among them (-1: not kept), and where
    # each kept one starts and how long it is
    _kept: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        if self._spans is None:
            self._spans = _plain(self.buf, 0, self.count, self.width)
        return self._spans

    def check(self) -> None:
        """Unsupported unless the entries fill the page (found already if either
        :meth:`spans` or :meth:`kept` ran)."""
        if self._kept is None:
            self.spans()

    def kept(self, select: PageFilter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._kept is None:
            if self.width:
                starts, lens = self.spans()
                keep = select.spans(self.buf, starts, lens)
                kept_starts, kept_lens = starts[keep], lens[keep]
            else:  # one compiled walk of the entries, as a PLAIN data page's
                got = select.plain(self.buf, 0, self.count)
                if got is None:
                    raise Unsupported("page size")
                keep, kept_starts = got
                kept_lens = _prefixed_lengths(self.buf, kept_starts)
            place = np.full(self.count, -1, dtype=np.int64)
            place[keep] = np.arange(keep.shape[0], dtype=np.int64)
            self._kept = place, kept_starts, kept_lens
        return self._kept


class PageFilter(Protocol):
    """Which values of a page the full check must see (see
    :meth:`datahygiene.signals.exact.SortedPrefixIndex.page_filter`)."""

    def spans(self, buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Indices of the values to keep."""

    def plain(self, buf: np.ndarray, pos: int, count: int) -> tuple[np.ndarray, np.ndarray] | None:
        """For ``count`` PLAIN BYTE_ARRAY values filling ``buf[pos:]``: the indices
        of those to keep and where each of them starts; None when the values do not
        fill it exactly."""


def _int32_le(b: np.ndarray, p: int) -> int:
    if p + 4 > b.shape[0]:
        raise Unsupported("page too short")
    return int(b[p : p + 4].view("<i4")[0])


def _levels(buf: np.ndarray, pos: int, end: int, n: int) -> np.ndarray | None:
    """``n`` definition levels (max level 1) as a bool array: defined or null; None
    when all are defined and the levels say so in one run (as writers put a column
    without nulls), which is found without decoding them."""
    with contextlib.suppress(IndexError, Unsupported):  # else decoded, and refused, below
        header, p = _varint(buf, pos)  # one RLE run of at least n ones: its header, then 1
        if p < end and not header & 1 and header >> 1 >= n and buf[p] == 1:
            return None
    out = np.empty(n, dtype=np.uint32)
    if page_kernels.hybrid(buf, pos, end, 1, n, out) < 0:
        raise Unsupported("definition levels")
    return out.astype(bool)


def _plain(buf: np.ndarray, pos: int, n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Spans of ``n`` PLAIN values that fill ``buf[pos:]`` exactly."""
    end = buf.shape[0]
    if width:
        if pos + n * width != end:
            raise Unsupported("page size")
        return pos + np.arange(n, dtype=np.int64) * width, np.full(n, width, dtype=np.int64)
    # every value takes its 4-byte length at least: a count that cannot fit (a
    # dictionary page's is not bounded by the row group's rows) never sizes an array
    if n > (end - pos) // 4:
        raise Unsupported("page size")
    starts = np.empty(n, dtype=np.int64)
    lens = np.empty(n, dtype=np.int64)
    if page_kernels.plain_spans(buf, pos, end, n, starts, lens) != end:
        raise Unsupported("page size")
    return starts, lens


class _Decompressor:
    """A page's bytes decompressed, of exactly the size its header gives.

    Snappy, the codec pyarrow writes by default (img2dataset's shards, LAION's
    metadata), goes through cramjam: Arrow's snappy decoder took 0.69-0.73 GB/s on
    pages of hex digests, which decompress little, against 1.34-1.43 GB/s (one thread,
    a 360 KB page of 10,000 MD5s; both release the GIL). Every other codec goes through
    Arrow, whose zstd was the faster of the two (1.81 against 1.49 GB/s)."""

    def __init__(self, codec: str | None) -> None:
        self._codec = pa.Codec(codec) if codec and codec != "snappy" else None
        self._snappy = codec == "snappy"

    def __call__(self, raw: np.ndarray, size: int) -> np.ndarray:
        if self._snappy:
            return _snappy(raw, size)
        if self._codec is None:
            if raw.shape[0] != size:
                raise Unsupported("page size")
            return raw
        try:
            out = self._codec.decompress(raw, decompressed_size=size)
        except (pa.ArrowException, OSError, ValueError):
            raise Unsupported("decompression") from None
        if out.size != size:
            raise Unsupported("page size")
        return np.frombuffer(out, dtype=np.uint8)


def _snappy(raw: np.ndarray, size: int) -> np.ndarray:
    src = np.ascontiguousarray(raw).data  # a memoryview of the page: no copy
    try:
        if cramjam.snappy.decompress_raw_len(src) != size:  # the length snappy's own header gives
            raise Unsupported("page size")
        out = np.empty(size, dtype=np.uint8)
        got = cramjam.snappy.decompress_raw_into(src, out.data)
    except cramjam.DecompressionError:
        raise Unsupported("decompression") from None
    if got != size:
        raise Unsupported("page size")
    return out


def iter_pages(data: np.ndarray, chunk: Chunk, wanted: Any = None) -> Iterator[Page]:
    """The chunk's data pages in order, with every row accounted for. ``wanted(first,
    rows)``: whether a page of rows ``first..first+rows`` is needed; pages it declines
    are skipped undecompressed (when a page says how many rows it holds: always for
    a flat column, as ``num_values`` counts nulls)."""
    decompress = _Decompressor(chunk.codec)
    dictionary: Dictionary | None = None
    p, end, row = 0, data.shape[0], 0
    fields = np.empty(page_kernels.PAGE_FIELDS, dtype=np.int64)
    while p < end and row < chunk.rows:
        q = int(page_kernels.page_header(data, p, fields))
        if q < 0:
            raise Unsupported("page header")
        h = [None if v == page_kernels.PAGE_ABSENT else v for v in fields.tolist()]
        kind, usize, csize = h[page_kernels.PAGE_TYPE], h[page_kernels.PAGE_USIZE], h[page_kernels.PAGE_CSIZE]
        if not (kind is not None and usize is not None and csize is not None
                and usize >= 0 and 0 <= csize <= end - q):
            raise Unsupported("page header")
        body = data[q : q + csize]
        p = q + csize
        if kind == _INDEX_PAGE:
            continue
        if kind == _DICTIONARY_PAGE:
            has = h[page_kernels.HAS_DICT] == 1
            # (encoding is a required field, as the level encodings below: a header
            # without one is damaged, and pyarrow refuses it)
            if not has or h[page_kernels.DICT_ENCODING] not in (_PLAIN, _PLAIN_DICTIONARY):
                raise Unsupported("dictionary encoding")
            n = h[page_kernels.DICT_VALUES]
            if not isinstance(n, int) or n < 0 or dictionary is not None:
                raise Unsupported("dictionary page")
            dict_buf = decompress(body, usize)
            # every entry takes its width, or its 4-byte length at least: a count that
            # cannot fit (it is not bounded by the row group's rows) sizes no array
            if n > dict_buf.shape[0] // (chunk.width or 4):
                raise Unsupported("page size")
            dictionary = Dictionary(dict_buf, n, chunk.width)
            continue
        if kind == _DATA_PAGE:
            if not (h[page_kernels.HAS_DATA] == 1 and h[page_kernels.DATA_DEF_ENCODING] in (_RLE, _BIT_PACKED)
                    and h[page_kernels.DATA_REP_ENCODING] in (_RLE, _BIT_PACKED)):
                raise Unsupported("page header")
            n, enc = h[page_kernels.DATA_VALUES], h[page_kernels.DATA_ENCODING]
            if not isinstance(n, int) or n <= 0 or row + n > chunk.rows:
                raise Unsupported("page rows")
            if wanted is not None and not wanted(row, n):
                row += n
                continue
            page = decompress(body, usize)
            pos = 0
            defined = None
            if chunk.nullable:
                if h[page_kernels.DATA_DEF_ENCODING] != _RLE:
                    raise Unsupported("level encoding")
                ln = _int32_le(page, 0)
                if ln < 0 or 4 + ln > page.shape[0]:
                    raise Unsupported("page size")
                defined = _levels(page, 4, 4 + ln, n)
                pos = 4 + ln
        elif kind == _DATA_PAGE_V2:
            if h[page_kernels.HAS_V2] != 1:
                raise Unsupported("page header")
            n, nulls, nrows, enc = h[page_kernels.V2_VALUES : page_kernels.V2_ENCODING + 1]
            dlen, rlen = h[page_kernels.V2_DEF_LENGTH], h[page_kernels.V2_REP_LENGTH]
            if not (isinstance(n, int) and n > 0 and nrows == n and isinstance(nulls, int)
                    and isinstance(dlen, int) and rlen == 0 and 0 <= dlen <= csize
                    and row + n <= chunk.rows):
                raise Unsupported("page header")
            if wanted is not None and not wanted(row, n):
                row += n
                continue
            defined = None
            if dlen:
                if not chunk.nullable:
                    raise Unsupported("levels")
                defined = _levels(body, 0, dlen, n)
                if (0 if defined is None else int(n - np.count_nonzero(defined))) != nulls:
                    raise Unsupported("null count")
            elif nulls:  # nulls without levels to place them
                raise Unsupported("levels")
            rest = body[dlen:]
            page = decompress(rest, usize - dlen) if h[page_kernels.V2_COMPRESSED] != 0 else rest
            pos = 0
        else:
            raise Unsupported("page type")
        k = n if defined is None else int(np.count_nonzero(defined))
        if defined is not None and k == n:
            defined = None
        if enc == _PLAIN and not chunk.width:
            yield Page(row, n, defined, page, k, plain_at=pos)
            row += n
            continue
        if enc == _PLAIN:
            starts, lens = _plain(page, pos, k, chunk.width)
            buf = page
        elif enc in (_PLAIN_DICTIONARY, _RLE_DICTIONARY):
            if dictionary is None:
                raise Unsupported("dictionary missing")
            bw = 0
            if k:
                if pos >= page.shape[0]:
                    raise Unsupported("page size")
                bw = int(page[pos])
                if bw > 32:
                    raise Unsupported("bit width")
            yield Page(row, n, defined, dictionary.buf, k, dictionary=dictionary, index_bytes=page,
                       index_at=pos + 1, bit_width=bw)
            row += n
            continue
        else:
            raise Unsupported("encoding")
        yield Page(row, n, defined, buf, k, starts=starts, lens=lens)
        row += n
    if row != chunk.rows:
        raise Unsupported("row count")
    if dictionary is not None:
        dictionary.check()  # one no page needed must still add up: pyarrow checks it


def build_array(pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                atype: pa.DataType) -> pa.Array:
    """An Arrow array of type ``atype`` from (buf, starts, lens, pick) pieces, in order;
    ``pick`` -1 is a null."""
    n = sum(int(pk.shape[0]) for _, _, _, pk in pieces)
    total = sum(int(ln[pk[pk >= 0]].sum()) for _, _, ln, pk in pieces)
    large = pa.types.is_large_string(atype) or pa.types.is_large_binary(atype)
    if not large and total >= 2**31 - 1:
        raise Unsupported("too large")
    offsets: np.ndarray = np.empty(n + 1, dtype=np.int64 if large else np.int32)
    out = np.empty(max(total, 1), dtype=np.uint8)
    valid = np.empty(n, dtype=bool)
    i = k = 0
    for buf, starts, lens, pick in pieces:
        m = int(pick.shape[0])
        got = page_kernels.gather_spans(buf, starts, lens, pick, offsets[i : i + m + 1],
                                        out[k:])
        view = offsets[i : i + m + 1]
        view += k
        valid[i : i + m] = pick >= 0
        i += m
        k += int(got)
    nulls = int(n - np.count_nonzero(valid))
    vbuf = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    if pa.types.is_fixed_size_binary(atype):
        width = atype.byte_width
        fixed = out[:total]
        if nulls:  # a null still takes its width of bytes in Arrow's layout
            fixed = np.zeros((n, width), dtype=np.uint8)
            fixed[valid] = out[:total].reshape(-1, width)
        return pa.Array.from_buffers(atype, n, [vbuf, pa.py_buffer(fixed)], null_count=nulls)
    return pa.Array.from_buffers(atype, n, [vbuf, pa.py_buffer(offsets), pa.py_buffer(out[:total])],
                                 null_count=nulls)


def read_rows(fh: Any, chunk: Chunk, rows: np.ndarray) -> pa.Array:
    """Values of the (ascending, unique, row-group-relative) ``rows``, decompressing
    only the pages that hold them."""
    data = read_chunk(fh, chunk)

    def wanted(first: int, count: int) -> bool:
        lo, hi = np.searchsorted(rows, [first, first + count])
        return bool(hi > lo)

    pieces = []
    for page in iter_pages(data, chunk, wanted):
        lo, hi = np.searchsorted(rows, [page.first_row, page.first_row + page.rows])
        local = rows[lo:hi] - page.first_row
        if page.defined is None:
            pick = local.astype(np.int64)
        else:
            value_no = np.cumsum(page.defined, dtype=np.int64) - 1
            pick = np.where(page.defined[local], value_no[local], -1)
        if page.dictionary is not None:
            entry = np.full(pick.shape[0], -1, dtype=np.int64)  # the dictionary's, or null
            has = pick >= 0
            entry[has] = page.entries()[pick[has]]
            pieces.append((page.buf, *page.dictionary.spans(), entry))
        else:
            pieces.append((page.buf, *page.spans(), pick))
    got = sum(int(p[3].shape[0]) for p in pieces)
    if got != rows.shape[0]:
        raise Unsupported("rows beyond the chunk")
    return build_array(pieces, chunk.type)


def _prefixed_lengths(buf: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Lengths of PLAIN BYTE_ARRAY values from the 4 bytes before each start."""
    return (buf[starts - 4].astype(np.int64) | (buf[starts - 3].astype(np.int64) << 8)
            | (buf[starts - 2].astype(np.int64) << 16) | (buf[starts - 1].astype(np.int64) << 24))


def candidate_rows(fh: Any, chunk: Chunk, select: PageFilter) -> tuple[np.ndarray, pa.Array]:
    """Rows of a hash column that the full check must see, and their values (nulls
    included, as nulls); ``select`` says which values to keep."""
    data = read_chunk(fh, chunk)
    rows: list[np.ndarray] = []
    pieces = []
    for page in iter_pages(data, chunk):
        if page.plain_at >= 0:  # decided while its values are walked
            got = select.plain(page.buf, page.plain_at, page.count)
            if got is None:
                raise Unsupported("page size")
            keep, starts = got
            lens = _prefixed_lengths(page.buf, starts)
            sub = np.arange(keep.shape[0], dtype=np.int64)  # (starts, lens) are the kept only
        elif page.dictionary is not None and page.index_bytes is not None:
            place, starts, lens = page.dictionary.kept(select)  # once per entry
            keep = np.empty(page.count, dtype=np.int64)
            sub = np.empty(page.count, dtype=np.int64)  # each kept value's entry among the kept
            if page.count:
                m = _index_code(page_kernels.dictionary_candidates(
                    page.index_bytes, page.index_at, page.index_bytes.shape[0], page.bit_width,
                    page.count, page.dictionary.count, place, keep, sub))
                keep, sub = keep[:m], sub[:m]
        else:
            starts, lens = page.spans()
            keep = select.spans(page.buf, starts, lens)
            sub = keep
        if page.defined is None:
            local, pick = keep, sub
        else:
            value_rows = np.flatnonzero(page.defined)
            nulls = np.flatnonzero(~page.defined)
            local = np.concatenate([value_rows[keep], nulls])
            pick = np.concatenate([sub, np.full(nulls.shape[0], -1, np.int64)])
            order = np.argsort(local, kind="stable")
            local, pick = local[order], pick[order]
        rows.append(local + page.first_row)
        pieces.append((page.buf, starts, lens, pick))
    all_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    return all_rows, build_array(pieces, chunk.type)
