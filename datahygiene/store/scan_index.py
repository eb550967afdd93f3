"""The scan index: a stored snapshot's lists as a scan loads them, ready to use.

Loading a snapshot means decrypting a parquet file, decoding every entry's strings,
checking the snapshot's fingerprint, parsing the values and sorting them: about 2 s
for 5,000,000 MD5 entries on the project's 2-core machine, every scan. The scan index
holds the result of all that -- per signal type, the canonical values sorted and
de-duplicated, and their entry references -- in a layout that loads with one
decryption and no parsing, sealed beside the snapshot (docs/list-store.md).

Layout (all integers little-endian)::

    MAGIC  u64 header length  header (JSON)  zero padding to 8  sections

The header names, per signal, where its sections are (offset from the start of the
sections, length): the values (rows x width bytes), the references (``int``: one
integer per row, the reference being ``prefix`` followed by the integer in decimal;
``arrow``: an Arrow IPC stream of one string column) and the categories (an Arrow IPC
stream, absent when no entry has one). Every section starts at a multiple of 8.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAGIC = b"datahygiene-scan-index-v1\0"
_ALIGN = 8


@dataclass
class IndexedList:
    """One signal's part of a scan index."""

    # the list's contents: never in a repr that may reach a log
    values: np.ndarray = field(repr=False)  # (rows, width) uint8: sorted, unique
    refs: pa.Array = field(repr=False)  # integers (spelled ref_prefix + N) or strings, aligned
    ref_prefix: str
    categories: pa.Array | None = field(repr=False)
    about: dict[str, Any]  # the header's record for this signal


def _ipc(array: pa.Array) -> bytes:
    sink = pa.BufferOutputStream()
    table = pa.table({"a": array})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _as_numbered(refs: pa.Array) -> tuple[str, np.ndarray] | None:
    """(prefix, numbers) when every reference is one prefix followed by a decimal
    number written without leading zeros (``line:17``, ``12345``): then the numbers
    stand for the strings, at a fraction of their size. None otherwise."""
    n = len(refs)
    if n == 0 or refs.null_count:
        return None
    first = refs[0].as_py()
    prefix = first.rstrip("0123456789")
    if len(first) - len(prefix) == 0:
        return None
    refs = refs.cast(pa.string())
    if not pc.all(pc.starts_with(refs, prefix)).as_py():
        return None
    rest = pc.utf8_slice_codeunits(refs, len(prefix))
    lengths = np.asarray(pc.utf8_length(rest).to_numpy(zero_copy_only=False))
    if (lengths < 1).any() or (lengths > 18).any() or not pc.all(pc.ascii_is_decimal(rest)).as_py():
        return None
    if pc.any(pc.and_(pc.starts_with(rest, "0"), pa.array(lengths > 1))).as_py():
        return None  # "007": its number would not give the string back
    return prefix, np.asarray(pc.cast(rest, pa.int64()).to_numpy(zero_copy_only=False))


def encode(header: dict[str, Any], lists: dict[str, IndexedList]) -> bytes:
    """The scan index of ``lists`` (signal -> its part); ``header`` holds what else the
    loader needs (snapshot fingerprint, signal counts, snapshot metadata)."""
    sections: list[bytes] = []
    at = 0

    def add(data: bytes) -> list[int]:
        nonlocal at
        place = [at, len(data)]
        pad = -len(data) % _ALIGN
        sections.append(data + b"\0" * pad)
        at += len(data) + pad
        return place

    signals: dict[str, Any] = {}
    for sig, part in lists.items():
        rows, width = part.values.shape
        rec: dict[str, Any] = dict(part.about, rows=rows, width=width)
        rec["values"] = add(np.ascontiguousarray(part.values).tobytes())
        numbered = (part.ref_prefix, np.asarray(part.refs.to_numpy(zero_copy_only=False))) \
            if pa.types.is_integer(part.refs.type) and not part.refs.null_count \
            else _as_numbered(part.refs)
        if numbered is not None:
            prefix, numbers = numbered
            dtype = "<i4" if not numbers.size or (numbers.min() >= 0 and numbers.max() < 2**31) else "<i8"
            rec["refs"] = {"kind": "int", "prefix": prefix, "dtype": dtype,
                           "at": add(numbers.astype(dtype).tobytes())}
        else:
            rec["refs"] = {"kind": "arrow", "at": add(_ipc(part.refs.cast(pa.string())))}
        cats = part.categories
        rec["categories"] = (None if cats is None or cats.null_count == len(cats)
                             else {"at": add(_ipc(cats.cast(pa.string())))})
        signals[sig] = rec
    head = json.dumps({**header, "signals": signals}, sort_keys=True).encode()
    start = len(MAGIC) + 8 + len(head)
    return b"".join([MAGIC, struct.pack("<Q", len(head)), head, b"\0" * (-start % _ALIGN), *sections])


class ScanIndexError(ValueError):
    """The bytes are not a scan index this version reads."""


def decode(buf: np.ndarray) -> tuple[dict[str, Any], dict[str, IndexedList]]:
    """Read a scan index held in ``buf`` (uint8). Values and integer references are
    views of ``buf``, not copies: writable where ``buf`` is."""
    raw = np.ascontiguousarray(buf).data
    if bytes(raw[: len(MAGIC)]) != MAGIC or len(buf) < len(MAGIC) + 8:
        raise ScanIndexError("not a scan index of this version")
    (hlen,) = struct.unpack("<Q", bytes(raw[len(MAGIC): len(MAGIC) + 8]))
    start = len(MAGIC) + 8 + hlen
    if start > len(buf):
        raise ScanIndexError("truncated header")
    try:
        header = json.loads(bytes(raw[len(MAGIC) + 8: start]))
    except ValueError:
        raise ScanIndexError("unreadable header") from None
    base = start + (-start % _ALIGN)

    def section(place: list[int]) -> np.ndarray:
        lo, n = base + int(place[0]), int(place[1])
        if lo + n > len(buf):
            raise ScanIndexError("a section runs past the end")
        return buf[lo: lo + n]

    def arrow(place: list[int]) -> pa.Array:
        table = pa.ipc.open_stream(pa.py_buffer(section(place))).read_all()
        return table.column(0).combine_chunks()

    out: dict[str, IndexedList] = {}
    for sig, rec in header.get("signals", {}).items():
        rows, width = int(rec["rows"]), int(rec["width"])
        values = section(rec["values"])
        if values.shape[0] != rows * width:
            raise ScanIndexError(f"{sig}: values of the wrong size")
        ref = rec["refs"]
        if ref["kind"] == "int":
            refs: pa.Array = pa.array(section(ref["at"]).view(ref["dtype"]))
            prefix = str(ref["prefix"])
        else:
            refs, prefix = arrow(ref["at"]), ""
        cats = arrow(rec["categories"]["at"]) if rec.get("categories") else None
        if len(refs) != rows or (cats is not None and len(cats) != rows):
            raise ScanIndexError(f"{sig}: references of the wrong length")
        out[sig] = IndexedList(values.reshape(rows, width), refs, prefix, cats, rec)
    return header, out
