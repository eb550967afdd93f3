"""Parsing hash columns: hex in any case, whitespace, binary, fixed-size binary.

A value that does not parse is invalid with a reason code (never clean, never
quoted); the property tests throw arbitrary bytes and arbitrary text at the parser.
"""

from __future__ import annotations

import string

import numpy as np
import pyarrow as pa
import pytest
from dhtest import core_registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datahygiene.errors import ListError
from datahygiene.signals.exact import SortedPrefixIndex, match_fixed_column
from datahygiene.signals.hexcodec import hex_strings, normalize_fixed

WIDTHS = {"md5": 16, "sha1": 20, "sha256": 32}
HEXCHARS = set(string.hexdigits)


def _norm(values: list[object], width: int = 16, type: pa.DataType | None = None):
    return normalize_fixed(pa.array(values, type=type), width)


def test_lower_and_upper_case_hex_parse_to_the_same_bytes() -> None:
    raw = bytes(range(16))
    n = _norm([raw.hex(), raw.hex().upper(), "aBcD" + raw.hex()[4:].upper()])
    assert n.valid.tolist() == [True, True, True]
    assert bytes(n.values[0]) == raw and bytes(n.values[1]) == raw
    assert bytes(n.values[2]) == bytes.fromhex("abcd") + raw[2:]
    assert list(n.reasons) == [None, None, None]


def test_surrounding_whitespace_is_tolerated_inner_is_not() -> None:
    h = bytes(range(100, 116)).hex()
    n = _norm([f"  {h}\n", f"\t{h}\r\n", h, h[:16] + " " + h[16:]])
    assert n.valid.tolist() == [True, True, True, False]
    assert all(bytes(v) == bytes(range(100, 116)) for v in n.values[:3])
    assert n.reasons[3] == "wrong-length"


@pytest.mark.parametrize("type", [pa.string(), pa.large_string()])
def test_string_and_large_string(type: pa.DataType) -> None:
    h = "0f" * 16
    n = _norm([h, None], type=type)
    assert n.valid.tolist() == [True, False]
    assert n.reasons.tolist() == [None, "null"]


def test_fixed_size_binary_of_the_right_width() -> None:
    vals = [bytes([i]) * 16 for i in range(4)]
    arr = pa.array([vals[0], None, vals[2], vals[3]], type=pa.binary(16))
    n = normalize_fixed(arr, 16)
    assert n.valid.tolist() == [True, False, True, True]
    assert n.reasons.tolist() == [None, "null", None, None]
    assert bytes(n.values[2]) == vals[2]
    assert not n.values[1].any(), "invalid rows hold zeros"


def test_fixed_size_binary_slice_keeps_its_offset() -> None:
    vals = [bytes([i]) * 16 for i in range(6)]
    arr = pa.array(vals, type=pa.binary(16)).slice(2, 3)
    n = normalize_fixed(arr, 16)
    assert [bytes(v) for v in n.values] == vals[2:5]


def test_fixed_size_binary_of_another_width_is_wrong_length() -> None:
    arr = pa.array([b"\x01" * 20, None], type=pa.binary(20))
    n = normalize_fixed(arr, 16)
    assert not n.valid.any()
    assert n.reasons.tolist() == ["wrong-length", "null"]


@pytest.mark.parametrize("type", [pa.binary(), pa.large_binary()])
def test_variable_binary(type: pa.DataType) -> None:
    good = bytes(range(16))
    n = _norm([good, b"\x00" * 15, None, b"\x00" * 17, b""], type=type)
    assert n.valid.tolist() == [True, False, False, False, False]
    assert n.reasons.tolist() == [None, "wrong-length", "null", "wrong-length", "wrong-length"]
    assert bytes(n.values[0]) == good


