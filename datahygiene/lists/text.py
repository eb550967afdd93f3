"""Reading plain-text lists: one entry per line, ``#`` comments, blank lines.

The file is read, never memory-mapped: a list replaced in place while it loads (a
partner's download rewriting it, ``cp`` over it) would end a mapped read with a bus
error. Here a file that changes while it is read stops the load with an error naming
it. The common case -- every line a hex digest, a comment or blank -- is parsed by
one compiled pass (datahygiene/kernels.py) per thread, each thread reading its part
of the file a block at a time into one buffer it reuses: no copy of the whole file is
held. Anything else goes to the general parser, which reads and parses the file in
pieces of 8 MiB and names the line at fault.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene import kernels
from datahygiene.errors import ListError
from datahygiene.signals.base import Normalized, no_reasons

CHUNK_BYTES = 8 << 20  # a piece of the general parser; the least a fast-path thread takes
READ_BLOCK = 8 << 20  # what a fast-path thread reads at a time
_LOOK = 1 << 16  # how far a piece boundary looks at a time for the end of its line

CHANGED = ("the file changed while it was read; replace a list by renaming a new file over it, "
           "then run again")


def _lines_of(buf: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Lines of a byte buffer, without line endings, as one string array; plus the
    indices of lines holding a ``#`` and of lines holding a byte that may be whitespace.

    Built with numpy from the newline positions (no per-line Python): the bytes minus
    line ends (LF, CRLF) become the data buffer and the per-line byte counts its offsets.
    Knowing which few lines hold comments or blanks lets the caller run the string
    kernels on those lines alone."""
    if not buf.size:
        empty = np.zeros(0, dtype=np.int64)
        return pa.array([], type=pa.large_string()), empty, empty
    newline = buf == 10
    # a CR is part of the line end only before its LF (or at the end): one within a line
    # is kept, so the value is a bad entry, as in a manifest column (dropping it joined
    # the two halves into an entry nobody wrote)
    sep = newline.copy()
    sep[:-1] |= (buf[:-1] == 13) & newline[1:]
    sep[-1] |= buf[-1] == 13
    sep_at = np.flatnonzero(sep)
    ends = np.flatnonzero(newline)
    if not newline[-1]:
        ends = np.append(ends, len(buf) - 1)
    # bytes kept up to and including each line end = position + 1 - separators so far
    kept = ends + 1 - np.searchsorted(sep_at, ends, side="right")
    offsets = np.concatenate(([0], kept)).astype(np.int64)
    content = buf[~sep] if sep_at.size else buf
    lines = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(content))
    hashes = np.unique(np.searchsorted(ends, np.flatnonzero(buf == 35)))
    # any byte that may be whitespace: ASCII blanks, a CR kept within a line, and every
    # non-ASCII byte (a no-break space, U+3000): a line of them alone is blank, as is
    # a line of spaces, whichever parser reads the file
    blanks = np.unique(np.searchsorted(ends, np.flatnonzero(
        (buf == 32) | (buf == 9) | (buf == 11) | (buf == 12) | ((buf == 13) & ~sep)
        | (buf >= 128))))
    return lines, hashes, blanks


def _clean_lines(lines: pa.Array, hashes: np.ndarray, blanks: np.ndarray) -> pa.Array:
    """Strip ``#`` comments and surrounding blanks, touching only the lines that have them."""
    fix = np.union1d(hashes, blanks)
    if fix.size == 0:
        return lines
    part = lines.take(pa.array(fix))
    if hashes.size:
        part = pc.replace_substring_regex(part, pattern=r"#.*$", replacement="")
    part = pc.utf8_trim_whitespace(part)
    mask = np.zeros(len(lines), dtype=bool)
    mask[fix] = True
    return pc.replace_with_mask(lines, pa.array(mask), part)


def first_non_utf8_line(path: str | Path) -> str:
    """``"line N: "`` for the first line that is not UTF-8 (the error path only)."""
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return f"line {n}: "
    return ""


