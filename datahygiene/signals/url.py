"""URL digests: the MD5/SHA-1/SHA-256 of a row's URL after normalisation.

Some partner lists carry digests of URLs rather than of content (LAION's 2024
clean-up matched both). Both sides must normalise the same way, so the rule is
fixed and documented (docs/list-formats.md#url-digests):

``basic`` (default)
    1. strip surrounding whitespace;
    2. drop a ``#fragment``;
    3. lower-case the scheme and host;
    4. drop a default port (``:80`` for http, ``:443`` for https).
    Path and query are kept byte for byte (servers treat them case-sensitively).
``none``
    digest the URL text exactly as stored.

The rule is defined by the Arrow string kernels in :func:`normalize_urls`. A scan
runs a compiled pass instead (``kernels.normalize_urls_basic``: 25-100 times faster)
on every row whose text is printable ASCII once trimmed -- nearly every URL -- and
hands the others (non-ASCII text, inner spaces or control characters) to the Arrow
kernels; tests check both give the same bytes. The digests are compiled too
(:mod:`datahygiene.digests`, checked against ``hashlib``): a per-row ``hashlib`` call
held the GIL, so threads could not share the hashing. URL lists still cost more per
row than content-hash lists: every row is hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene import digests, kernels
from datahygiene.errors import ConfigError
from datahygiene.signals.base import ColumnMatch, Normalized, SignalIndex, SignalType
from datahygiene.signals.exact import SortedPrefixIndex, match_fixed_column
from datahygiene.signals.hexcodec import MALFORMED, NULL, normalize_fixed, string_buffers
from datahygiene.utf8 import decode_utf8

_SPLIT = r"(?s)^(?P<auth>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)(?P<rest>.*)$"


def normalize_urls(urls: pa.Array, mode: str = "basic") -> pa.Array:
    """Apply the documented URL normalisation to a string array (nulls stay null)."""
    if mode == "none":
        return urls
    if mode != "basic":
        raise ConfigError(f"unknown url normalisation {mode!r}; use 'basic' or 'none'")
    u = pc.utf8_trim_whitespace(urls)
    # (?s): "." matches a line feed too; a URL may hold one (it is kept, as any byte of
    # the path), and without it the fragment and the host's case were left as they were
    u = pc.replace_substring_regex(u, pattern=r"(?s)#.*$", replacement="")
    parts = pc.extract_regex(u, pattern=_SPLIT)
    # extract_regex yields null for rows without a scheme://authority: keep those as they are.
    auth = pc.struct_field(parts, [0])
    rest = pc.struct_field(parts, [1])
    auth = pc.utf8_lower(auth)
    auth = pc.replace_substring_regex(auth, pattern=r"^(http://[^/?#]*?):80$", replacement=r"\1")
    auth = pc.replace_substring_regex(auth, pattern=r"^(https://[^/?#]*?):443$", replacement=r"\1")
    joined = pc.binary_join_element_wise(auth, rest, pa.scalar("", type=u.type))  # large_string too
    return pc.if_else(pc.is_null(parts), u, joined)


def _as_text(column: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """A URL column as a string or large_string array, and which rows hold a value that
    is not text (``None``: none do). Such rows come back null and are reported
    ``malformed``: bytes that are not UTF-8, or a column of numbers, lists or structs
    -- never digested as whatever text a cast would give (an int64 ``1`` as ``"1"``),
    and never an error that stops the scan."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return column, None
    if pa.types.is_string_view(t):
        return column.cast(pa.large_string()), None
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t) \
            or pa.types.is_fixed_size_binary(t):
        try:
            return column.cast(pa.large_string()), None
        except pa.ArrowInvalid:  # some value is not UTF-8: those rows alone are malformed
            return decode_utf8(column)
    bad = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return pa.nulls(len(column), pa.string()), bad


_ALGORITHMS = {"md5": 0, "sha1": 1, "sha256": 2}  # datahygiene.digests.digest_rows
_SPACE = np.zeros(256, dtype=np.bool_)  # the ASCII bytes Arrow's utf8_trim_whitespace trims
for _c in range(128):
    _SPACE[_c] = pc.utf8_trim_whitespace(pa.array([chr(_c) + "a" + chr(_c)]))[0].as_py() == "a"


