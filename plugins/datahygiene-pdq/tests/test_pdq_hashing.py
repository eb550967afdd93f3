"""Hashing from image bytes: every decoding failure gives a reason (never a crash),
modes and orientation are handled as documented, and the hashes agree with Meta's C++
reference on the public PDQ regression photos."""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from datahygiene_pdq.hashing import HashConfig, HashError, pdq_bytes
from datahygiene_pdq.signal import PDQ
from pdq_images import REFERENCE, encode, hamming, jpeg, pattern, reference_hashes

needs_reference = pytest.mark.skipif(
    not (REFERENCE / "dih").is_dir(),
    reason=f"PDQ reference photos not found at {REFERENCE} (the shared/pdq-reference folder "
           "beside the repository)")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares a huge size but holds one row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b""))


def test_hash_is_32_bytes_with_quality_and_deterministic() -> None:
    data = jpeg(1)
    value, quality = PDQ().hash_bytes(data)
    assert len(value) == 32 and quality is not None and quality >= 50
    assert PDQ().hash_bytes(data) == (value, quality)
    assert hamming(value, PDQ().hash_bytes(jpeg(2))[0]) > 64  # different images differ


@pytest.mark.parametrize(("name", "make", "reason"), [
    ("zero-byte", lambda j: b"", "empty"),
    ("truncated", lambda j: j[: len(j) // 2], "truncated"),
    ("corrupt header", lambda j: j[:2] + bytes(30) + j[32:], "not-an-image"),
    ("non-image", lambda j: b"a text file, not an image\n" * 10, "not-an-image"),
    ("png signature only", lambda j: b"\x89PNG\r\n\x1a\n", "not-an-image"),
    ("decompression bomb", lambda j: png_claiming(40_000, 40_000), "decompression-bomb"),
])
def test_decoding_failures_give_a_reason(name: str, make: object, reason: str) -> None:
    with pytest.raises(HashError) as err:
        PDQ().hash_bytes(make(jpeg(3)))  # type: ignore[operator]
    assert str(err.value) == reason, name


def test_corrupt_image_data_is_a_decode_error() -> None:
    good = encode(pattern(4), "PNG")
    start = good.index(b"IDAT") + 4
    bad = good[:start] + bytes(b ^ 0x5A for b in good[start:start + 200]) + good[start + 200:]
    with pytest.raises(HashError) as err:
        PDQ().hash_bytes(bad)
    assert str(err.value) in ("decode-error", "truncated")


def test_pixel_limit_is_configurable() -> None:
    data = jpeg(5, 200, 100)
    assert PDQ(options={"max_pixels": 20_000}).hash_bytes(data)[0]
    with pytest.raises(HashError, match="decompression-bomb"):
        PDQ(options={"max_pixels": 19_999}).hash_bytes(data)


def test_uniform_image_has_low_quality() -> None:
    flat = encode(np.full((100, 100, 3), 128, np.uint8), "PNG")
    _, quality = PDQ().hash_bytes(flat)
    assert quality is not None and quality < 50


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "CMYK", "I;16", "1"])
def test_modes_hash_as_their_rgb_rendering(mode: str) -> None:
    arr = pattern(6, 128, 96)
    if mode == "I;16":
        grey = np.asarray(Image.fromarray(arr).convert("L"), dtype=np.uint16) * 257
        data = encode(grey, "PNG")
    elif mode == "P":
        buf = io.BytesIO()
        Image.fromarray(arr).quantize(256).save(buf, "PNG")
        data = buf.getvalue()
    else:
        data = encode(arr, "JPEG" if mode == "CMYK" else "PNG", mode=mode)
    value, _ = PDQ().hash_bytes(data)
    decoded = Image.open(io.BytesIO(data))
    if mode == "I;16":  # 16-bit grey hashes as its high byte
        rendered = Image.fromarray((np.asarray(decoded).astype(np.uint32) >> 8).astype(np.uint8))
    else:
        rendered = decoded.convert("RGB")
    assert hamming(value, PDQ().hash_bytes(encode(np.asarray(rendered), "PNG"))[0]) <= 2
    if mode in ("L", "RGBA", "LA", "I;16"):  # the same picture as the RGB original
        assert hamming(value, PDQ().hash_bytes(encode(arr, "PNG"))[0]) <= 31
    if mode == "RGBA":  # alpha is dropped: the same pixels hash the same
        assert value == PDQ().hash_bytes(encode(arr, "PNG"))[0]


def test_exif_orientation_ignored_by_default_applied_on_request() -> None:
    arr = pattern(7, 160, 96)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    im.save(buf, "PNG", exif=exif.tobytes())
    tagged = buf.getvalue()
    assert PDQ().hash_bytes(tagged)[0] == PDQ().hash_bytes(encode(arr, "PNG"))[0]
    shown = np.ascontiguousarray(np.rot90(arr, k=-1))
    applied = PDQ(options={"orientation": "apply"}).hash_bytes(tagged)[0]
    assert applied == PDQ().hash_bytes(encode(shown, "PNG"))[0]


