"""Image bytes -> PDQ hash and quality, robustly and close to Meta's reference hasher.

What happens to an image, and why (measurements in docs/perceptual-matching.md):

1. **Decode** with Pillow. The pixel count is read from the header and checked
   *before* decoding (``max_pixels``, default Pillow's own limit): a decompression bomb
   costs nothing. Truncated, corrupt, empty and non-image bytes raise
   :class:`HashError` with a short reason code -- never the bytes.
2. **No EXIF rotation** (by default): the reference hashers hash the stored pixels and
   ignore the orientation tag, and so do partners' lists. ``orientation="apply"``
   rotates first; the ``dihedral`` scan option is the robust way to catch rotated
   copies.
3. **Mode**: everything becomes 8-bit luma. Palette, alpha, CMYK, 16-bit and bilevel
   images go through RGB first (alpha is dropped, as the reference does); a JPEG is
   decoded straight to its Y channel, which is the same ITU-R 601 luma the reference
   computes from RGB.
4. **Size**: images with a side over ``max_side`` (960) are reduced (Pillow's
   antialiased bilinear) before hashing. PDQ's own filter brings every image to 64x64,
   and its cost grows with pixels -- and jumps about 3x for rows of exactly 1024 pixels
   (cache aliasing in its column pass). Of the caps measured (512 to 1024 and none),
   960 kept the eight reference ``dih/`` photos closest to the C++ reference (at most
   6 bits) while hashing 1024x768 JPEGs about 3x faster than no cap. A JPEG at least
   twice the cap is decoded at reduced scale (Pillow draft mode) to no less than the
   cap, so draft never goes below 960 pixels on the long side (the benchmark prints the
   resulting shift).
5. **Hash** with the ``pdqhash`` package (Meta's C++ PDQ, unmodified).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MAX_SIDE = 960
MIN_SIDE = 64  # never reduce below what PDQ works at


class HashError(ValueError):
    """The bytes could not be hashed. ``str(exc)`` is a short reason code."""


@dataclass(frozen=True)
class HashConfig:
    max_side: int = DEFAULT_MAX_SIDE
    draft: bool = True
    max_pixels: int | None = None  # None: Pillow's MAX_IMAGE_PIXELS
    orientation: str = "ignore"  # or "apply"
    frames: str = "unverified"  # an image of several frames: "unverified", or hash the "first"

    @staticmethod
    def from_options(options: dict[str, Any]) -> HashConfig:
        cfg = HashConfig(
            max_side=int(options.get("max_side", DEFAULT_MAX_SIDE)),
            draft=bool(options.get("draft", True)),
            max_pixels=(None if options.get("max_pixels") is None else int(options["max_pixels"])),
            orientation=str(options.get("orientation", "ignore")),
            frames=str(options.get("frames", "unverified")),
        )
        if cfg.max_side < MIN_SIDE:
            raise ValueError(f"max_side must be at least {MIN_SIDE}")
        if cfg.orientation not in ("ignore", "apply"):
            raise ValueError("orientation must be 'ignore' or 'apply'")
        if cfg.frames not in ("unverified", "first"):
            raise ValueError("frames must be 'unverified' or 'first'")
        return cfg


def decode_luma(data: bytes, cfg: HashConfig = HashConfig()) -> np.ndarray:
    """Decode image bytes to an 8-bit luma matrix ready for PDQ (see module doc)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise HashError("empty")
    limit = Image.MAX_IMAGE_PIXELS if cfg.max_pixels is None else cfg.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im: Image.Image = Image.open(io.BytesIO(data))
            w, h = im.size
            if w < 1 or h < 1:
                raise HashError("decode-error")
            if limit is not None and w * h > limit:
                raise HashError("decompression-bomb")
            # An animated GIF, WebP or PNG, or a multi-page TIFF: PDQ hashes one picture,
            # and a listed one may be any frame. Not checked unless frames = "first" says
            # the first frame will do (a camera's MPO holds a preview of its first image).
            if cfg.frames == "unverified" and im.format != "MPO" and getattr(im, "is_animated", False):
                raise HashError("multi-frame")
            scale = min(1.0, cfg.max_side / max(w, h))
            target = (max(1, round(w * scale)), max(1, round(h * scale)))
            if cfg.orientation == "apply":
                im = ImageOps.exif_transpose(im) or im
                target = (target[1], target[0]) if im.size != (w, h) else target
            if im.format == "JPEG" and im.mode in ("RGB", "L", "YCbCr"):
                # decode straight to Y; at reduced scale only when the result stays >= the cap
                size = target if (cfg.draft and scale <= 0.5) else im.size
                im.draft("L", size)
            im.load()
            if im.mode.startswith("I;16"):  # 16-bit grey: keep the high byte
                im = Image.fromarray((np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8))
            elif im.mode == "I":  # 32-bit integers: Pillow's mode for 16-bit PGM and TIFF
                a = np.asarray(im)
                if a.max(initial=0) > 255:  # 16-bit values: keep the high byte, as for I;16
                    a = np.clip(a, 0, 65535) >> 8
                im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
            elif im.mode == "F":
                im = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8))
            elif im.mode != "L":
                im = im.convert("RGB").convert("L")  # palette, alpha, CMYK, bilevel...
            if im.size != target and max(im.size) > cfg.max_side:
                im = im.resize(target, Image.Resampling.BILINEAR)
            luma = np.asarray(im, dtype=np.uint8)
    except HashError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise HashError("decompression-bomb") from None
    except UnidentifiedImageError:
        raise HashError("not-an-image") from None
    except OSError as exc:
        raise HashError("truncated" if "truncated" in str(exc).lower() else "decode-error") from None
    except (ValueError, SyntaxError, EOFError, IndexError, TypeError, ZeroDivisionError,
            struct.error):
        raise HashError("decode-error") from None
    except MemoryError:
        raise HashError("too-large") from None
    if luma.ndim != 2 or luma.size == 0:
        raise HashError("decode-error")
    return luma


