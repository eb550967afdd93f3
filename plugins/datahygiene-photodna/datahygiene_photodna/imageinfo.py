"""Image type and pixel size from the first bytes of a file (no decoding, stdlib only).

Why here and not Pillow: the service takes GIF, JPEG, PNG, BMP and TIFF of at least
160x160 pixels; knowing type and size from the header lets us refuse what the service
would refuse without sending the image anywhere, and keeps the plugin free of an
image library.
"""

from __future__ import annotations

import struct

MIME = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp",
        "tiff": "image/tiff"}
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class NotAnImage(ValueError):
    """Raised with a short reason code (never content)."""


def sniff(data: bytes) -> tuple[str, int, int]:
    """Return (format, width, height). Raises NotAnImage('unsupported-format' or
    'unreadable-image')."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return "png", w, h
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return "gif", w, h
        if data.startswith(b"BM"):
            (size,) = struct.unpack("<I", data[14:18])
            if size == 12:
                w, h = struct.unpack("<HH", data[18:22])
            else:
                w, h = struct.unpack("<ii", data[18:26])
            return "bmp", abs(w), abs(h)
        if data.startswith(b"\xff\xd8"):
            return ("jpeg", *_jpeg_size(data))
        if data[:4] in (b"II*\0", b"MM\0*"):
            return ("tiff", *_tiff_size(data))
    except struct.error:
        raise NotAnImage("unreadable-image") from None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise NotAnImage("unsupported-format")
    raise NotAnImage("unsupported-format")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise NotAnImage("unreadable-image")
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise NotAnImage("unreadable-image")


def _tiff_size(data: bytes) -> tuple[int, int]:
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", data[4:8])
    (count,) = struct.unpack(e + "H", data[ifd:ifd + 2])
    dims: dict[int, int] = {}
    for k in range(count):
        off = ifd + 2 + 12 * k
        tag, typ, _n = struct.unpack(e + "HHI", data[off:off + 8])
        if tag in (256, 257):
            fmt, end = ("H", off + 10) if typ == 3 else ("I", off + 12)
            dims[tag] = struct.unpack(e + fmt, data[off + 8:end])[0]
    if 256 not in dims or 257 not in dims:
        raise NotAnImage("unreadable-image")
    return dims[256], dims[257]
