"""Compiled MD5, SHA-1 and SHA-256 of many short byte strings (Arrow layout).

URL digests are one hash per row of a few dozen bytes, where a per-row ``hashlib``
call costs more in the interpreter than in the hash, and holds the GIL. These run
without it, on every core. Arithmetic is on uint32, each sum wrapped back to uint32
explicitly (numba widens integer sums); with 32-bit values LLVM emits rotate
instructions (1.5x faster than 64-bit arithmetic with masks). Rows are hashed 16
side by side (:func:`_digest_lanes`): per 47-byte URL of the benchmark, MD5 170
against 456 ns one row at a time, SHA-1 152 against 390, SHA-256 124 against 452.
tests/test_url.py checks them against
``hashlib`` on every length from 0 to 300 bytes and past the lanes' 16 blocks; ``make
env`` compiles them once (``kernels.warm_up``).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"nogil": True, "cache": True}
_M32 = 0xFFFFFFFF

_SHA256_K = np.array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
], dtype=np.uint32)
_SHA256_H = np.array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19], dtype=np.uint32)
_SHA1_H = np.array([0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0], dtype=np.uint32)
_SHA1_K = np.array([0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6], dtype=np.uint32)
_MD5_H = np.array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476], dtype=np.uint32)
_MD5_K = np.array([int(abs(np.sin(i + 1)) * 2**32) & _M32 for i in range(64)], dtype=np.uint32)
_MD5_S = np.array([7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4
                  + [6, 10, 15, 21] * 4, dtype=np.uint32)


@numba.njit(inline="always", **_JIT)
def _rotl(x, n):
    return (x << np.uint32(n)) | (x >> np.uint32(32 - n))


@numba.njit(inline="always", **_JIT)
def _rotr(x, n):
    return (x >> np.uint32(n)) | (x << np.uint32(32 - n))


@numba.njit(inline="always", **_JIT)
def _be32(buf, p):
    return ((np.uint32(buf[p]) << np.uint32(24)) | (np.uint32(buf[p + 1]) << np.uint32(16))
            | (np.uint32(buf[p + 2]) << np.uint32(8)) | np.uint32(buf[p + 3]))


@numba.njit(**_JIT)
def _padded(data, s, length, big_endian, tail):
    """Copy the message's last partial block plus its padding into ``tail`` (128
    bytes); return (full blocks read in place, blocks in ``tail``)."""
    full = length // 64
    rest = length - full * 64
    for j in range(rest):
        tail[j] = data[s + full * 64 + j]
    tail[rest] = 0x80
    nt = 1 if rest < 56 else 2
    for j in range(rest + 1, nt * 64):
        tail[j] = 0
    bits = length * 8
    for j in range(8):
        byte = (bits >> (8 * j)) & 0xFF
        if big_endian:
            tail[nt * 64 - 1 - j] = byte
        else:
            tail[nt * 64 - 8 + j] = byte
    return full, nt


@numba.njit(inline="always", **_JIT)
def _put_words(h, words, big_endian, dst):
    """The first ``words`` state words as the digest's bytes, into ``dst``."""
    for j in range(words):
        for q in range(4):
            shift = np.uint32(24 - 8 * q) if big_endian else np.uint32(8 * q)
            dst[4 * j + q] = (h[j] >> shift) & np.uint32(0xFF)


@numba.njit(**_JIT)
def _sha256_block(buf, off, h, w, k):
    for t in range(16):
        w[t] = _be32(buf, off + 4 * t)
    for t in range(16, 64):
        x = w[t - 15]
        y = w[t - 2]
        s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> np.uint32(3))
        s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> np.uint32(10))
        w[t] = np.uint32(w[t - 16] + s0 + w[t - 7] + s1)
    a, b, c, d, e, f, g, hh = h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
    for t in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = (e & f) ^ (~e & g)
        t1 = np.uint32(hh + s1 + ch + k[t] + w[t])
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = np.uint32(s0 + maj)
        hh = g
        g = f
        f = e
        e = np.uint32(d + t1)
        d = c
        c = b
        b = a
        a = np.uint32(t1 + t2)
    h[0] = np.uint32(h[0] + a)
    h[1] = np.uint32(h[1] + b)
    h[2] = np.uint32(h[2] + c)
    h[3] = np.uint32(h[3] + d)
    h[4] = np.uint32(h[4] + e)
    h[5] = np.uint32(h[5] + f)
    h[6] = np.uint32(h[6] + g)
    h[7] = np.uint32(h[7] + hh)