def test_non_hex_wrong_length_null_are_invalid_with_reasons() -> None:
    n = _norm(["g" * 32, "0" * 31, "0" * 33, None, "", "0x" + "0" * 30, "é" * 16])
    assert not n.valid.any()
    assert n.reasons.tolist() == ["malformed", "wrong-length", "wrong-length", "null",
                                  "wrong-length", "malformed", "malformed"]


def test_chunked_and_dictionary_columns() -> None:
    h = "ab" * 16
    chunked = pa.chunked_array([pa.array([h, None]), pa.array(["x" * 32])])
    n = normalize_fixed(chunked, 16)
    assert n.valid.tolist() == [True, False, False]
    d = pa.array([h, h, None]).dictionary_encode()
    n = normalize_fixed(d, 16)
    assert n.valid.tolist() == [True, True, False]


def test_all_null_and_unsupported_types_are_invalid() -> None:
    n = normalize_fixed(pa.nulls(3), 16)
    assert n.reasons.tolist() == ["null"] * 3 and not n.valid.any()
    n = normalize_fixed(pa.array([1, 2], pa.int64()), 16)
    assert n.reasons.tolist() == ["malformed"] * 2 and not n.valid.any()


@pytest.mark.parametrize("raw_type,type", [(pa.binary(), pa.string()),
                                           (pa.large_binary(), pa.large_string())])
def test_text_that_is_not_utf8_is_malformed_row_by_row(raw_type: pa.DataType,
                                                       type: pa.DataType) -> None:
    """A parquet string column may hold bytes that are not UTF-8 (writers do not check):
    those rows are malformed and the others decide as ever, in the fused match too.
    The whitespace trim raised ArrowInvalid, and the scan stopped with 'row group 0
    cannot be read; the file may be corrupt' (a list file: a traceback)."""
    h = bytes(range(16))
    raw = [h.hex().encode(), b"\xff" + h.hex().encode(), b" " + h.hex().encode() + b"\xfe",
           b"\xff" * 32, b" " + h.hex().upper().encode() + b"\n", None]
    col = pa.array(raw, raw_type).view(type)
    n = normalize_fixed(col, 16)
    assert n.valid.tolist() == [True, False, False, False, True, False]
    assert n.reasons.tolist() == [None, "malformed", "malformed", "malformed", None, "null"]
    assert bytes(n.values[0]) == h and bytes(n.values[4]) == h
    m = match_fixed_column(col, 16, SortedPrefixIndex(np.frombuffer(h, np.uint8).reshape(1, 16)))
    assert m is not None and sorted(m.matches.query.tolist()) == [0, 4]
    assert m.bad_rows.tolist() == [1, 2, 3, 5]
    assert m.bad_reasons.tolist() == ["malformed", "malformed", "malformed", "null"]


def test_sliced_string_array() -> None:
    vals = [bytes([i]) * 16 for i in range(5)]
    arr = pa.array([v.hex() for v in vals]).slice(1, 3)
    n = normalize_fixed(arr, 16)
    assert [bytes(v) for v in n.values] == vals[1:4]


@pytest.mark.parametrize("name", sorted(WIDTHS))
def test_builtin_exact_signals_use_their_width(name: str) -> None:
    sig = core_registry().signal(name)
    w = WIDTHS[name]
    good = bytes(range(w))
    n = sig.normalize(pa.array([good.hex(), good.hex()[:-2], None]))
    assert n.valid.tolist() == [True, False, False]
    assert n.values.shape == (3, w)


# ----------------------------------------------------------------- property tests

PROP = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROP
@given(st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=40),
       st.lists(st.sampled_from(["lower", "upper", "mixed"]), min_size=40, max_size=40),
       st.lists(st.sampled_from(["", " ", "\t", "\n", "  \r\n"]), min_size=80, max_size=80))
