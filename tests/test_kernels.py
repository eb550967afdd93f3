"""The compiled kernels decide exactly what the plain numpy / Python code decides.

Each test builds synthetic inputs with the awkward cases mixed in (nulls, odd byte
offsets, upper case, padding, comments, wrong lengths, non-hex characters, duplicate
and clustered values) and compares the kernel's answer with a direct reference.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from datahygiene import kernels
from datahygiene.lists.files import load_list_file
from datahygiene.lists.model import sort_rows
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import default_registry
from datahygiene.signals.exact import MD5, SHA1, SHA256, ExactDigest, SortedPrefixIndex
from datahygiene.signals.hexcodec import normalize_fixed
from datahygiene.step import Check


def _digest(i: int, width: int = 16) -> bytes:
    return hashlib.sha256(f"synthetic-{i}".encode()).digest()[:width]


@pytest.mark.parametrize("width", [4, 16, 20, 32])
@pytest.mark.parametrize("n", [20_000, 250_000], ids=["one-thread", "two-threads"])
def test_row_order_is_a_stable_lexicographic_sort(width: int, n: int) -> None:
    from datahygiene.lists.model import sort_distinct, sort_rows_with_order

    rng = np.random.default_rng(width)
    v = rng.integers(0, 256, (n, width), dtype=np.uint8)
    v[: n // 2, :2] = 0  # clustered: one bucket holds half the rows
    v[100:150] = v[:50]  # exact duplicates
    v[n - 50:] = v[:50]  # and in the other thread's part of the input
    v[200:230, : min(8, width)] = v[300:330, : min(8, width)]  # equal keys, other tails
    v[400:420, : min(8, width)] = v[n - 20:, : min(8, width)]  # the same across the parts
    expected = np.lexsort([v[:, i] for i in range(width - 1, -1, -1)])  # stable
    assert np.array_equal(sort_rows(v), expected)
    rows, order = sort_rows_with_order(v, threads=2)
    assert np.array_equal(order, expected)
    assert np.array_equal(rows, v[expected])  # the rows moved with their positions
    rows, order, first = sort_distinct(v, threads=2)  # and which rows repeat the one before
    assert np.array_equal(order, expected) and first is not None
    differs = np.ones(n, bool)
    differs[1:] = np.any(rows[1:] != rows[:-1], axis=1)
    assert np.array_equal(first, differs) and not first.all()
    for dtype in (np.int32, np.int64):  # line numbers carried through the sort instead
        lines = (rng.permutation(n) * 3 + 7).astype(dtype)
        rows, carried = sort_rows_with_order(v, threads=2, carry=lines)
        assert carried.dtype == dtype and np.array_equal(carried, lines[expected])
        assert np.array_equal(rows, v[expected])


def test_row_order_of_nothing_and_one() -> None:
    assert sort_rows(np.zeros((0, 16), np.uint8)).shape == (0,)
    assert sort_rows(np.zeros((1, 16), np.uint8)).tolist() == [0]


def test_rows_already_in_strict_order_are_not_copied_and_all_distinct() -> None:
    from datahygiene.lists.model import sort_distinct

    v = np.arange(1000, dtype=">u8").view(np.uint8).reshape(1000, 8)
    rows, order, first = sort_distinct(v)
    assert rows is v and first is None and np.array_equal(order, np.arange(1000))


def _text_list(tmp_path, lines: list[str], name: str = "l.txt"):  # type: ignore[no-untyped-def]
    p = tmp_path / name
    p.write_bytes("\n".join(lines).encode())
    return p


def _load(path, fast: bool, monkeypatch):  # type: ignore[no-untyped-def]
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(MD5, "hex_entries", False)
        [hl] = load_list_file(ListSpec(path=str(path), signal="md5"), default_registry(), threads=2)
    return hl


def test_text_list_fast_path_equals_general_parser(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lines = []
    for i in range(3000):
        h = _digest(i % 2500).hex()  # duplicates
        lines.append([h, h.upper(), f"  {h}\t", f"{h}  # note", "", "# comment", f"{h}\r"][i % 7])
    path = _text_list(tmp_path, lines)
    fast, general = _load(path, True, monkeypatch), _load(path, False, monkeypatch)
    assert fast.fingerprint == general.fingerprint
    assert np.array_equal(fast.values, general.values)
    assert fast.refs.equals(general.refs)
    assert fast.stats == general.stats


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_text_list_parsed_in_pieces_equals_general_parser(  # type: ignore[no-untyped-def]
        tmp_path, monkeypatch, threads: int) -> None:
    """Pieces of 1 KiB and up to five threads: duplicates sit in different pieces, and
    the first occurrence's line must be the one kept, as the general parser keeps it."""
    import datahygiene.lists.text as files

    monkeypatch.setattr(files, "CHUNK_BYTES", 1024)
    lines = []
    for i in range(20_000):
        h = _digest(i % 15_000).hex()  # a quarter of the entries repeat earlier ones
        lines.append([h, h.upper(), f"  {h}\t", f"{h}  # note", "", "# comment", f"{h}\r"][i % 7])
    path = _text_list(tmp_path, lines)
    with monkeypatch.context() as m:
        m.setattr(MD5, "hex_entries", False)
        [general] = load_list_file(ListSpec(path=str(path), signal="md5"), default_registry(),
                                   threads=threads)
    [fast] = load_list_file(ListSpec(path=str(path), signal="md5"), default_registry(),
                            threads=threads)
    assert fast.fingerprint == general.fingerprint
    assert np.array_equal(fast.values, general.values)
    assert fast.refs.equals(general.refs)
    assert fast.stats == general.stats and fast.stats["duplicates"] > 0