class _TextFile:
    """An open list file, read at offsets; knows what it looked like when opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise ListError(f"{path}: cannot read ({exc.strerror})") from None
        self._opened = os.fstat(self.fd)
        self.size = self._opened.st_size

    def close(self) -> None:
        os.close(self.fd)

    def read_into(self, buf: memoryview, offset: int) -> None:
        """Fill ``buf`` from ``offset``; a file that ends first has changed."""
        done = 0
        while done < len(buf):
            try:
                got = os.preadv(self.fd, [buf[done:]], offset + done)
            except OSError as exc:
                raise ListError(f"{self.path}: cannot read ({exc.strerror})") from None
            if got == 0:
                raise ListError(f"{self.path}: {CHANGED}")
            done += got

    def read(self, offset: int, size: int) -> np.ndarray:
        out = bytearray(size)
        self.read_into(memoryview(out), offset)
        return np.frombuffer(out, dtype=np.uint8)

    def check_unchanged(self) -> None:
        now = os.fstat(self.fd)
        if (now.st_size, now.st_mtime_ns) != (self._opened.st_size, self._opened.st_mtime_ns):
            raise ListError(f"{self.path}: {CHANGED}")

    def classic_mac(self) -> bool:
        """No LF anywhere, and a CR before the last byte: old Mac OS line ends. Read as
        one line, the file would be all bad entries, or one comment line and an empty
        list. Stops at the first LF, which almost every list has in its first line."""
        cr, offset = False, 0
        while offset < self.size:
            block = self.read(offset, min(_LOOK, self.size - offset))
            if (block == 10).any():
                return False
            cr = cr or bool((block[: self.size - 1 - offset] == 13).any())
            offset += block.shape[0]
        return cr

    def line_end_after(self, at: int) -> int:
        """The offset just after the first LF at or after ``at`` (the size if none)."""
        while at < self.size:
            block = self.read(at, min(_LOOK, self.size - at))
            nl = np.flatnonzero(block == 10)
            if nl.size:
                return at + int(nl[0]) + 1
            at += block.shape[0]
        return self.size

    def pieces(self, start: int, size: int) -> list[tuple[int, int]]:
        """``[start, file size)`` in pieces of about ``size`` bytes, each ending after an LF."""
        bounds = []
        while start < self.size:
            stop = self.line_end_after(start + size) if start + size < self.size else self.size
            bounds.append((start, stop))
            start = stop
        return bounds


def parse_text(path: Path, sig: Any, threads: int) -> tuple[Normalized, np.ndarray, dict[str, Any]]:
    """Parse a plain-text list: the parsed entries of the non-blank lines, their
    1-based line numbers, and statistics."""
    f = _TextFile(path)
    try:
        if f.classic_mac():
            raise ListError(f"{path}: the file uses CR line endings (classic Mac OS), which are not "
                            "line breaks here; convert it to LF or CRLF line endings")
        start = 3 if f.size >= 3 and f.read(0, 3).tobytes() == b"\xef\xbb\xbf" else 0  # a BOM
        parsed = None
        if getattr(sig, "hex_entries", False):
            # one piece per thread
            size = max(CHUNK_BYTES, -(-(f.size - start) // max(1, threads)))
            parsed = _parse_hex_text(f, f.pieces(start, size), sig.width, threads)
        if parsed is None:
            parsed = _parse_general(f, f.pieces(start, CHUNK_BYTES), sig, threads)
        f.check_unchanged()
        return parsed
    finally:
        f.close()


def _parse_general(f: _TextFile, bounds: list[tuple[int, int]], sig: Any, threads: int
                   ) -> tuple[Normalized, np.ndarray, dict[str, Any]]:
    """Any text list, in ~8 MiB pieces on a thread pool, each read when it is parsed.

    Pieces keep every temporary small enough to be recycled by the allocator (large
    fresh allocations cost page faults, which dominated loading a 5M-entry list), and
    numpy and Arrow release the GIL, so pieces parse in parallel."""
    path = f.path

    def piece(bounds: tuple[int, int]) -> tuple[Normalized, np.ndarray, int]:
        lines, hashes, blanks = _lines_of(f.read(bounds[0], bounds[1] - bounds[0]))
        try:
            lines.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise ListError(f"{path}: {first_non_utf8_line(path)}not UTF-8 text; fix the encoding "
                            "or use a parquet list") from exc
        text = _clean_lines(lines, hashes, blanks)
        keep = np.asarray(pc.binary_length(text).to_numpy(zero_copy_only=False)) > 0
        return sig.parse_entries(text.filter(pa.array(keep))), np.flatnonzero(keep), len(lines)

    if threads > 1 and len(bounds) > 1:
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(piece, bounds))
    else:
        parts = [piece(b) for b in bounds]
    line_base = np.cumsum([0] + [p[2] for p in parts])
    norm = Normalized(
        values=np.concatenate([p[0].values for p in parts]) if parts
        else np.zeros((0, sig.width), np.uint8),
        valid=np.concatenate([p[0].valid for p in parts]) if parts else np.zeros(0, bool),
        reasons=(no_reasons(sum(len(p[0]) for p in parts))
                 if all(p[0].valid.all() for p in parts)
                 else np.concatenate([np.asarray(p[0].reasons) for p in parts])),
    )
    ltype = np.int32 if int(line_base[-1]) < 2**31 else np.int64
    line_no = (np.concatenate([(p[1] + base + 1).astype(ltype)
                               for p, base in zip(parts, line_base, strict=False)])
               if parts else np.zeros(0, ltype))
    total = int(line_base[-1])
    return norm, line_no, {"lines": total, "comment_or_blank_lines": total - int(line_no.shape[0])}


def _parse_hex_text(f: _TextFile, bounds: list[tuple[int, int]], width: int, threads: int
                    ) -> tuple[Normalized, np.ndarray, dict[str, Any]] | None:
    """The common case of a plain-text list -- every line a hex digest, a comment or
    blank -- in one compiled pass per piece, pieces in parallel, each read a block at a
    time. ``None`` when any line is anything else, or longer than a block: the general
    parser then reads the file and names the fault exactly as it always has."""

    # One output for all pieces, each piece writing its own region (no concatenation:
    # fresh memory costs page faults, and a copy would hold the list twice). A block
    # ends after an LF, so each holds at most one entry per 2 * width + 1 bytes, plus
    # one; a piece's blocks, at most one more each.
    block = READ_BLOCK
    caps = np.array([(b1 - b0) // (2 * width + 1) + (b1 - b0) // block + 2 for b0, b1 in bounds],
                    dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(caps)[:-1])).astype(np.int64)
    values = np.empty((int(caps.sum()), width), dtype=np.uint8)
    # a file has at most one line per byte, plus one
    lines: np.ndarray = np.empty(values.shape[0], dtype=np.int32 if f.size < 2**31 - 1 else np.int64)

    def piece(j: int) -> tuple[int, int, bool]:
        """(entries, lines, whether every line was a digest, comment or blank)."""
        b0, b1 = bounds[j]
        lo, hi = int(starts[j]), int(starts[j] + caps[j])
        # a block, and the start of a line the last block cut off (a line longer than
        # _LOOK leaves less room for the next block, which may then hold no line end:
        # such a line is no digest, and the general parser reads the file)
        raw = bytearray(min(block + _LOOK, b1 - b0))
        buf = np.frombuffer(raw, dtype=np.uint8)
        k, seen, carried, at = 0, 0, 0, b0
        while at < b1:
            want = min(block, b1 - at, len(raw) - carried)
            f.read_into(memoryview(raw)[carried : carried + want], at)
            at += want
            n = carried + want
            end = n if at == b1 else raw.rfind(b"\n", carried, n) + 1
            if end == 0:
                return k, seen, False  # a line longer than a block: not a digest
            got, count, bad = kernels.parse_hex_lines(buf[:end], width, kernels.HEX_PAIRS,
                                                      values[lo + k : hi], lines[lo + k : hi])
            if bad >= 0:
                return k, seen, False
            if seen:
                lines[lo + k : lo + k + got] += seen
            k, seen = k + int(got), seen + int(count)
            carried = n - end
            raw[:carried] = raw[end:n]
        return k, seen, True

    if threads > 1 and len(bounds) > 1:
        with ThreadPoolExecutor(min(threads, len(bounds))) as pool:
            parts = list(pool.map(piece, range(len(bounds))))
    else:
        parts = [piece(j) for j in range(len(bounds))]
    if not all(p[2] for p in parts):
        return None
    counts = np.array([p[0] for p in parts], dtype=np.int64)
    base = np.cumsum([0] + [p[1] for p in parts])
    for j in range(1, len(parts)):  # piece-local line numbers -> file line numbers
        lines[starts[j] : starts[j] + counts[j]] += base[j]
    n = int(kernels.compact_rows(values, lines, starts, counts)) if len(parts) else 0
    total = int(base[-1])
    norm = Normalized(values[:n], np.ones(n, dtype=bool), no_reasons(n))
    return norm, lines[:n], {"lines": total, "comment_or_blank_lines": total - n}
