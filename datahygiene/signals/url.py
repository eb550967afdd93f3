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

The normalisation runs as vectorised Arrow string kernels; only the digest itself
is a per-row ``hashlib`` call (there is no vectorised MD5 in Arrow or numpy), which
is why URL lists cost more per row than content-hash lists.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.errors import ConfigError
from datahygiene.signals.base import ColumnMatch, Normalized, SignalIndex, SignalType
from datahygiene.signals.exact import SortedPrefixIndex, match_fixed_column
from datahygiene.signals.hexcodec import NULL, normalize_fixed

_SPLIT = r"^(?P<auth>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*)(?P<rest>.*)$"


def normalize_urls(urls: pa.Array, mode: str = "basic") -> pa.Array:
    """Apply the documented URL normalisation to a string array (nulls stay null)."""
    if mode == "none":
        return urls
    if mode != "basic":
        raise ConfigError(f"unknown url normalisation {mode!r}; use 'basic' or 'none'")
    u = pc.utf8_trim_whitespace(urls)
    u = pc.replace_substring_regex(u, pattern=r"#.*$", replacement="")
    parts = pc.extract_regex(u, pattern=_SPLIT)
    # extract_regex yields null for rows without a scheme://authority: keep those as they are.
    auth = pc.struct_field(parts, [0])
    rest = pc.struct_field(parts, [1])
    auth = pc.utf8_lower(auth)
    auth = pc.replace_substring_regex(auth, pattern=r"^(http://[^/?#]*?):80$", replacement=r"\1")
    auth = pc.replace_substring_regex(auth, pattern=r"^(https://[^/?#]*?):443$", replacement=r"\1")
    joined = pc.binary_join_element_wise(auth, rest, "")
    return pc.if_else(pc.is_null(parts), u, joined)


class URLDigest(SignalType):
    """Digest of a normalised URL. Reads the ``url`` column by default.

    A column may also already hold URL digests (hex or binary): set option
    ``precomputed = true`` and the values are parsed like any fixed-width hash.
    """

    algorithm: ClassVar[str]
    default_column = "url"
    hex_entries = True

    def normalize(self, column: pa.Array | pa.ChunkedArray) -> Normalized:
        if self.options.get("precomputed"):
            return normalize_fixed(column, self.width)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        n = len(column)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = column.cast(pa.string())
        urls = normalize_urls(column, str(self.options.get("normalization", "basic")))
        values = np.zeros((n, self.width), dtype=np.uint8)
        valid = ~np.asarray(urls.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        empty = np.asarray(pc.fill_null(pc.equal(urls, ""), False).to_numpy(zero_copy_only=False))
        valid &= ~empty
        reasons = np.full(n, None, dtype=object)
        reasons[~valid] = NULL
        new = hashlib.new
        alg = self.algorithm
        rows = np.flatnonzero(valid)
        if rows.size:
            texts = urls.take(pa.array(rows)).to_pylist()
            digests = b"".join(new(alg, t.encode("utf-8")).digest() for t in texts)
            values[rows] = np.frombuffer(digests, dtype=np.uint8).reshape(-1, self.width)
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