@pytest.mark.parametrize("bad", ["zz" * 16, "0" * 31, "0" * 33, "00 " * 11, "é" * 16])
def test_text_list_with_a_bad_line_names_it_as_before(tmp_path, monkeypatch, bad: str) -> None:  # type: ignore[no-untyped-def]
    from datahygiene.errors import ListError

    path = _text_list(tmp_path, [_digest(1).hex(), "# c", bad, _digest(2).hex()])
    messages = []
    for fast in (True, False):
        with pytest.raises(ListError) as err:
            _load(path, fast, monkeypatch)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert "line 3" in messages[0]


def test_parse_hex_lines_counts_lines_and_stops_at_the_first_bad_one() -> None:
    text = f"{_digest(1).hex()}\n\n# x\n{_digest(2).hex().upper()}".encode()
    buf = np.frombuffer(text, np.uint8)
    values = np.empty((4, 16), np.uint8)
    lines = np.empty(4, np.int64)
    k, count, bad = kernels.parse_hex_lines(buf, 16, kernels.HEX_PAIRS, values, lines)
    assert (k, count, bad) == (2, 4, -1)
    assert lines[:2].tolist() == [1, 4]
    assert bytes(values[1]) == _digest(2)
    buf = np.frombuffer(text + b"\nnot-hex\n" + _digest(3).hex().encode(), np.uint8)
    k, count, bad = kernels.parse_hex_lines(buf, 16, kernels.HEX_PAIRS, np.empty((9, 16), np.uint8),
                                            np.empty(9, np.int64))
    assert bad == 4  # 0-based: the fifth line


HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


@pytest.mark.skipif(not kernels.LITTLE_ENDIAN, reason="eight digits a word on little-endian CPUs only")
def test_eight_digits_a_word_decide_as_the_pair_table_does() -> None:
    """Every byte value at every place of a word, and random words: a word is hex
    exactly when each of its bytes is, and it spells the bytes ``bytes.fromhex`` does."""
    rng = np.random.default_rng(11)
    base = b"0aF9bE71"
    words = [base[:p] + bytes([c]) + base[p + 1:] for p in range(8) for c in range(256)]
    words += [bytes(rng.choice(list(HEX_DIGITS), 8)) for _ in range(2000)]
    words += [rng.integers(0, 256, 8, dtype=np.uint8).tobytes() for _ in range(2000)]
    for w in words:
        x = np.frombuffer(w, np.uint64)[0]
        is_hex = all(c in HEX_DIGITS for c in w)
        assert (kernels.hex_word_bad(x) == 0) == is_hex, w
        if is_hex:
            assert int(kernels.hex_word_bytes(x)).to_bytes(4, "little") == bytes.fromhex(w.decode())


@pytest.mark.parametrize("width", [8, 16, 20, 24, 32])
@pytest.mark.parametrize("offset", [0, 1, 3])
def test_a_digest_s_key_is_the_same_at_any_offset_and_width(width: int, offset: int) -> None:
    rng = np.random.default_rng(width + offset)
    for case in range(300):
        raw = rng.integers(0, 256, width, dtype=np.uint8).tobytes()
        text = bytearray(raw.hex().upper() if case % 2 else raw.hex(), "ascii")
        if case % 3 == 0:  # one character that is not hex, anywhere
            text[int(rng.integers(0, len(text)))] = int(rng.choice([0x2F, 0x3A, 0x40, 0x47, 0x60, 0x67,
                                                                    0x20, 0x00, 0xC3, 0xFF]))
        buf = np.frombuffer(bytes(offset) + bytes(text) + bytes(3), np.uint8)
        ok, key = kernels._hex_key(buf, offset, width, kernels.HEX_PAIRS)
        expected = all(c in HEX_DIGITS for c in text)
        assert ok == expected
        if ok:
            assert int(key) == int.from_bytes(raw[:8], "big")