def dihedral_lumas(luma: np.ndarray) -> list[np.ndarray]:
    """The luma matrix in its eight orientations, in PDQ's order: as stored, rotated by
    90, 180 and 270 degrees, flipped top-bottom ("flip x") and left-right ("flip y"),
    transposed and anti-transposed."""
    return [luma, np.rot90(luma, 1), np.rot90(luma, 2), np.rot90(luma, 3), luma[::-1, :],
            luma[:, ::-1], luma.T, np.rot90(luma, 2).T]


def pdq_from_luma(luma: np.ndarray, dihedral: bool = False) -> tuple[list[bytes], int]:
    """PDQ of a luma matrix: ([hash] or the 8 dihedral hashes, quality).

    ``pdqhash`` wants an RGB array and computes 0.299 R + 0.587 G + 0.114 B; giving it
    the luma three times (a zero-stride view, no copy) yields the luma itself.

    The dihedral hashes are those of the eight rotated and flipped pixel matrices, each
    hashed in full. ``pdqhash.compute_dihedral`` derives them from one pass, which is
    exact only where PDQ's downsampling is symmetric: at 256x256 (img2dataset's default)
    a third of exact rotations and flips of an image came out over 31 bits from its
    hash, and a listed image's rotated copy went to clean/. Eight passes cost eight
    times the hashing, only under ``--dihedral``."""
    import pdqhash

    def one(m: np.ndarray) -> tuple[Any, int]:
        m = np.ascontiguousarray(m)
        return pdqhash.compute(np.broadcast_to(m[:, :, None], (*m.shape, 3)))

    vector, quality = one(luma)
    vectors = [vector]
    if dihedral:
        vectors += [one(m)[0] for m in dihedral_lumas(luma)[1:]]
    return [np.packbits(np.asarray(v, dtype=np.uint8)).tobytes() for v in vectors], int(quality)


def pdq_bytes(data: bytes, cfg: HashConfig = HashConfig(), dihedral: bool = False
              ) -> tuple[list[bytes], int]:
    """Image bytes -> PDQ hash(es) and quality; :class:`HashError` when not hashable."""
    return pdq_from_luma(decode_luma(data, cfg), dihedral)
