"""The ``pdq`` signal type: 256-bit perceptual hashes compared by Hamming distance.

Values: 64 hex characters (any case, surrounding whitespace), 32 raw bytes, or a
struct column ``{<hash field>, quality}`` -- the form the scan builds when a quality
column is configured (option ``quality_column``) and the form computed hashes take.

Why low quality fails closed: PDQ's quality (0-100) measures how much gradient the
image has; below 50 (a near-uniform or tiny image) the hash is dominated by noise and
matches too much or too little, so Meta's tools do not match such hashes. A row whose
hash has quality below ``min_quality`` (default 50) is ``unverified`` with reason
``low-quality`` -- it could not be checked reliably -- unless the curator sets
``low_quality = "match"`` (option), which matches it anyway.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.errors import ConfigError
from datahygiene.signals.base import BytesHasher, Normalized, SignalIndex, SignalType
from datahygiene.signals.hexcodec import normalize_fixed
from datahygiene_pdq.hashing import DEFAULT_MAX_SIDE, HashConfig, HashError, pdq_bytes
from datahygiene_pdq.index import BruteForceIndex, MIHIndex, as_words, hamming

HASH_FIELDS = ("value", "hash", "pdq")
LOW_QUALITY = "low-quality"
DEFAULT_MIN_QUALITY = 50

_EXAMPLE = "f8f8f0cce0f4e84d0e370a22028f67f0b36e2ed596623e1d33e6339c4e9c9b22"  # benign bridge photo
_RANDOM = "6a09e667f3bcc908bb67ae8584caa73b3c6ef372fe94f82ba54ff53a5f1d36f1"  # sqrt-of-primes bits


class PDQ(SignalType, BytesHasher):
    """PDQ: match when the Hamming distance is at most the threshold (default 31).

    Options (``[scan.options.pdq]`` or ``registry.signal("pdq", options=...)``):
    ``min_quality`` (50), ``low_quality`` (``"unverified"`` or ``"match"``),
    ``quality_column`` (a manifest column of precomputed qualities), ``max_side``,
    ``draft``, ``max_pixels``, ``orientation``, ``frames`` (hashing from bytes; see
    hashing.py).
    """

    name = "pdq"
    quality_struct = True  # computed hashes arrive as {value, quality} (see content.py)
    width = 32
    default_column = "pdq"
    exact = False
    default_threshold = 31
    option_types: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "min_quality": int, "low_quality": str, "quality_column": str, "max_side": int,
        "draft": bool, "max_pixels": int, "orientation": str, "frames": str}
    option_defaults: ClassVar[dict[str, Any]] = {
        "min_quality": DEFAULT_MIN_QUALITY, "low_quality": "unverified", "max_side": DEFAULT_MAX_SIDE,
        "draft": True, "orientation": "ignore", "frames": "unverified"}
    examples: ClassVar[dict[str, list[Any]]] = {
        _EXAMPLE: [_EXAMPLE, _EXAMPLE.upper(), f"  {_EXAMPLE}\n", bytes.fromhex(_EXAMPLE)],
        _RANDOM: [_RANDOM, _RANDOM.upper(), bytes.fromhex(_RANDOM)],
    }
    invalid_examples: ClassVar[list[Any]] = ["0" * 63, "x" * 64, "0" * 65, b"\x00" * 31, None]

    # --- configuration -------------------------------------------------------------
    def check_options(self) -> None:
        """Values too: a bad one used to surface per image (every row 'decode-error',
        exit 0) or as a traceback."""
        super().check_options()
        try:
            self.low_quality_matches  # noqa: B018 - raises on a value it does not know
            HashConfig.from_options(self.options)
        except ValueError as exc:
            raise ConfigError(f"[scan.options.pdq]: {str(exc).removeprefix('pdq option ')}") from None
        q = self.options.get("min_quality", DEFAULT_MIN_QUALITY)
        if not 0 <= q <= 100:
            raise ConfigError("[scan.options.pdq]: min_quality must be between 0 and 100")
        mp = self.options.get("max_pixels")
        if mp is not None and mp < 1:
            raise ConfigError("[scan.options.pdq]: max_pixels must be positive")

    @property
    def min_quality(self) -> int:
        return int(self.options.get("min_quality", DEFAULT_MIN_QUALITY))

    @property
    def low_quality_matches(self) -> bool:
        mode = str(self.options.get("low_quality", "unverified"))
        if mode not in ("unverified", "match"):
            raise ValueError("pdq option low_quality must be 'unverified' or 'match'")
        return mode == "match"

    @property
    def hash_config(self) -> HashConfig:
        return HashConfig.from_options(self.options)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["min_quality"] = self.min_quality
        out["low_quality"] = "match" if self.low_quality_matches else "unverified"
        out["frames"] = self.hash_config.frames
        return out

    # --- parsing -------------------------------------------------------------------
    def normalize(self, column: pa.Array | pa.ChunkedArray) -> Normalized:
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        if not pa.types.is_struct(column.type):
            return normalize_fixed(column, self.width)
        names = [column.type.field(i).name for i in range(column.type.num_fields)]
        field = next((f for f in HASH_FIELDS if f in names), None)
        if field is None or "quality" not in names:
            raise ValueError(f"a pdq struct column needs a hash field ({', '.join(HASH_FIELDS)}) "
                             "and a quality field")
        hashes = pc.struct_field(column, field)
        if column.null_count:
            hashes = pc.if_else(column.is_valid(), hashes, pa.nulls(len(column), hashes.type))
        norm = normalize_fixed(hashes, self.width)
        quality = pc.struct_field(column, "quality").cast(pa.int32())
        q = np.asarray(pc.fill_null(quality, -1).to_numpy(zero_copy_only=False), dtype=np.int32)
        return self.apply_quality(norm, q)

    def apply_quality(self, norm: Normalized, quality: np.ndarray) -> Normalized:
        """Mark valid hashes below ``min_quality`` invalid (``low-quality``), unless the
        curator asked for them to be matched anyway. A missing quality (-1) is not low."""
        low = norm.valid & (quality >= 0) & (quality < self.min_quality)
        if not low.any() or self.low_quality_matches:
            return Normalized(norm.values, norm.valid, norm.reasons, quality)
        reasons = np.array(norm.reasons, dtype=object)  # may be a read-only broadcast
        reasons[low] = LOW_QUALITY
        values = norm.values.copy()
        values[low] = 0
        return Normalized(values, norm.valid & ~low, reasons, quality)

    def parse_entries(self, column: pa.Array | pa.ChunkedArray) -> Normalized:
        # List entries are what partners chose to share: their quality is theirs to
        # judge, so a list's low-quality entries are kept (and still matched).
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        if pa.types.is_struct(column.type):
            names = [column.type.field(i).name for i in range(column.type.num_fields)]
            field = next((f for f in HASH_FIELDS if f in names), names[0])
            column = pc.struct_field(column, field)
        return normalize_fixed(column, self.width)

    # --- matching ------------------------------------------------------------------
    def build_index(self, values: np.ndarray) -> SignalIndex:
        t = self.effective_threshold
        if values.shape[0] < 2048:  # building directories costs more than scanning
            return BruteForceIndex(values, t)
        return MIHIndex(values, t)

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return hamming(as_words(a), as_words(b))

    # --- hashing -------------------------------------------------------------------
    def hash_bytes(self, data: bytes) -> tuple[bytes, int | None]:
        """PDQ of image bytes; ValueError (a :class:`HashError`) with a reason code."""
        (value,), quality = pdq_bytes(data, self.hash_config)
        return value, quality

    def hash_bytes_dihedral(self, data: bytes) -> tuple[list[bytes], int]:
        """The eight hashes of the image's rotations and flips (original first)."""
        return pdq_bytes(data, self.hash_config, dihedral=True)


__all__ = ["LOW_QUALITY", "PDQ", "HashError"]