def _normalized_bytes(column: pa.Array, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's normalised URL as bytes: ``(data, offsets, status)`` with status 0
    (digest ``data[offsets[i]:offsets[i + 1]]``), 1 (null) or 2 (left to
    :func:`normalize_urls`: text that is not printable ASCII)."""
    n = len(column)
    data, offsets, validity = string_buffers(column)
    offsets = offsets.astype(np.int64)
    status = np.zeros(n, dtype=np.uint8)
    if mode == "none":
        if column.null_count:
            status[np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = 1
        return data, offsets, status
    if mode != "basic":
        raise ConfigError(f"unknown url normalisation {mode!r}; use 'basic' or 'none'")
    out = np.empty(max(1, int(offsets[-1] - offsets[0]) if n else 1), dtype=np.uint8)
    out_offsets = np.empty(n + 1, dtype=np.int64)
    kernels.normalize_urls_basic(data, offsets, validity, column.offset, _SPACE, out,
                                 out_offsets, status)
    return out, out_offsets, status


class URLDigest(SignalType):
    """Digest of a normalised URL. Reads the ``url`` column by default.

    A column may also already hold URL digests (hex or binary): set option
    ``precomputed = true`` and the values are parsed like any fixed-width hash.
    """

    algorithm: ClassVar[str]
    default_column = "url"
    hex_entries = True
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "normalization": str, "precomputed": bool}
    option_defaults: ClassVar[Mapping[str, Any]] = {"normalization": "basic", "precomputed": False}

    def check_options(self) -> None:
        super().check_options()
        mode = self.options.get("normalization", "basic")
        if mode not in ("basic", "none"):
            raise ConfigError(f"[scan.options.{self.name}]: unknown url normalisation {mode!r}; "
                              "use 'basic' or 'none'")

    def normalize(self, column: pa.Array | pa.ChunkedArray) -> Normalized:
        if self.options.get("precomputed"):
            return normalize_fixed(column, self.width)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        n = len(column)
        column, malformed = _as_text(column)
        mode = str(self.options.get("normalization", "basic"))
        if mode == "none" and malformed is None:
            # digested as stored, so no Arrow kernel reads the text: check here that it is
            # UTF-8 (a string column need not be), as the cast does for a binary column
            column, malformed = _as_text(column.cast(pa.large_binary()))
        data, offsets, status = _normalized_bytes(column, mode)
        values = np.zeros((n, self.width), dtype=np.uint8)
        lengths = np.diff(offsets)
        valid = (status == 0) & (lengths > 0)  # null or empty: nothing to digest
        reasons = np.full(n, None, dtype=object)
        digest = getattr(hashlib, self.algorithm)
        rows = np.flatnonzero(valid)
        if rows.size:  # compiled, without the GIL: the engine's threads hash in parallel
            out = np.empty((rows.shape[0], self.width), dtype=np.uint8)
            digests.digest_rows(_ALGORITHMS[self.algorithm], data, offsets, rows, out)
            values[rows] = out
        slow = np.flatnonzero(status == 2)
        if slow.size:  # rows the compiled pass leaves to the Arrow kernels that define the rule
            texts = column.take(pa.array(slow))
            try:
                urls = normalize_urls(texts, mode)
            except pa.ArrowInvalid:
                # a string column need not hold UTF-8 (parquet writers do not check):
                # those rows alone are malformed, as in a binary column
                texts, bad = _as_text(texts.cast(pa.large_binary()))
                urls = normalize_urls(texts, mode)
                if bad is not None:
                    malformed = np.zeros(n, dtype=bool) if malformed is None else malformed
                    malformed[slow[bad]] = True
            for row, text in zip(slow.tolist(), urls.to_pylist(), strict=True):
                if text:
                    values[row] = np.frombuffer(digest(text.encode("utf-8")).digest(), np.uint8)
                    valid[row] = True
        reasons[~valid] = NULL
        if malformed is not None:
            reasons[malformed] = MALFORMED
        return Normalized(values, valid, reasons)

    def match_column(self, column: pa.Array | pa.ChunkedArray,
                     index: SignalIndex) -> ColumnMatch | None:
        if self.options.get("precomputed"):
            return match_fixed_column(column, self.width, index)
        return None

    def parse_entries(self, column: pa.Array | pa.ChunkedArray) -> Normalized:
        """List entries are digests (hex or binary), not URLs."""
        return normalize_fixed(column, self.width)

    def build_index(self, values: np.ndarray) -> SignalIndex:
        return SortedPrefixIndex(values)


def _example(alg: str) -> dict[str, list[object]]:
    h = hashlib.new(alg, b"https://example.invalid/synthetic.jpg").hexdigest()
    return {h: [h, h.upper()]}


class URLMD5(URLDigest):
    name = "url-md5"
    width = 16
    algorithm = "md5"
    examples = _example("md5")
    invalid_examples = ["0" * 31, "x" * 32, None]


class URLSHA1(URLDigest):
    name = "url-sha1"
    width = 20
    algorithm = "sha1"
    examples = _example("sha1")
    invalid_examples = ["0" * 39, None]


class URLSHA256(URLDigest):
    name = "url-sha256"
    width = 32
    algorithm = "sha256"
    examples = _example("sha256")
    invalid_examples = ["0" * 63, None]