def test_any_bytes_spelled_as_hex_in_any_case_round_trips(raw: list[bytes], cases: list[str],
                                                           pads: list[str]) -> None:
    spelled = []
    for i, b in enumerate(raw):
        h = b.hex()
        if cases[i] == "upper":
            h = h.upper()
        elif cases[i] == "mixed":
            h = "".join(c.upper() if j % 2 else c for j, c in enumerate(h))
        spelled.append(pads[2 * i] + h + pads[2 * i + 1])
    n = normalize_fixed(pa.array(spelled), 16)
    assert n.valid.all()
    assert [bytes(v) for v in n.values] == raw
    b = normalize_fixed(pa.array(raw, pa.binary()), 16)
    f = normalize_fixed(pa.array(raw, pa.binary(16)), 16)
    assert np.array_equal(b.values, n.values) and np.array_equal(f.values, n.values)


def _is_valid_md5_text(s: str) -> bool:
    t = s.strip()
    return len(t) == 32 and set(t) <= HEXCHARS and t.isascii()


@PROP
@given(st.lists(st.one_of(st.text(max_size=40),
                          st.text(alphabet=string.hexdigits + "gxyzG- :", min_size=30, max_size=34)),
                min_size=1, max_size=30))
def test_garbage_text_is_never_valid(values: list[str]) -> None:
    n = normalize_fixed(pa.array(values, pa.string()), 16)
    for s, ok, reason, row in zip(values, n.valid, n.reasons, n.values, strict=True):
        if _is_valid_md5_text(s):
            assert ok and bytes(row) == bytes.fromhex(s.strip())
        else:
            assert not ok, "a value that is not 32 hex digits must never be valid"
            assert reason in ("malformed", "wrong-length")
            assert not row.any()
            if len(s) >= 4:
                assert s not in reason


@PROP
@given(st.lists(st.one_of(st.none(), st.binary(max_size=40)), min_size=1, max_size=30))
def test_binary_is_valid_exactly_when_16_bytes(values: list[bytes | None]) -> None:
    n = normalize_fixed(pa.array(values, pa.binary()), 16)
    for v, ok, reason in zip(values, n.valid, n.reasons, strict=True):
        assert bool(ok) == (v is not None and len(v) == 16)
        assert (reason is None) == bool(ok)
        if v is None:
            assert reason == "null"


def test_view_layouts_parse_like_their_offset_layouts() -> None:
    """string_view / binary_view columns (written by polars or DuckDB) are hashes too,
    not malformed rows."""
    h = bytes(range(16))
    n = normalize_fixed(pa.array([h.hex().upper(), None, "x"]).cast(pa.string_view()), 16)
    assert n.valid.tolist() == [True, False, False] and bytes(n.values[0]) == h
    assert n.reasons.tolist() == [None, "null", "wrong-length"]
    b = normalize_fixed(pa.array([h, None, b"short"]).cast(pa.binary_view()), 16)
    assert b.valid.tolist() == [True, False, False] and bytes(b.values[0]) == h


@pytest.mark.parametrize(("m", "w"), [(0, 16), (1, 16), (7, 20), (1000, 32), (3, 1)])
def test_hex_strings_are_the_rows_in_lower_case_hex(m: int, w: int) -> None:
    rng = np.random.default_rng(m * 100 + w)
    values = rng.integers(0, 256, size=(m, w), dtype=np.uint8)
    got = hex_strings(values)
    got.validate(full=True)
    assert got.type == pa.string()
    assert got.to_pylist() == [bytes(r).hex() for r in values]
    strided = rng.integers(0, 256, size=(m, 2 * w), dtype=np.uint8)[:, ::2]  # not contiguous
    assert hex_strings(strided).to_pylist() == [bytes(r).hex() for r in strided]


def test_hex_strings_refuse_more_than_one_column_holds() -> None:
    """Arrow's string offsets are 32-bit: 2 GiB of hex text (67M MD5s) wrapped them
    silently; now a one-line list error (checked before any memory is touched)."""
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(70_000_000, 16),
                                           strides=(0, 0))
    with pytest.raises(ListError, match="more hex text than one column holds"):
        hex_strings(huge)
