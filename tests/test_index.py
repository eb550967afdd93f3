"""The sorted-prefix exact index: every match found, nothing else, even when entries
share their leading 64 bits (the part the index sorts and prefilters on)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from dhtest import core_registry, rand_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from datahygiene.lists.model import HashList, ListIdentity, sort_rows
from datahygiene.signals.exact import SortedPrefixIndex, prefix64
from datahygiene.step import Check, ScanPlan, check_batch


def _pairs(m) -> set[tuple[int, int]]:
    return {(int(q), int(e)) for q, e in zip(m.query, m.entry, strict=True)}


def _brute(queries: np.ndarray, entries: np.ndarray) -> set[tuple[int, int]]:
    eq = np.all(queries[:, None, :] == entries[None, :, :], axis=2)
    return {(int(q), int(e)) for q, e in zip(*np.nonzero(eq), strict=True)}


def test_prefix64_is_big_endian_and_pads_narrow_rows() -> None:
    v = np.array([[1, 2, 3, 4, 5, 6, 7, 8, 9]], dtype=np.uint8)
    assert int(prefix64(v)[0]) == 0x0102030405060708
    assert int(prefix64(np.array([[0xAB, 0xCD]], dtype=np.uint8))[0]) == 0xABCD << 48


def test_prefix_collisions_with_different_tails() -> None:
    prefix = bytes(range(1, 9))
    entries = np.frombuffer(b"".join(prefix + bytes([t]) * 8 for t in (1, 2, 3)), np.uint8).reshape(3, 16)
    idx = SortedPrefixIndex(entries)
    queries = np.frombuffer(
        prefix + bytes([2]) * 8      # equals entry 1
        + prefix + bytes([9]) * 8    # shares the prefix with all three, matches none
        + prefix + bytes([3]) * 8    # equals entry 2
        + bytes(16),                 # nothing in common
        np.uint8).reshape(4, 16)
    assert _pairs(idx.query(queries)) == {(0, 1), (2, 2)}


def test_prefix_collision_with_differing_last_byte_only() -> None:
    base = rand_bytes(1, 32, seed=3)[0]
    entries = np.stack([base] * 4)
    for i in range(4):
        entries[i, 31] = i
    idx = SortedPrefixIndex(entries[[2, 0, 3, 1]])  # unsorted input
    q = entries.copy()
    q[3, 31] = 200
    found = _pairs(idx.query(q))
    # entry positions refer to the order given to the index
    assert found == {(0, 1), (1, 3), (2, 0)}


def test_unsorted_entries_and_many_queries_match_brute_force() -> None:
    entries = rand_bytes(500, 16, seed=1)
    entries[::7, :8] = entries[0, :8]  # a block of shared prefixes
    queries = np.concatenate([entries[::3], rand_bytes(300, 16, seed=2)])
    queries[::11, 15] ^= 1  # near misses
    idx = SortedPrefixIndex(entries)
    assert _pairs(idx.query(queries)) == _brute(queries, entries)
    assert len(idx) == 500


def test_empty_index_and_empty_query() -> None:
    empty = SortedPrefixIndex(np.zeros((0, 16), np.uint8))
    assert len(empty.query(rand_bytes(5, 16))) == 0
    idx = SortedPrefixIndex(rand_bytes(5, 16))
    assert len(idx.query(np.zeros((0, 16), np.uint8))) == 0


def test_duplicate_entries_each_reported() -> None:
    e = rand_bytes(3, 16, seed=5)
    entries = np.concatenate([e, e[1:2]])
    m = SortedPrefixIndex(entries).query(e[1:2])
    assert _pairs(m) == {(0, 1), (0, 3)}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=4, max_size=4), min_size=1, max_size=30),
       st.lists(st.binary(min_size=4, max_size=4), min_size=1, max_size=30),
       st.integers(0, 2**32 - 1))
def test_index_matches_brute_force_with_shared_prefixes(etails: list[bytes], qtails: list[bytes],
                                                         seed: int) -> None:
    # 12 shared leading bytes (few prefixes) and short random tails force collisions
    heads = rand_bytes(3, 12, seed=seed % 1000)
    entries = np.stack([np.concatenate([heads[i % 3], np.frombuffer(t, np.uint8)])
                        for i, t in enumerate(etails)])
    queries = np.stack([np.concatenate([heads[i % 3], np.frombuffer(t, np.uint8)])
                        for i, t in enumerate(qtails + etails)])
    assert _pairs(SortedPrefixIndex(entries).query(queries)) == _brute(queries, entries)


def test_sort_rows_full_lexicographic_when_prefixes_tie() -> None:
    v = rand_bytes(50, 16, seed=9)
    v[:, :8] = 7
    order = sort_rows(v)
    s = [bytes(r) for r in v[order]]
    assert s == sorted(s)


def _hl(name: str, values: np.ndarray) -> HashList:
    refs = pa.array(np.arange(1, len(values) + 1), pa.int64())
    return HashList.from_parsed(ListIdentity("synthetic", name, "1"), "md5", values, refs,
                                ref_prefix="line:")


def test_duplicates_across_lists_give_one_match_per_list() -> None:
    shared = rand_bytes(2, 16, seed=20)
    a = _hl("a", np.concatenate([shared, rand_bytes(10, 16, seed=21)]))
    b = _hl("b", np.concatenate([rand_bytes(10, 16, seed=22), shared[:1]]))
    check = Check(core_registry().signal("md5"), "md5", [a, b])
    col = pa.array([bytes(shared[0]).hex(), bytes(shared[1]).hex(), "00" * 16])
    res = check_batch(pa.table({"md5": col}), ScanPlan([check]), "f.parquet")
    rows = res.flagged.to_pylist()
    assert [r["row_index"] for r in rows] == [0, 1]
    assert [(m["list"], m["entry_ref"]) for m in rows[0]["matches"]] == [
        ("synthetic/a@1", "line:1"), ("synthetic/b@1", "line:11")]
    assert [m["list"] for m in rows[1]["matches"]] == ["synthetic/a@1"]
    assert res.clean.tolist() == [False, False, True]


def test_index_built_in_two_halves_equals_one_pass() -> None:
    """A large list's filter and directory are built on two threads, split between two
    filter words; the result must be exactly the single-threaded one, also when values
    cluster around the split."""
    rng = np.random.default_rng(11)
    uniform = rng.integers(0, 256, (1_200_000, 16), dtype=np.uint8)
    clustered = uniform.copy()
    clustered[: 900_000, :3] = 0x80  # most rows share one filter word's prefix
    for values in (uniform, clustered):
        rows = values[sort_rows(values)]
        index = SortedPrefixIndex(rows)
        words, directory = index._words.copy(), index._dir.copy()
        # each bucket's first row, found by searching (the definition, in numpy)
        buckets = prefix64(rows) >> np.uint64(index._dshift)
        want = np.searchsorted(buckets, np.arange(directory.shape[0], dtype=np.uint64))
        assert np.array_equal(directory, want)
        index._words[:] = 0
        index._dir[:] = 0
        index._build(threads=1)
        assert np.array_equal(index._words, words)
        assert np.array_equal(index._dir, directory)
        hits = index.query(values[::1000])
        assert len(hits.query) == len(values[::1000])
