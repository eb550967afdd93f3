"""Conformance checks for ``datahygiene.signals`` plugins."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pyarrow as pa

from datahygiene.signals.base import Normalized, SignalIndex, SignalType
from datahygiene.testing._rules import rule


def _column(values: list[Any]) -> pa.Array:
    if all(v is None or isinstance(v, bytes) for v in values):
        return pa.array(values, type=pa.binary())
    return pa.array(values, type=pa.string())


def _check_normalized(sig: SignalType, norm: Normalized, n: int) -> None:
    rule(isinstance(norm, Normalized), "normalize/parse_entries must return Normalized")
    rule(norm.values.shape == (n, sig.width), f"values must be (n, {sig.width})")
    rule(norm.values.dtype == np.uint8, "values must be uint8")
    rule(norm.valid.shape == (n,) and norm.valid.dtype == bool, "valid must be a bool mask")
    rule(norm.reasons.shape == (n,), "one reason slot per row")
    for ok, reason in zip(norm.valid, norm.reasons, strict=True):
        rule(bool(ok) == (reason is None), "a reason is given exactly for invalid rows")


def check_signal_type(cls: type[SignalType], **config: Any) -> None:
    """Run every contract check against a signal type class."""
    sig = cls(**config)
    rule(
        isinstance(cls.name, str) and cls.name and cls.name == cls.name.lower(),
        "name is a non-empty lower-case string",
    )
    rule(isinstance(cls.width, int) and cls.width > 0, "width is a positive byte count")
    rule(isinstance(cls.default_column, str) and cls.default_column, "default_column is set")
    rule(cls.examples, "ship example values (canonical hex -> accepted spellings)")

    canon: list[bytes] = []
    for hexval, spellings in cls.examples.items():
        want = bytes.fromhex(hexval)
        rule(len(want) == cls.width, f"example {hexval[:8]}... is not {cls.width} bytes")
        for group in (
            [s for s in spellings if isinstance(s, bytes)],
            [s for s in spellings if not isinstance(s, bytes)],
        ):
            if not group:
                continue
            norm = sig.parse_entries(_column(group))
            _check_normalized(sig, norm, len(group))
            rule(norm.valid.all(), f"{cls.name}: an example spelling was rejected")
            for row in norm.values:
                rule(bytes(row) == want, f"{cls.name}: example did not normalise to its canonical value")
        canon.append(want)

    if cls.invalid_examples:
        bad = list(cls.invalid_examples)
        for group in (
            [b for b in bad if isinstance(b, bytes) or b is None],
            [b for b in bad if not isinstance(b, bytes)],
        ):
            if not group:
                continue
            norm = sig.parse_entries(_column(group))
            _check_normalized(sig, norm, len(group))
            rule(not norm.valid.any(), f"{cls.name}: an invalid example was accepted")
            for reason, raw in zip(norm.reasons, group, strict=True):
                rule(isinstance(reason, str) and reason, "invalid rows carry a reason code")
                if isinstance(raw, str) and len(raw) >= 8:
                    rule(raw not in reason, "a reason must never quote the value")

    # Index: every entry finds itself at distance 0; nothing else matches exactly.
    values = np.frombuffer(b"".join(canon), dtype=np.uint8).reshape(-1, cls.width)
    index = sig.build_index(values)
    rule(isinstance(index, SignalIndex), "build_index returns a SignalIndex")
    rule(len(index) == values.shape[0], "len(index) is the number of entries")
    m = index.query(values)
    found = {(int(q), int(e)) for q, e in zip(m.query, m.entry, strict=True)}
    for i in range(values.shape[0]):
        rule((i, i) in found, f"{cls.name}: an indexed entry does not find itself")
    rule((m.distance[m.query == m.entry] == 0).all(), "self-match distance is 0")
    empty = sig.build_index(np.zeros((0, cls.width), dtype=np.uint8))
    rule(len(empty.query(values)) == 0, "an empty index matches nothing")
    if sig.exact:
        far = (~values).astype(np.uint8)
        rule(len(index.query(far)) == 0 or values.shape[0] == 0, "exact index matches only equal values")

    # Determinism and pickling (Ray workers, datasets fingerprints).
    col = _column(
        [s for s in next(iter(cls.examples.values())) if not isinstance(s, bytes)]
        or [next(iter(cls.examples.values()))[0]]
    )
    a, b = sig.parse_entries(col), sig.parse_entries(col)
    rule(np.array_equal(a.values, b.values), "parsing is deterministic")
    clone = pickle.loads(pickle.dumps(sig))
    rule(type(clone) is cls and clone.threshold == sig.threshold, "instances pickle")
