"""A range index over 256-bit hashes with recall 1.0: multi-index hashing (pigeonhole).

Why this design: a list entry within Hamming distance ``T`` of a query differs from it
in at most ``T`` bits, so if the 256 bits are cut into ``k`` chunks and chunk ``i`` is
searched within radius ``r_i``, any pair the search misses differs by at least
``r_i + 1`` bits in *every* chunk, i.e. by at least ``sum(r_i + 1)`` bits overall.
Choosing radii with ``sum(r_i + 1) >= T + 1`` therefore makes a miss impossible: the
index is exact, not approximate (a chunk with radius -1 is simply not searched).

Each searched chunk has a bucket directory (a counting sort of the entries by chunk
value) and a bitmap of non-empty buckets. A query probes every chunk value within its
radius (bitmap first: most buckets are empty, and the bitmap is 32x smaller than the
directory), collects the entries of the non-empty buckets, and verifies them all at
once with a vectorised popcount over the full 256 bits. Everything is numpy and
batched over many queries; no per-query Python.

The layout (how many chunks, how many bits, which radius) is chosen from the list
size and threshold by a cost model calibrated on the benchmark
(``python -m datahygiene.bench.pdq``), which also compares it with brute force and
faiss's binary indexes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from datahygiene.signals.base import Matches, SignalIndex

WIDTH = 32  # bytes
BITS = 256
MAX_CHUNK_BITS = 24  # a 2**24 directory of int32 is 64 MiB: the most one chunk may cost
_BIT = np.array([1, 2, 4, 8, 16, 32, 64, 128], dtype=np.uint8)


def as_words(values: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 -> (n, 4) native uint64, word 0 holding bytes 0-7 big-endian, so
    bit ``p`` of the hash (0 = most significant bit of byte 0) is bit ``63 - p % 64``
    of word ``p // 64``."""
    v = np.ascontiguousarray(values, dtype=np.uint8)
    return v.view(">u8").reshape(-1, 4).astype(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance between two (n, 4) uint64 word matrices.

    The four per-word popcounts (one byte each) are added as one uint32 with a
    multiply (SWAR): numpy's ``sum(axis=1)`` over a 4-wide axis costs several times
    more. The only sum that does not fit a byte, 256, is put back explicitly."""
    x = np.bitwise_xor(a, b)
    counts = np.bitwise_count(x).view(np.uint32).ravel()  # 4 bytes per row
    d = ((counts * np.uint32(0x01010101)) >> np.uint32(24)).astype(np.int32)
    d[counts == 0x40404040] = 256
    return d


def gather_half(words: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``words[rows]`` for an (n, 2) uint64 matrix (16-byte rows as one element)."""
    return words.view("V16").ravel()[rows].view(np.uint64).reshape(-1, 2)


def gather_rows(words: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``words[rows]`` for an (n, 4) uint64 matrix, gathering 32-byte rows as one
    element each (numpy's 2-D fancy indexing copies word by word)."""
    return np.ascontiguousarray(words).view("V32").ravel()[rows].view(np.uint64).reshape(-1, 4)


@dataclass(frozen=True)
class Chunk:
    start: int  # first bit
    bits: int
    radius: int  # -1: not searched

    def keys(self, words: np.ndarray) -> np.ndarray:
        """This chunk's value for each row of an (n, 4) word matrix, as int64."""
        w, off = divmod(self.start, 64)
        mask = np.uint64((1 << self.bits) - 1)
        if off + self.bits <= 64:
            k = (words[:, w] >> np.uint64(64 - off - self.bits)) & mask
        else:
            spill = off + self.bits - 64
            k = ((words[:, w] << np.uint64(spill)) | (words[:, w + 1] >> np.uint64(64 - spill))) & mask
        return k.astype(np.int64)

    def masks(self) -> np.ndarray:
        """Every XOR mask of ``bits`` bits with at most ``radius`` bits set."""
        out = [0]
        for r in range(1, self.radius + 1):
            out.extend(sum(1 << i for i in c) for c in combinations(range(self.bits), r))
        return np.array(out, dtype=np.int32)

    @property
    def probes(self) -> int:
        return sum(comb(self.bits, r) for r in range(self.radius + 1)) if self.radius >= 0 else 0


def layout(k: int, threshold: int) -> list[Chunk]:
    """Cut 256 bits into ``k`` near-equal chunks with radii summing (plus one each) to
    ``threshold + 1``: the pigeonhole bound that makes the search exact."""
    base, extra = divmod(BITS, k)
    q, rem = divmod(threshold + 1, k)
    chunks, start = [], 0
    for i in range(k):
        bits = base + (1 if i < extra else 0)
        chunks.append(Chunk(start, bits, q if i < rem else q - 1))
        start += bits
    return chunks


# Relative costs per probe and per candidate, measured with the benchmark on the
# project's 2-core machine (a candidate costs a random read of a 32-byte hash plus the
# popcount; a probe a bitmap read).
PROBE_COST, CANDIDATE_COST, BITMAP_PASS_COST = 1.0, 4.0, 2.0


def estimated_cost(chunks: list[Chunk], m: int) -> float:
    """Work per query on uniformly random hashes (a lower bound on clustered lists)."""
    cost = 0.0
    for c in chunks:
        if c.radius < 0:
            continue
        occupancy = m / float(1 << c.bits)
        nonempty = 1.0 - np.exp(-occupancy)
        cost += c.probes * (PROBE_COST + BITMAP_PASS_COST * nonempty + CANDIDATE_COST * occupancy)
    return cost


def choose_layout(m: int, threshold: int) -> list[Chunk]:
    """The cheapest exact layout for ``m`` entries whose chunks fit the directory cap."""
    best: tuple[float, list[Chunk]] | None = None
    for k in range(1, BITS + 1):
        chunks = layout(k, threshold)
        searched = [c for c in chunks if c.radius >= 0]
        if not searched or max(c.bits for c in searched) > MAX_CHUNK_BITS:
            continue
        if sum(c.probes for c in searched) > 20_000:
            continue
        # a small list gets small directories: no point in more buckets than ~8 per entry
        cost = estimated_cost(chunks, max(m, 1))
        cost += sum((1 << c.bits) for c in searched) / max(m, 1) * 0.001  # directory memory
        if best is None or cost < best[0]:
            best = (cost, chunks)
    if best is None:
        raise ValueError(f"no exact chunk layout for threshold {threshold}")
    return best[1]


class MIHIndex(SignalIndex):
    """Multi-index hashing over (m, 32) uint8 PDQ values; finds every entry within
    ``threshold`` bits of each query (recall 1.0 by the pigeonhole argument above)."""

    def __init__(self, values: np.ndarray, threshold: int, chunks: list[Chunk] | None = None,
                 query_block: int = 1024) -> None:
        if not 0 <= threshold < BITS:
            raise ValueError("threshold must be between 0 and 255")
        self.threshold = int(threshold)
        self._words = as_words(values)
        m = self._m = int(self._words.shape[0])
        self.chunks = chunks if chunks is not None else choose_layout(m, self.threshold)
        if sum(c.radius + 1 for c in self.chunks) < self.threshold + 1:
            raise ValueError("chunk radii do not cover the threshold: matches could be missed")
        self.query_block = query_block
        self._searched: list[tuple[Chunk, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        id_dtype = np.int32 if m < 2**31 else np.int64
        for c in self.chunks:
            if c.radius < 0:
                continue
            keys = c.keys(self._words)
            nb = 1 << c.bits
            counts = np.bincount(keys, minlength=nb)
            directory = np.zeros(nb + 1, dtype=np.int32 if m < 2**31 else np.int64)
            np.cumsum(counts, out=directory[1:])
            ids = np.argsort(keys, kind="stable").astype(id_dtype)
            bitmap = np.packbits(counts > 0, bitorder="little")
            # half of each hash stored again in bucket order: candidates are rejected
            # from contiguous reads instead of two random ones (id, then hash)
            head = np.ascontiguousarray(gather_rows(self._words, ids)[:, :2])
            self._searched.append((c, c.masks(), directory, ids, bitmap, head))

    def __len__(self) -> int:
        return self._m

    def nbytes(self) -> int:
        return int(self._words.nbytes + sum(
            d.nbytes + i.nbytes + b.nbytes + mk.nbytes + h.nbytes for _, mk, d, i, b, h in self._searched))

    def describe(self) -> str:
        return ", ".join(f"{c.bits}b r{c.radius}" for c in self.chunks)

    def candidates(self, qwords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, entry) pairs sharing a chunk within its radius and within the
        threshold on the first 128 bits (a lower bound of the full distance); with
        repeats."""
        qs: list[np.ndarray] = []
        es: list[np.ndarray] = []
        qhead = np.ascontiguousarray(qwords[:, :2])
        for c, masks, directory, ids, bitmap, head in self._searched:
            probes = (c.keys(qwords).astype(np.int32)[:, None] ^ masks[None, :]).ravel()
            hit = (bitmap[probes >> 3] & _BIT[probes & 7]) != 0
            nz = np.flatnonzero(hit)
            if nz.size == 0:
                continue
            p = probes[nz]
            lo = directory[p]
            cnt = directory[p + 1] - lo
            total = int(cnt.sum())
            qidx = nz // masks.shape[0]
            ends = np.cumsum(cnt)
            pos = np.repeat(lo - (ends - cnt), cnt) + np.arange(total, dtype=lo.dtype)
            qq = np.repeat(qidx, cnt)
            x = np.bitwise_xor(gather_half(head, pos), gather_half(qhead, qq))
            pc = np.bitwise_count(x).view(np.uint16).ravel()  # two popcount bytes per row
            near = np.flatnonzero((pc & np.uint16(255)) + (pc >> np.uint16(8)) <= self.threshold)
            qs.append(qq[near])
            es.append(ids[pos[near]])
        if not qs:
            z = np.zeros(0, dtype=np.int64)
            return z, z.copy()
        return np.concatenate(qs), np.concatenate(es)

    def query_words(self, qwords: np.ndarray) -> Matches:
        if self._m == 0 or qwords.shape[0] == 0:
            return Matches.empty()
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for s in range(0, qwords.shape[0], self.query_block):
            block = qwords[s:s + self.query_block]
            q, e = self.candidates(block)
            if q.size == 0:
                continue
            d = hamming(block[q], gather_rows(self._words, e))
            keep = d <= self.threshold
            q, e, d = q[keep], e[keep], d[keep]
            if q.size == 0:
                continue
            # an entry close in several chunks is found several times: keep one
            pair = q.astype(np.int64) * self._m + e
            pair, first = np.unique(pair, return_index=True)
            parts.append((pair // self._m + s, pair % self._m, d[first]))
        if not parts:
            return Matches.empty()
        return Matches(np.concatenate([p[0] for p in parts]).astype(np.int64),
                       np.concatenate([p[1] for p in parts]).astype(np.int64),
                       np.concatenate([p[2] for p in parts]).astype(np.int32))

    def query(self, values: np.ndarray) -> Matches:
        return self.query_words(as_words(values))


class BruteForceIndex(SignalIndex):
    """Every query against every entry: the reference the benchmark checks recall
    against, and what a very small list uses."""

    def __init__(self, values: np.ndarray, threshold: int, block: int = 64) -> None:
        self.threshold = int(threshold)
        self._words = as_words(values)
        self.block = block

    def __len__(self) -> int:
        return int(self._words.shape[0])

    def nbytes(self) -> int:
        return int(self._words.nbytes)

    def query_words(self, qwords: np.ndarray) -> Matches:
        m = self._words.shape[0]
        if m == 0 or qwords.shape[0] == 0:
            return Matches.empty()
        qs, es, ds = [], [], []
        for s in range(0, qwords.shape[0], self.block):
            block = qwords[s:s + self.block]
            d = np.zeros((block.shape[0], m), dtype=np.int32)
            for w in range(4):
                d += np.bitwise_count(block[:, w, None] ^ self._words[None, :, w])
            q, e = np.nonzero(d <= self.threshold)
            qs.append(q + s)
            es.append(e)
            ds.append(d[q, e])
        return Matches(np.concatenate(qs).astype(np.int64), np.concatenate(es).astype(np.int64),
                       np.concatenate(ds).astype(np.int32))

    def query(self, values: np.ndarray) -> Matches:
        return self.query_words(as_words(values))