def _column_cases(rng: np.random.Generator, n: int, listed: list[bytes], width: int) -> list[object]:
    out: list[object] = []
    for i in range(n):
        r = rng.random()
        h = (listed[i % len(listed)] if r < 0.1 else _digest(10_000 + i, width)).hex()
        if r < 0.05:
            h = h.upper()
        elif r < 0.15:
            out.append(None)
            continue
        elif r < 0.2:
            h = "abc"  # odd length: shifts every later value to an odd byte offset
        elif r < 0.25:
            h = f" {h} "
        elif r < 0.28:
            h = h[:-1] + "g"
        elif r < 0.3:
            h = "é" + h[2:]
        out.append(h)
    return out


def _reference(values: list[object], listed: set[bytes], width: int) -> tuple[set[int], dict[int, str]]:
    """Rows that match and rows that cannot be checked, decided in plain Python."""
    hits, bad = set(), {}
    for i, v in enumerate(values):
        if v is None:
            bad[i] = "null"
            continue
        t = str(v).strip()
        if len(t.encode()) != 2 * width:  # lengths are in bytes, as Arrow stores them
            bad[i] = "wrong-length"
            continue
        try:
            b = bytes.fromhex(t)
        except ValueError:
            bad[i] = "malformed"
            continue
        if b in listed:
            hits.add(i)
    return hits, bad


class _Narrow(ExactDigest):  # a plugin's digest narrower than the 8-byte key
    name, width, default_column, algorithm = "narrow", 4, "narrow", "md5"


class _Wide(ExactDigest):  # a plugin's digest of a width without its own compiled loop
    name, width, default_column, algorithm = "wide", 24, "wide", "sha384"


@pytest.mark.parametrize("sig", [MD5(), SHA1(), SHA256(), _Narrow(), _Wide()],
                         ids=["md5", "sha1", "sha256", "width-4", "width-24"])
@pytest.mark.parametrize("large", [False, True])
def test_fused_hex_matching_agrees_with_the_reference(sig, large: bool) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    listed = [_digest(i, sig.width) for i in range(500)]
    values = _column_cases(rng, 5000, listed, sig.width)
    col = pa.array(values, pa.large_string() if large else pa.string())
    # and a column without nulls (no validity bitmap) whose digests all sit at even offsets
    plain = pa.array([v for v in values if v is not None and len(str(v)) == 2 * sig.width],
                     col.type)
    assert plain.buffers()[0] is None
    index = SortedPrefixIndex(normalize_fixed(pa.array([x.hex() for x in listed]), sig.width).values)
    for part in (col, col.slice(1), col.slice(777, 3000), plain):  # sliced: offsets and validity shift
        got = sig.match_column(part, index)
        assert got is not None
        hits, bad = _reference(part.to_pylist(), set(listed), sig.width)
        assert set(got.matches.query.tolist()) == hits
        assert dict(zip(got.bad_rows.tolist(), got.bad_reasons.tolist(), strict=True)) == bad
        assert got.bad_rows.tolist() == sorted(bad)
        # the same decisions as normalising first and querying the index
        norm = sig.normalize(part)
        slow = index.query(norm.values[norm.valid])
        assert sorted(np.flatnonzero(norm.valid)[slow.query].tolist()) == sorted(
            got.matches.query.tolist())


