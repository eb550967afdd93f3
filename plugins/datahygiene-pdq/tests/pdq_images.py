"""Synthetic test images (smooth random patterns: benign, generated, deterministic) and
helpers shared by the PDQ plugin's tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
REFERENCE = (REPO / ".." / "shared" / "pdq-reference").resolve()


def pattern(seed: int, w: int = 160, h: int = 120) -> np.ndarray:
    """An RGB image of a few random sinusoids: strong gradients, so PDQ quality is high."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(3):
            fx, fy = r.uniform(0.5, 4, 2)
            a[:, :, c] += np.sin((x / w * fx + y / h * fy) * 2 * np.pi + r.uniform(0, 2 * np.pi))
    a = (a - a.min()) / (a.max() - a.min()) * 255
    return a.astype(np.uint8)


def encode(arr: np.ndarray, fmt: str = "JPEG", mode: str | None = None, **kw: object) -> bytes:
    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(seed: int, w: int = 160, h: int = 120) -> bytes:
    return encode(pattern(seed, w, h), "JPEG", quality=90)


def flip_bits(value: bytes, n: int, seed: int = 0) -> bytes:
    """``value`` with exactly ``n`` distinct bits flipped."""
    bits = np.unpackbits(np.frombuffer(value, dtype=np.uint8))
    idx = np.random.default_rng(seed).choice(bits.size, n, replace=False)
    bits[idx] ^= 1
    return np.packbits(bits).tobytes()


def hamming(a: bytes, b: bytes) -> int:
    return int.bit_count(int.from_bytes(a, "big") ^ int.from_bytes(b, "big"))


def reference_hashes() -> dict[str, str]:
    """The C++ reference's published hashes, read from the reference folder's README."""
    out = {}
    for line in (REFERENCE / "README.md").read_text().splitlines():
        if line.startswith("| dih/"):
            name, value = (c.strip() for c in line.strip("|").split("|")[:2])
            out[name] = value
    return out
