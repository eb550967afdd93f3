"""The scan index sealed beside each stored snapshot: a scan that loads it gets exactly
the lists that loading the snapshot itself gives, and a damaged or misplaced index is
an error, never a silently different list."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from datahygiene.errors import ListError
from datahygiene.lists.model import HashList
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import discover
from datahygiene.store import ListStore
from datahygiene.store import scan_index as si
from datahygiene.store.snapshots import ENTRY_SCHEMA
from datahygiene.store.source import (
    StoreListSource,
    build_scan_index,
    hashlists_from_scan_index,
    snapshot_to_hashlists,
)

KEY_ENV = "DH_TEST_SCAN_INDEX_KEY"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ListStore:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("DATAHYGIENE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "")
    return ListStore.open(None, create=True, key_ref={"env": KEY_ENV})


def _entries(rows: list[tuple[str, str, str, str | None]]) -> pa.Table:
    ids, sigs, vals, cats = (list(c) for c in zip(*rows, strict=True))
    n = len(rows)
    return pa.table([ids, sigs, vals, cats, [None] * n, [None] * n], schema=ENTRY_SCHEMA)


def _mixed() -> pa.Table:
    """md5 and sha1 entries, categories on some, a duplicate value under two ids, a
    malformed md5, a signal type not installed, ids numbered and not."""
    rng = np.random.default_rng(11)
    md5 = [bytes(r).hex() for r in rng.integers(0, 256, (50, 16), dtype=np.uint8)]
    sha1 = [bytes(r).hex() for r in rng.integers(0, 256, (20, 20), dtype=np.uint8)]
    rows: list[tuple[str, str, str, str | None]] = [
        (f"ent-{i:03d}", "md5", v, "A1" if i % 7 == 0 else None) for i, v in enumerate(md5)]
    rows += [(f"ent-{100 + i}", "sha1", v, None) for i, v in enumerate(sha1)]
    rows += [("ent-dup", "md5", md5[4], None), ("ent-bad", "md5", "not-a-digest", None),
             ("ent-nc", "netclean", "ab" * 20, None)]
    return _entries(rows)


def _same(a: HashList, b: HashList) -> None:
    n = len(a)
    assert (a.identity, a.signal, a.source, a.threshold) == (b.identity, b.signal, b.source, b.threshold)
    assert np.array_equal(a.values, b.values) and a.fingerprint == b.fingerprint
    assert a.stats == b.stats and list(a.stats) == list(b.stats)
    every = np.arange(n, dtype=np.int64)
    assert a.ref_strings(every).to_pylist() == b.ref_strings(every).to_pylist()
    cats = [c.to_pylist() if c is not None else [None] * n
            for c in (a.aligned_categories(), b.aligned_categories())]
    assert cats[0] == cats[1]
    assert a.describe() == b.describe()


@pytest.mark.parametrize("signal", [None, "md5", "sha1"])
def test_index_gives_exactly_the_lists_the_snapshot_gives(store: ListStore, signal: str | None) -> None:
    reg = discover()
    store.write_snapshot("p", _mixed(), {"partner": "placeholder", "upstream_version": "9"},
                         scan_index=build_scan_index(reg))
    spec = ListSpec(path="p", signal=signal, source="store")
    slow = snapshot_to_hashlists(store.read_snapshot("p"), reg, spec)
    found = store.read_scan_index("p")
    assert found is not None
    fast = hashlists_from_scan_index("p", found[0], found[1], reg, spec)
    assert fast is not None and len(fast) == len(slow) == (2 if signal is None else 1)
    for a, b in zip(fast, slow, strict=True):
        _same(a, b)
    if signal is None:  # the uninstalled type is counted, never treated as checked
        assert fast[0].stats["unsupported_signals_skipped"] == {"netclean": 1}
    md5 = [hl for hl in fast if hl.signal == "md5"]
    if md5:
        assert md5[0].stats["skipped_bad_entries"] == 1 and md5[0].stats["duplicates"] == 1
    assert fast[0].values.flags.writeable  # the kernels' compiled signatures take writable arrays


def test_scans_load_the_index_and_the_snapshot_is_not_read(store: ListStore) -> None:
    reg = discover()
    store.write_snapshot("p", _mixed(), {}, scan_index=build_scan_index(reg))
    d = store.list_dir("p")
    assert stat.S_IMODE((d / "snapshot-000001.index.dhs").stat().st_mode) == 0o600
    spec = ListSpec(path="p", signal="md5", source="store")
    expected = StoreListSource().load(spec, reg)
    (d / "snapshot-000001.dhs").rename(d / "elsewhere")  # only the index is there to load
    (got,) = StoreListSource().load(spec, reg)
    _same(got, expected[0])


def test_snapshots_without_an_index_load_as_before(store: ListStore) -> None:
    reg = discover()
    store.write_snapshot("p", _mixed(), {})
    assert store.read_scan_index("p") is None
    (hl,) = StoreListSource().load(ListSpec(path="p", signal="sha1", source="store"), reg)
    assert len(hl) == 20


def test_reimporting_an_unchanged_list_adds_the_missing_index(store: ListStore) -> None:
    reg = discover()
    store.write_snapshot("p", _mixed(), {"partner": "placeholder"})
    record, new = store.write_snapshot("p", _mixed(), {"partner": "placeholder"},
                                       scan_index=build_scan_index(reg))
    assert not new and record["version"] == 1 and record["scan_index"] == "snapshot-000001.index.dhs"
    assert store.record("p")["scan_index"] == record["scan_index"]
    spec = ListSpec(path="p", source="store")
    found = store.read_scan_index("p")
    assert found is not None
    fast = hashlists_from_scan_index("p", found[0], found[1], reg, spec)
    assert fast is not None
    for a, b in zip(fast, snapshot_to_hashlists(store.read_snapshot("p"), reg, spec), strict=True):
        _same(a, b)


def test_a_damaged_or_moved_index_is_an_error(store: ListStore) -> None:
    reg = discover()
    store.write_snapshot("p", _mixed(), {}, scan_index=build_scan_index(reg))
    store.write_snapshot("p", _mixed().slice(0, 30), {}, scan_index=build_scan_index(reg))
    d = store.list_dir("p")
    spec = ListSpec(path="p@1", signal="md5", source="store")
    one = (d / "snapshot-000001.index.dhs").read_bytes()
    # snapshot 2's index put in place of snapshot 1's: sealed for version 2, it does not open
    (d / "snapshot-000001.index.dhs").write_bytes((d / "snapshot-000002.index.dhs").read_bytes())
    with pytest.raises(ListError, match=r"snapshot-000001\.index\.dhs: cannot decrypt"):
        StoreListSource().load(spec, reg)
    flipped = bytearray(one)
    flipped[len(flipped) // 2] ^= 1
    (d / "snapshot-000001.index.dhs").write_bytes(bytes(flipped))
    with pytest.raises(ListError, match="cannot decrypt"):
        StoreListSource().load(spec, reg)
    # an index record pointing at another snapshot's (intact) index
    idx = json.loads((d / "index.json").read_text())
    (d / "snapshot-000001.index.dhs").write_bytes(one)
    idx["snapshots"][0]["fingerprint"] = idx["snapshots"][1]["fingerprint"]
    (d / "index.json").write_text(json.dumps(idx))
    with pytest.raises(ListError, match="belongs to another snapshot"):
        StoreListSource().load(spec, reg)


def test_numbered_references_are_kept_as_numbers_only_when_exact() -> None:
    prefix, numbers = si._as_numbered(pa.array(["line:3", "line:12", "line:0"]))  # type: ignore[misc]
    assert prefix == "line:" and numbers.tolist() == [3, 12, 0]
    assert si._as_numbered(pa.array(["17", "4"])) is not None
    for refs in (["line:007"], ["line:3", "row:4"], ["line:"], ["a", "b"], ["line:1", None],
                 ["1" * 19], ["line:1x"]):
        assert si._as_numbered(pa.array(refs, pa.string())) is None, refs


def test_encode_decode_round_trip_and_refusals() -> None:
    values = np.sort(np.random.default_rng(2).integers(0, 256, (5, 4), dtype=np.uint8), axis=0)
    parts = {
        "a": si.IndexedList(values, pa.array(["x:1", "x:2", "x:3", "x:4", "x:5"]), "",
                            pa.array(["c", None, None, None, None]), {"k": 1}),
        "b": si.IndexedList(values[:2], pa.array(["007", "8"]), "", None, {}),
    }
    blob = si.encode({"h": 1}, parts)
    buf = np.frombuffer(blob, dtype=np.uint8).copy()
    header, got = si.decode(buf)
    assert header["h"] == 1 and header["signals"]["a"]["refs"]["kind"] == "int"
    assert header["signals"]["b"]["refs"]["kind"] == "arrow"
    assert np.array_equal(got["a"].values, values) and got["a"].ref_prefix == "x:"
    assert got["a"].refs.to_pylist() == [1, 2, 3, 4, 5] and got["a"].about == header["signals"]["a"]
    assert got["a"].categories is not None and got["a"].categories.to_pylist()[0] == "c"
    assert got["b"].refs.to_pylist() == ["007", "8"] and got["b"].categories is None
    with pytest.raises(si.ScanIndexError):
        si.decode(buf[:-8])
    with pytest.raises(si.ScanIndexError):
        si.decode(np.frombuffer(b"something else entirely, long enough", dtype=np.uint8))