def test_fused_matching_reports_every_list_holding_a_value() -> None:
    sig = MD5()
    shared = _digest(1)
    from datahygiene.lists.model import HashList, ListIdentity

    lists = [HashList(ListIdentity("p", name, "1"), "md5", np.frombuffer(v, np.uint8).reshape(-1, 16),
                      pa.array(np.arange(1, len(v) // 16 + 1)), ref_prefix="line:")
             for name, v in (("a", shared + _digest(2)), ("b", _digest(3) + shared))]
    lists = [HashList.from_parsed(hl.identity, "md5", hl.values, hl.refs, ref_prefix="line:")
             for hl in lists]
    check = Check(sig, "md5", lists)
    out = check.run(pa.table({"md5": pa.array([shared.hex(), _digest(3).hex(), None])}))
    assert sorted(zip(out.match_rows.tolist(), out.match_list.to_pylist(), strict=True)) == [
        (0, "p/a@1"), (0, "p/b@1"), (1, "p/b@1")]
    assert out.invalid_rows.tolist() == [2]


def test_binary_columns_take_the_compiled_probe() -> None:
    sig = MD5()
    listed = [_digest(i) for i in range(100)]
    index = SortedPrefixIndex(np.frombuffer(b"".join(listed), np.uint8).reshape(-1, 16))
    col = pa.array([listed[5], _digest(999), None, b"short", listed[99]], pa.binary())
    got = sig.match_column(col, index)
    assert got is not None
    assert sorted(got.matches.query.tolist()) == [0, 4]
    assert got.bad_rows.tolist() == [2, 3]
    fixed = pa.array([listed[5], None, _digest(999)], pa.binary(16))
    got = sig.match_column(fixed, index)
    assert got is not None and got.matches.query.tolist() == [0] and got.bad_rows.tolist() == [1]


@pytest.mark.parametrize("width", [4, 7, 8, 9, 16, 20, 32])
def test_rows_strictly_increasing_agrees_with_byte_order(width: int) -> None:
    """The check that lets a list written in order skip its sort compares 8-byte keys
    first, the bytes after only where keys tie: against Python's byte comparison on
    small rows of few distinct bytes (ties in every position), sorted and not."""
    rng = np.random.default_rng(width)
    for trial in range(400):
        v = rng.integers(0, 3, size=(int(rng.integers(0, 8)), width), dtype=np.uint8)
        if trial % 2 and len(v):
            v = v[np.lexsort([v[:, i] for i in range(width - 1, -1, -1)])]
        rows = [bytes(r) for r in v]
        want = all(rows[i] > rows[i - 1] for i in range(1, len(rows)))
        assert kernels.rows_strictly_increasing(np.ascontiguousarray(v)) == want


def test_a_list_written_in_order_is_not_sorted_again() -> None:
    from datahygiene.lists.model import sort_rows_with_order

    rng = np.random.default_rng(3)
    v = rng.integers(0, 256, (5000, 16), dtype=np.uint8)
    v = v[np.lexsort([v[:, i] for i in range(15, -1, -1)])]
    v = v[np.concatenate(([True], np.any(v[1:] != v[:-1], axis=1)))]  # unique
    out, order = sort_rows_with_order(v)
    assert out is v and np.array_equal(order, np.arange(v.shape[0]))
    for broken in (np.concatenate([v[:10], v[9:10], v[10:]]),  # a duplicate
                   np.concatenate([v[1:2], v[:1], v[2:]])):  # two rows swapped
        out, order = sort_rows_with_order(broken)
        assert out is not broken
        assert np.array_equal(order, np.lexsort([broken[:, i] for i in range(15, -1, -1)]))


@pytest.mark.slow
def test_warm_up_compiles_every_kernel_a_scan_calls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`make env` runs the warm-up so that no scan pauses to compile (seconds per
    kernel). On an empty numba cache: warm up, then scan text and CSV lists, hex and
    binary columns, with reports: numba saves nothing new to its cache. A list's line
    numbers reach the sort read-only, a variant the warm-up once missed."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "NUMBA_DEBUG_CACHE": "1"}
    py = [sys.executable, "-c"]
    subprocess.run([*py, "from datahygiene.kernels import warm_up; warm_up()"], env=env,
                   check=True, capture_output=True)
    cli = "from datahygiene.cli import main; main()"
    for variant in ([], ["--binary"]):
        syn = tmp_path / f"syn{len(variant)}"
        subprocess.run([*py, cli, "synth", "--out", str(syn), "--rows", "300000", "--list-size",
                        "200000", "--url-list", *variant], env=env, check=True, capture_output=True)
        lists = [f"--list={p.name.split('.')[0].replace('urls', 'url-sha256')}={p}"
                 for p in sorted((syn / "lists").iterdir()) if p.suffix in (".txt", ".csv")]
        out = subprocess.run([*py, cli, "scan", "--manifest", str(syn / "manifest"), *lists,
                              "--out", str(tmp_path / f"out{len(variant)}"), "-q"],
                             env=env, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        saved = [ln for ln in out.stdout.splitlines() + out.stderr.splitlines() if "data saved" in ln]
        assert not saved, f"compiled during a scan: {saved}"