@numba.njit(**_JIT)
def _sha1_block(buf, off, h, w, k):
    for t in range(16):
        w[t] = _be32(buf, off + 4 * t)
    for t in range(16, 80):
        w[t] = _rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1)
    a, b, c, d, e = h[0], h[1], h[2], h[3], h[4]
    for t in range(80):
        if t < 20:
            f = (b & c) | (~b & d)
        elif t < 40 or t >= 60:
            f = b ^ c ^ d
        else:
            f = (b & c) | (b & d) | (c & d)
        tmp = np.uint32(_rotl(a, 5) + f + e + k[t // 20] + w[t])
        e = d
        d = c
        c = _rotl(b, 30)
        b = a
        a = tmp
    h[0] = np.uint32(h[0] + a)
    h[1] = np.uint32(h[1] + b)
    h[2] = np.uint32(h[2] + c)
    h[3] = np.uint32(h[3] + d)
    h[4] = np.uint32(h[4] + e)


@numba.njit(**_JIT)
def _md5_block(buf, off, h, w, k, sh):
    for t in range(16):
        p = off + 4 * t
        w[t] = (np.uint32(buf[p]) | (np.uint32(buf[p + 1]) << np.uint32(8))
                | (np.uint32(buf[p + 2]) << np.uint32(16)) | (np.uint32(buf[p + 3]) << np.uint32(24)))
    a, b, c, d = h[0], h[1], h[2], h[3]
    for t in range(64):
        if t < 16:
            f = (b & c) | (~b & d)
            g = t
        elif t < 32:
            f = (d & b) | (~d & c)
            g = (5 * t + 1) % 16
        elif t < 48:
            f = b ^ c ^ d
            g = (3 * t + 5) % 16
        else:
            f = c ^ (b | ~d)
            g = (7 * t) % 16
        f = np.uint32(f + a + k[t] + w[g])
        a = d
        d = c
        c = b
        b = np.uint32(b + _rotl(f, sh[t]))
    h[0] = np.uint32(h[0] + a)
    h[1] = np.uint32(h[1] + b)
    h[2] = np.uint32(h[2] + c)
    h[3] = np.uint32(h[3] + d)


LANES = 16  # rows hashed side by side by :func:`_digest_lanes`
_LANE_BLOCKS = 16  # longer messages (over 1 KiB) take the one-row kernels


@numba.njit(inline="always", **_JIT)
def _lane_rotr(x, n):
    return (x >> np.uint32(n)) | (x << np.uint32(32 - n))


@numba.njit(inline="always", **_JIT)
def _lane_rotl(x, n):
    return (x << np.uint32(n)) | (x >> np.uint32(32 - n))


@numba.njit(**_JIT)
def _one_block(algorithm, buf, off, h, w):
    """One 64-byte block of ``buf`` at ``off`` into the state ``h``."""
    if algorithm == 0:
        _md5_block(buf, off, h, w, _MD5_K, _MD5_S)
    elif algorithm == 1:
        _sha1_block(buf, off, h, w, _SHA1_K)
    else:
        _sha256_block(buf, off, h, w, _SHA256_K)


@numba.njit(**_JIT)
def _digest_one(algorithm, data, s, length, dst, tail, w, h):
    """One message, one block at a time (the messages the lanes do not take)."""
    big_endian = algorithm != 0
    words = 4 if algorithm == 0 else (5 if algorithm == 1 else 8)
    h[:words] = _MD5_H if algorithm == 0 else (_SHA1_H if algorithm == 1 else _SHA256_H)
    full, nt = _padded(data, s, length, big_endian, tail)
    for b in range(full):
        _one_block(algorithm, data, s + 64 * b, h, w)
    for b in range(nt):
        _one_block(algorithm, tail, 64 * b, h, w)
    _put_words(h, words, big_endian, dst)


@numba.njit(**_JIT)
def _digest_lanes(algorithm, data, offsets, rows, out):
    """Digest ``rows`` (as :func:`digest_rows`), ``LANES`` messages of the same number
    of blocks at a time: each step of the compression runs over all lanes in one loop,
    which LLVM turns into vector instructions (2.6-3.6x faster than one message at a
    time on the benchmark's 47-byte URLs). Rows are grouped by block count with a counting sort;
    messages longer than ``_LANE_BLOCKS`` blocks go to :func:`_digest_one`."""
    n = rows.shape[0]
    big_endian = algorithm != 0
    words = 4 if algorithm == 0 else (5 if algorithm == 1 else 8)
    nbt = np.empty(n, np.int64)
    maxb = 0
    for i in range(n):
        length = offsets[rows[i] + 1] - offsets[rows[i]]
        nbt[i] = (length + 9 + 63) // 64
        if nbt[i] <= _LANE_BLOCKS and nbt[i] > maxb:
            maxb = nbt[i]
    # rows in order of block count (counting sort; long messages last, one at a time)
    cnts = np.zeros(_LANE_BLOCKS + 3, np.int64)
    for i in range(n):
        cnts[min(nbt[i], _LANE_BLOCKS + 1) + 1] += 1
    for v in range(1, _LANE_BLOCKS + 3):
        cnts[v] += cnts[v - 1]
    order = np.empty(n, np.int64)
    for i in range(n):
        c = min(nbt[i], _LANE_BLOCKS + 1)
        order[cnts[c]] = i
        cnts[c] += 1
    h0 = _MD5_H if algorithm == 0 else (_SHA1_H if algorithm == 1 else _SHA256_H)
    msg = np.zeros((maxb * 64, LANES), np.uint8)  # byte j of lane l at msg[j, l]
    w = np.empty((80, LANES), np.uint32)
    hs = np.empty((8, LANES), np.uint32)
    a = np.empty(LANES, np.uint32)
    b = np.empty(LANES, np.uint32)
    c = np.empty(LANES, np.uint32)
    d = np.empty(LANES, np.uint32)
    e = np.empty(LANES, np.uint32)
    f = np.empty(LANES, np.uint32)
    g = np.empty(LANES, np.uint32)
    hh = np.empty(LANES, np.uint32)
    lane_row = np.empty(LANES, np.int64)
    tail = np.empty(128, dtype=np.uint8)
    w1 = np.empty(80, dtype=np.uint32)
    h1 = np.empty(8, dtype=np.uint32)
    p = 0
    while p < n:
        nb = nbt[order[p]]
        if nb > _LANE_BLOCKS:  # a long message: on its own
            i = order[p]
            s = offsets[rows[i]]
            _digest_one(algorithm, data, s, offsets[rows[i] + 1] - s, out[i], tail, w1, h1)
            p += 1
            continue
        q = p
        while q < n and q - p < LANES and nbt[order[q]] == nb:
            q += 1
        cnt = q - p
        for ln in range(LANES):  # each lane's padded message (empty lanes: padding only)
            length = 0
            s = 0
            if ln < cnt:
                i = order[p + ln]
                lane_row[ln] = i
                s = offsets[rows[i]]
                length = offsets[rows[i] + 1] - s
            for j in range(length):
                msg[j, ln] = data[s + j]
            msg[length, ln] = 0x80
            for j in range(length + 1, nb * 64 - 8):
                msg[j, ln] = 0
            bits = length * 8
            for j in range(8):
                if big_endian:
                    msg[nb * 64 - 1 - j, ln] = (bits >> (8 * j)) & 0xFF
                else:
                    msg[nb * 64 - 8 + j, ln] = (bits >> (8 * j)) & 0xFF
        for t in range(8):  # rows past the algorithm's words are carried, never output
            for ln in range(LANES):
                hs[t, ln] = h0[t] if t < words else 0
        for blk in range(nb):
            base = blk * 64
            for t in range(16):
                o = base + 4 * t
                if big_endian:
                    for ln in range(LANES):
                        w[t, ln] = ((np.uint32(msg[o, ln]) << np.uint32(24))
                                    | (np.uint32(msg[o + 1, ln]) << np.uint32(16))
                                    | (np.uint32(msg[o + 2, ln]) << np.uint32(8))
                                    | np.uint32(msg[o + 3, ln]))
                else:
                    for ln in range(LANES):
                        w[t, ln] = (np.uint32(msg[o, ln])
                                    | (np.uint32(msg[o + 1, ln]) << np.uint32(8))
                                    | (np.uint32(msg[o + 2, ln]) << np.uint32(16))
                                    | (np.uint32(msg[o + 3, ln]) << np.uint32(24)))
            for ln in range(LANES):
                a[ln] = hs[0, ln]
                b[ln] = hs[1, ln]
                c[ln] = hs[2, ln]
                d[ln] = hs[3, ln]
                e[ln] = hs[4, ln]
                f[ln] = hs[5, ln]
                g[ln] = hs[6, ln]
                hh[ln] = hs[7, ln]
            if algorithm == 2:
                _sha256_lanes_block(w, a, b, c, d, e, f, g, hh)
            elif algorithm == 1:
                _sha1_lanes_block(w, a, b, c, d, e)
            else:
                _md5_lanes_block(w, a, b, c, d)
            for ln in range(LANES):  # the block's result added to the state
                hs[0, ln] = np.uint32(hs[0, ln] + a[ln])
                hs[1, ln] = np.uint32(hs[1, ln] + b[ln])
                hs[2, ln] = np.uint32(hs[2, ln] + c[ln])
                hs[3, ln] = np.uint32(hs[3, ln] + d[ln])
                hs[4, ln] = np.uint32(hs[4, ln] + e[ln])
                hs[5, ln] = np.uint32(hs[5, ln] + f[ln])
                hs[6, ln] = np.uint32(hs[6, ln] + g[ln])
                hs[7, ln] = np.uint32(hs[7, ln] + hh[ln])
        for ln in range(cnt):
            _put_words(hs[:, ln], words, big_endian, out[lane_row[ln]])
        p = q


@numba.njit(**_JIT)
def _sha256_lanes_block(w, a, b, c, d, e, f, g, hh):
    """One block's message schedule and rounds over all lanes, on the working
    variables ``a``..``hh`` (the caller loads them and adds them to the state)."""
    for t in range(16, 64):
        for ln in range(LANES):
            x = w[t - 15, ln]
            y = w[t - 2, ln]
            s0 = _lane_rotr(x, 7) ^ _lane_rotr(x, 18) ^ (x >> np.uint32(3))
            s1 = _lane_rotr(y, 17) ^ _lane_rotr(y, 19) ^ (y >> np.uint32(10))
            w[t, ln] = np.uint32(w[t - 16, ln] + s0 + w[t - 7, ln] + s1)
    for t in range(64):
        kt = _SHA256_K[t]
        for ln in range(LANES):
            ee = e[ln]
            aa = a[ln]
            s1 = _lane_rotr(ee, 6) ^ _lane_rotr(ee, 11) ^ _lane_rotr(ee, 25)
            ch = (ee & f[ln]) ^ (~ee & g[ln])
            t1 = np.uint32(hh[ln] + s1 + ch + kt + w[t, ln])
            s0 = _lane_rotr(aa, 2) ^ _lane_rotr(aa, 13) ^ _lane_rotr(aa, 22)
            mj = (aa & b[ln]) ^ (aa & c[ln]) ^ (b[ln] & c[ln])
            hh[ln] = g[ln]
            g[ln] = f[ln]
            f[ln] = ee
            e[ln] = np.uint32(d[ln] + t1)
            d[ln] = c[ln]
            c[ln] = b[ln]
            b[ln] = aa
            a[ln] = np.uint32(t1 + s0 + mj)


@numba.njit(**_JIT)
def _sha1_lanes_block(w, a, b, c, d, e):
    """As :func:`_sha256_lanes_block`, for SHA-1."""
    for t in range(16, 80):
        for ln in range(LANES):
            w[t, ln] = _lane_rotl(w[t - 3, ln] ^ w[t - 8, ln] ^ w[t - 14, ln] ^ w[t - 16, ln], 1)
    for t in range(80):
        kt = _SHA1_K[t // 20]
        for ln in range(LANES):
            bb = b[ln]
            cc = c[ln]
            dd = d[ln]
            if t < 20:
                fv = (bb & cc) | (~bb & dd)
            elif t < 40 or t >= 60:
                fv = bb ^ cc ^ dd
            else:
                fv = (bb & cc) | (bb & dd) | (cc & dd)
            tmp = np.uint32(_lane_rotl(a[ln], 5) + fv + e[ln] + kt + w[t, ln])
            e[ln] = dd
            d[ln] = cc
            c[ln] = _lane_rotl(bb, 30)
            b[ln] = a[ln]
            a[ln] = tmp


@numba.njit(**_JIT)
def _md5_lanes_block(w, a, b, c, d):
    """As :func:`_sha256_lanes_block`, for MD5."""
    for t in range(64):
        kt = _MD5_K[t]
        sh = _MD5_S[t]
        if t < 16:
            gi = t
        elif t < 32:
            gi = (5 * t + 1) % 16
        elif t < 48:
            gi = (3 * t + 5) % 16
        else:
            gi = (7 * t) % 16
        for ln in range(LANES):
            bb = b[ln]
            cc = c[ln]
            dd = d[ln]
            if t < 16:
                fv = (bb & cc) | (~bb & dd)
            elif t < 32:
                fv = (dd & bb) | (~dd & cc)
            elif t < 48:
                fv = bb ^ cc ^ dd
            else:
                fv = cc ^ (bb | ~dd)
            fv = np.uint32(fv + a[ln] + kt + w[gi, ln])
            a[ln] = dd
            d[ln] = cc
            c[ln] = bb
            b[ln] = np.uint32(bb + _lane_rotl(fv, sh))


@numba.njit(**_JIT)
def digest_rows(algorithm, data, offsets, rows, out):
    """Digest ``data[offsets[r]:offsets[r + 1]]`` for each r in ``rows`` into the
    matching row of ``out`` ((len(rows), width) uint8). ``algorithm``: 0 MD5,
    1 SHA-1, 2 SHA-256."""
    _digest_lanes(algorithm, data, offsets, rows, out)


def hmac_sha256_states(key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The SHA-256 states after the HMAC key's inner and outer padded blocks: every
    message under one key starts from them (RFC 2104)."""
    import hashlib

    k = (key if len(key) <= 64 else hashlib.sha256(key).digest()).ljust(64, b"\0")
    states = []
    w = np.empty(80, dtype=np.uint32)
    for pad in (0x36, 0x5C):
        h = _SHA256_H.copy()
        _sha256_block(np.frombuffer(bytes(b ^ pad for b in k), dtype=np.uint8), 0, h, w, _SHA256_K)
        states.append(h)
    return states[0], states[1]


@numba.njit(**_JIT)
def hmac_sha256_rows(istate, ostate, prefix, data, offsets, out):
    """HMAC-SHA256 of ``prefix + data[offsets[i]:offsets[i + 1]]`` for every row i into
    ``out[i]``, the key's blocks already compressed into ``istate``/``ostate``
    (:func:`hmac_sha256_states`)."""
    n = offsets.shape[0] - 1
    p = prefix.shape[0]
    longest = 0
    for i in range(n):
        longest = max(longest, offsets[i + 1] - offsets[i])
    buf = np.empty(((p + longest + 9) // 64 + 1) * 64, dtype=np.uint8)
    buf[:p] = prefix
    ob = np.zeros(64, dtype=np.uint8)
    ob[32] = 0x80
    ob[62] = 0x03  # the outer message is 64 + 32 bytes: 768 bits
    w = np.empty(80, dtype=np.uint32)
    h = np.empty(8, dtype=np.uint32)
    for i in range(n):
        s = offsets[i]
        m = p + offsets[i + 1] - s
        for j in range(m - p):
            buf[p + j] = data[s + j]
        nb = (m + 9 + 63) // 64
        buf[m] = 0x80
        for j in range(m + 1, nb * 64 - 8):
            buf[j] = 0
        bits = (64 + m) * 8
        for j in range(8):
            buf[nb * 64 - 1 - j] = (bits >> (8 * j)) & 0xFF
        h[:] = istate
        for b in range(nb):
            _sha256_block(buf, 64 * b, h, w, _SHA256_K)
        _put_words(h, 8, True, ob)
        h[:] = ostate
        _sha256_block(ob, 0, h, w, _SHA256_K)
        _put_words(h, 8, True, out[i])
