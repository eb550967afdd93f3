"""The pdq signal type: parsing, distance, threshold edges, quality, and an index that
finds every entry within the threshold (checked against brute force)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from datahygiene_pdq.index import BruteForceIndex, MIHIndex, choose_layout, layout
from datahygiene_pdq.signal import PDQ
from pdq_images import flip_bits, hamming

from datahygiene.plugins import default_registry
from datahygiene.testing import check_signal_type

H = "f8f8f0cce0f4e84d0e370a22028f67f0b36e2ed596623e1d33e6339c4e9c9b22"


def pairs(m: object) -> set[tuple[int, int, int]]:
    return {(int(q), int(e), int(d)) for q, e, d in zip(m.query, m.entry, m.distance, strict=True)}  # type: ignore[attr-defined]


def test_conformance_kit() -> None:
    check_signal_type(PDQ)
    check_signal_type(PDQ, threshold=10)


def test_registered_through_entry_point() -> None:
    sig = default_registry().signal("pdq", threshold=20)
    assert isinstance(sig, PDQ) and sig.effective_threshold == 20 and not sig.exact
    assert PDQ().effective_threshold == 31


def test_parse_hex_any_case_whitespace_and_raw_bytes() -> None:
    sig = PDQ()
    norm = sig.normalize(pa.array([H, H.upper(), f" {H}\t\n", None, "zz" * 32, H[:-2], H + "00"]))
    assert norm.valid.tolist() == [True, True, True, False, False, False, False]
    assert all(bytes(norm.values[i]) == bytes.fromhex(H) for i in range(3))
    assert norm.reasons[3:].tolist() == ["null", "malformed", "wrong-length", "wrong-length"]
    raw = sig.normalize(pa.array([bytes.fromhex(H), b"\x01" * 31], pa.binary()))
    assert raw.valid.tolist() == [True, False] and raw.reasons[1] == "wrong-length"
    fixed = sig.normalize(pa.array([bytes.fromhex(H)], pa.binary(32)))
    assert fixed.valid.all() and bytes(fixed.values[0]) == bytes.fromhex(H)


def test_reasons_never_quote_the_value() -> None:
    bad = "g" + H[1:]
    norm = PDQ().normalize(pa.array([bad]))
    assert not norm.valid[0] and bad not in str(norm.reasons[0])


def test_distance_is_hamming() -> None:
    a = bytes.fromhex(H)
    rows = [flip_bits(a, n, seed=n) for n in (0, 1, 31, 32, 256)]
    va = np.frombuffer(a * len(rows), np.uint8).reshape(-1, 32)
    vb = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 32)
    assert PDQ().distance(va, vb).tolist() == [0, 1, 31, 32, 256]


@pytest.mark.parametrize("size", [10, 5000])  # brute force below 2048 entries, MIH above
def test_threshold_edges_31_matches_32_does_not(size: int) -> None:
    rng = np.random.default_rng(size)
    entries = rng.integers(0, 256, (size, 32), dtype=np.uint8)
    base = bytes(entries[7])
    queries = [flip_bits(base, d, seed=d) for d in (0, 1, 30, 31, 32, 33, 40)]
    index = PDQ().build_index(entries)
    q = np.frombuffer(b"".join(queries), np.uint8).reshape(-1, 32)
    found = {(qi, e): d for qi, e, d in pairs(index.query(q))}
    assert {qi for qi, e in found if e == 7} == {0, 1, 2, 3}
    assert [found[(i, 7)] for i in range(4)] == [0, 1, 30, 31]
    # a per-list threshold narrows it
    narrow = PDQ(threshold=30).build_index(entries)
    assert {qi for qi, e, _ in pairs(narrow.query(q)) if e == 7} == {0, 1, 2}


def test_layouts_cover_the_threshold() -> None:
    for t in (0, 1, 15, 31, 40, 63):
        for k in (8, 11, 12, 16, 32, 40):
            chunks = layout(k, t)
            assert sum(c.bits for c in chunks) == 256
            assert sum(c.radius + 1 for c in chunks) >= t + 1
    chosen = choose_layout(1_000_000, 31)
    assert max(c.bits for c in chosen) <= 24


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), threshold=st.sampled_from([0, 5, 31, 40]),
       k=st.sampled_from([None, 14, 16, 20, 40]))
def test_mih_finds_exactly_what_brute_force_finds(seed: int, threshold: int, k: int | None) -> None:
    rng = np.random.default_rng(seed)
    # clustered: a few bases with many near copies, so buckets are crowded
    bases = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    entries = np.repeat(bases, 30, axis=0)
    flips = np.unpackbits(entries, axis=1)
    for row in flips:
        row[rng.choice(256, int(rng.integers(0, 45)), replace=False)] ^= 1
    entries = np.packbits(flips, axis=1)
    queries = np.concatenate([entries[rng.integers(0, len(entries), 50)],
                              rng.integers(0, 256, (20, 32), dtype=np.uint8)])
    qbits = np.unpackbits(queries, axis=1)
    for row in qbits[:50]:
        row[rng.choice(256, int(rng.integers(0, 45)), replace=False)] ^= 1
    queries = np.packbits(qbits, axis=1)
    chunks = None if k is None else layout(k, threshold)
    mih = MIHIndex(entries, threshold, chunks, query_block=16)
    brute = BruteForceIndex(entries, threshold)
    got, want = pairs(mih.query(queries)), pairs(brute.query(queries))
    assert got == want
    assert all(d == hamming(bytes(queries[q]), bytes(entries[e])) for q, e, d in got)


def test_quality_struct_low_quality_is_unverified() -> None:
    col = pa.StructArray.from_arrays(
        [pa.array([H, H, H, None]), pa.array([100, 49, 50, 100], pa.int32())],
        names=["value", "quality"])
    norm = PDQ().normalize(col)
    assert norm.valid.tolist() == [True, False, True, False]
    assert norm.reasons.tolist() == [None, "low-quality", None, "null"]
    assert norm.quality is not None and norm.quality.tolist() == [100, 49, 50, 100]
    stricter = PDQ(options={"min_quality": 80}).normalize(col)
    assert stricter.valid.tolist() == [True, False, False, False]
    anyway = PDQ(options={"low_quality": "match"}).normalize(col)
    assert anyway.valid.tolist() == [True, True, True, False]


def test_list_entries_keep_low_quality() -> None:
    col = pa.StructArray.from_arrays([pa.array([H]), pa.array([10])], names=["hash", "quality"])
    assert PDQ().parse_entries(col).valid.all()


def test_deterministic_and_picklable() -> None:
    rng = np.random.default_rng(3)
    entries = rng.integers(0, 256, (4000, 32), dtype=np.uint8)
    q = np.concatenate([entries[:100], rng.integers(0, 256, (100, 32), dtype=np.uint8)])
    a = PDQ().build_index(entries).query(q)
    b = pickle.loads(pickle.dumps(PDQ())).build_index(entries).query(q)
    assert pairs(a) == pairs(b) and len(a) >= 100