def test_large_images_are_reduced_and_stay_close() -> None:
    big = encode(pattern(8, 2400, 1800), "JPEG", quality=92)
    full = pdq_bytes(big, HashConfig(max_side=4096, draft=False))[0][0]
    capped = pdq_bytes(big, HashConfig(draft=False))[0][0]
    drafted = pdq_bytes(big, HashConfig())[0][0]
    assert hamming(full, capped) <= 16 and hamming(capped, drafted) <= 16
    with pytest.raises(ValueError):
        HashConfig.from_options({"max_side": 32})


@needs_reference
def test_agrees_with_the_cpp_reference_on_dih_files() -> None:
    sig = PDQ()
    dists = {}
    for name, want in reference_hashes().items():
        value, quality = sig.hash_bytes((REFERENCE / name).read_bytes())
        dists[name] = hamming(value, bytes.fromhex(want))
        assert quality == 100
    assert len(dists) == 8
    assert max(dists.values()) <= 8, dists


@needs_reference
def test_bridge_mods_match_the_original() -> None:
    sig = PDQ()
    mods = sorted((REFERENCE / "bridge-mods").glob("*.jpg"))
    orig = sig.hash_bytes((REFERENCE / "bridge-mods" / "aaa-orig.jpg").read_bytes())[0]
    assert len(mods) >= 10
    for path in mods:
        assert hamming(orig, sig.hash_bytes(path.read_bytes())[0]) <= 31, path.name


@needs_reference
def test_dihedral_hashes_find_rotated_and_flipped_copies() -> None:
    sig = PDQ()
    variants, _ = sig.hash_bytes_dihedral((REFERENCE / "dih" / "bridge-1-original.jpg").read_bytes())
    assert len(variants) == 8
    for i, name in enumerate(sorted(reference_hashes())):
        value = sig.hash_bytes((REFERENCE / name).read_bytes())[0]
        assert hamming(variants[i], value) <= 31, name  # found by its own variant
        if i:
            assert hamming(variants[0], value) > 31, name  # and not without the option


@pytest.mark.parametrize("side", [255, 256, 512])
def test_dihedral_hashes_are_exact_for_lossless_rotations_and_flips(side: int) -> None:
    """The eight hashes are those of the rotated and flipped pixels: pdqhash's one-pass
    dihedral hashes were over 31 bits off for a third of exact rotations at 256x256
    (img2dataset's default size), so --dihedral let listed images' copies through."""
    sig = PDQ()
    ops = [Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM,
           Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270,
           Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE]
    for seed in range(3):
        im = Image.fromarray(pattern(seed, side, side))
        listed = sig.hash_bytes(encode(np.asarray(im), "PNG"))[0]
        for op in ops:
            variants, _ = sig.hash_bytes_dihedral(encode(np.asarray(im.transpose(op)), "PNG"))
            assert min(hamming(v, listed) for v in variants) == 0, (seed, op)


def test_sixteen_bit_grey_opened_as_mode_i_keeps_its_high_byte() -> None:
    """Pillow opens a 16-bit PGM (and a 32-bit integer TIFF) as mode I, which was clipped
    to 0..255: a full-range copy of a listed image saturated (quality 0, unverified)."""
    grey = np.asarray(Image.fromarray(pattern(6, 128, 96)).convert("L"))
    listed = PDQ().hash_bytes(encode(grey, "PNG"))[0]
    wide = grey.astype(np.uint16) * 257
    h, w = wide.shape
    pgm = b"P5\n%d %d\n65535\n" % (w, h) + wide.astype(">u2").tobytes()
    buf = io.BytesIO()
    Image.fromarray(wide.astype(np.int32)).save(buf, "TIFF")
    for data in (pgm, buf.getvalue()):
        assert Image.open(io.BytesIO(data)).mode == "I"
        value, quality = PDQ().hash_bytes(data)
        assert value == listed and quality is not None and quality >= 50
    # 8-bit values stored as 32-bit integers are taken as they are
    buf = io.BytesIO()
    Image.fromarray(grey.astype(np.int32)).save(buf, "TIFF")
    assert PDQ().hash_bytes(buf.getvalue())[0] == listed


def test_images_of_several_frames_are_unverified_unless_the_first_will_do() -> None:
    """Only the first frame was hashed, so an animated GIF, WebP or PNG, or a TIFF, whose
    later frame is a listed image came out clean. Now such an image is 'multi-frame'
    (unverified) unless frames = "first" accepts the first frame's hash."""
    a, b = Image.fromarray(pattern(1)), Image.fromarray(pattern(2))
    for fmt, kw in (("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {}), ("TIFF", {})):
        buf = io.BytesIO()
        a.save(buf, fmt, save_all=True, append_images=[b], **kw)
        with pytest.raises(HashError, match="multi-frame"):
            pdq_bytes(buf.getvalue())
        first, _ = pdq_bytes(buf.getvalue(), HashConfig(frames="first"))
        assert len(first) == 1
        one = io.BytesIO()
        a.save(one, fmt, **kw)
        pdq_bytes(one.getvalue())  # one frame: hashed
    with pytest.raises(ValueError, match="frames must be"):
        HashConfig.from_options({"frames": "all"})
