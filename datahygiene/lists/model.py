"""What a partner list is once loaded: identity, canonical entries, fingerprint.

Entries are held as a canonical ``(m, width)`` uint8 matrix, sorted and de-duplicated,
beside opaque entry references. A reference identifies an entry to the people who
hold the list (the partner's id, or ``line:N`` of the file) without being the value,
so it may appear in restricted outputs; values never appear anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene import kernels
from datahygiene.signals.base import take_rows

FINGERPRINT_DOMAIN = b"datahygiene-list-v1\0"


@dataclass(frozen=True)
class ListIdentity:
    """Who supplied a list and which snapshot it is."""

    partner: str
    name: str
    version: str
    retrieved_at: str | None = None

    @property
    def id(self) -> str:
        return f"{self.partner}/{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"partner": self.partner, "name": self.name, "version": self.version}
        if self.retrieved_at:
            out["retrieved_at"] = self.retrieved_at
        return out


def sort_rows_with_order(values: np.ndarray, threads: int = 2, carry: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted lexicographically, and the input position of each (see
    :func:`sort_distinct`)."""
    rows, order, _ = sort_distinct(values, threads, carry, mark=False)
    return rows, order


def sort_distinct(values: np.ndarray, threads: int = 2, carry: np.ndarray | None = None,
                  mark: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rows sorted lexicographically, and the input position of each (stable: among
    equal rows the earliest comes first, so de-duplication keeps the first occurrence);
    and, with ``mark``, whether each sorted row differs from the one before it (a bool
    array; None when every row does, or without ``mark``), found by the sort's threads
    as they finish each bucket rather than by a pass of its own.

    With ``carry`` (an integer array aligned with the rows: a text list's line
    numbers), that array comes back in the rows' new order instead of the positions:
    no positions to hold (8 bytes a row) and no gather by them afterwards.

    A compiled two-pass radix sort on the rows' leading 8 bytes
    (datahygiene/kernels.py), linear for uniformly spread values such as digests: a
    counting pass on the top bits, then each thread copies its own part of the input
    into the buckets (stable), and each bucket -- a few kilobytes, in cache -- is
    finished in place, the buckets split into ``threads`` ranges of about equal size.
    Memory: the sorted copy and the order (24 bytes per 16-byte row), written once:
    fresh memory costs its page faults, which dominated this sort when it also kept
    each row's key and a second copy of the order."""
    values = np.ascontiguousarray(values, dtype=np.uint8)
    n, w = values.shape
    if carry is not None:
        carry = np.ascontiguousarray(carry)
        if carry.dtype not in (np.int32, np.int64) or carry.shape != (n,):
            raise ValueError("carry must be an int32 or int64 array with one value per row")
    if kernels.rows_strictly_increasing(values):  # written in order already: no copy
        return values, (np.arange(n, dtype=np.int64) if carry is None else carry), None
    parts = max(1, min(threads, n // 100_000))
    bits = int(min(12, max(1, n.bit_length() - 10)))  # ~1,000+ entries per bucket
    cuts_in = [n * k // parts for k in range(parts + 1)]
    order = np.empty(n, dtype=np.int64 if carry is None else carry.dtype)
    out = np.empty((n, w), dtype=np.uint8)
    carried = np.zeros(0, dtype=np.int64) if carry is None else carry
    first = np.empty(n if mark else 0, dtype=np.uint8)

    def count(k: int) -> np.ndarray:
        return np.asarray(kernels.radix_counts(values, cuts_in[k], cuts_in[k + 1], bits))

    def place(k: int, fill: np.ndarray) -> None:
        kernels.radix_scatter(values, cuts_in[k], cuts_in[k + 1], bits, fill, out, order, carried)

    with ThreadPoolExecutor(parts) as pool:
        counts = np.stack(list(pool.map(count, range(parts))))  # (parts, buckets)
        totals = counts.sum(axis=0)
        starts = np.zeros(totals.shape[0] + 1, dtype=np.int64)
        np.cumsum(totals, out=starts[1:])
        # part k's entries of bucket b follow those of parts before it: stable
        fills = starts[:-1] + np.cumsum(counts, axis=0) - counts
        list(pool.map(place, range(parts), [np.ascontiguousarray(f) for f in fills]))
        cuts = [0, *(int(np.searchsorted(starts, n * k // parts)) for k in range(1, parts)),
                1 << bits]

        def finish(k: int) -> None:
            kernels.sort_buckets(out, bits, starts, cuts[k], cuts[k + 1], order, first)

        list(pool.map(finish, range(parts)))
    return out, order, (first.view(np.bool_) if mark else None)


def sort_rows(values: np.ndarray) -> np.ndarray:
    """Stable lexicographic argsort of fixed-width byte rows (see
    :func:`sort_rows_with_order`)."""
    return sort_rows_with_order(values)[1]


def fingerprint(signal: str, values: np.ndarray) -> str:
    """SHA-256 over the canonical entries (docs/list-formats.md#fingerprint).

    ``values`` must already be sorted and unique. The digest covers a domain tag, the
    signal name, the entry count and every canonical value in order -- the list's
    content, independent of file format, line order, case, duplicates or entry ids --
    so two parties holding the same list snapshot compute the same fingerprint
    without exchanging a single value.
    """
    h = hashlib.sha256(FINGERPRINT_DOMAIN)
    h.update(signal.encode() + b"\0")
    h.update(np.uint64(values.shape[0]).astype("<u8").tobytes())
    h.update(np.ascontiguousarray(values).reshape(-1).data)  # its own buffer: no copy
    return "sha256:" + h.hexdigest()


class _Later:
    """A value computed on a thread of its own. Asked for, it is waited for; where that
    thread is gone (a process forked while it ran: only the forking thread lives on in
    the child), or it failed, it is computed then and there."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self._fn, self._args = fn, args
        self._value: Any = None
        self._thread = threading.Thread(target=self._run, name="datahygiene-fingerprint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the caller computes it again, and sees why
            self._value = self._fn(*self._args)

    def result(self) -> Any:
        self._thread.join()
        if self._value is None:
            self._value = self._fn(*self._args)
        return self._value


@dataclass
class HashList:
    """One signal's entries from one partner list snapshot."""

    identity: ListIdentity
    signal: str
    # the list's contents: never in a repr that may reach a log
    values: np.ndarray = field(repr=False)  # (m, width) uint8, sorted, unique
    # strings, or integers spelled ref_prefix + N; aligned with values, or see ref_order
    refs: pa.Array = field(repr=False)
    categories: pa.Array | None = field(default=None, repr=False)  # aligned like refs
    source: str = ""
    threshold: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    ref_prefix: str = ""
    # value row i's reference and category are refs[ref_order[i]] (None: refs[i]).
    # String references are not reordered at load time: millions of strings would be
    # copied for the handful of entries a scan ever names.
    ref_order: np.ndarray | None = field(default=None, repr=False)

    # the fingerprint, or its computation on a thread of its own until first asked for
    _fingerprint: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # SHA-256 of every entry (45 ms for 5M MD5 entries) is serial, and the scan needs
        # it only once the index is built: computed meanwhile, beside the index's threads
        self._fingerprint = _Later(fingerprint, self.signal, self.values)

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the canonical entries (:func:`fingerprint`)."""
        if not isinstance(self._fingerprint, str):
            self._fingerprint = self._fingerprint.result()
        return str(self._fingerprint)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to a Ray worker, or a forked process's sibling) with its fingerprint
        as a value: a thread does not travel."""
        state = dict(self.__dict__)
        state["_fingerprint"] = self.fingerprint
        return state

    def ref_strings(self, entries: np.ndarray) -> pa.Array:
        """The opaque references of the given entries, as strings."""
        entries = np.asarray(entries, dtype=np.int64)
        if self.ref_order is not None:
            entries = self.ref_order[entries]
        taken = self.refs.take(pa.array(entries, type=pa.int64()))
        if pa.types.is_integer(taken.type):
            return pc.binary_join_element_wise(self.ref_prefix, taken.cast(pa.string()), "")
        return taken.cast(pa.string())

    def aligned_categories(self) -> pa.Array | None:
        """The categories, one per value row in order."""
        if self.categories is None or self.ref_order is None:
            return self.categories
        return self.categories.take(pa.array(self.ref_order, type=pa.int64()))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def id(self) -> str:
        return self.identity.id

    def describe(self) -> dict[str, Any]:
        """Everything run.json may say about the list: never a value."""
        out: dict[str, Any] = {
            "id": self.id,
            **self.identity.to_dict(),
            "signal": self.signal,
            "entries": len(self),
            "fingerprint": self.fingerprint,
            "source": self.source,
            "stats": dict(self.stats),
        }
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out

    @classmethod
    def from_parsed(
        cls,
        identity: ListIdentity,
        signal: str,
        values: np.ndarray,
        refs: pa.Array,
        categories: pa.Array | None = None,
        **kwargs: Any,
    ) -> HashList:
        """Sort and de-duplicate parsed entries (one reference kept per value)."""
        numbered = (pa.types.is_integer(refs.type) and not refs.null_count and categories is None
                    and refs.type in (pa.int32(), pa.int64()))
        # line numbers ride along with the rows through the sort; other references are
        # reached through the sorted positions (ref_order)
        v, order, marks = sort_distinct(values, carry=refs.to_numpy() if numbered else None)
        first = np.ones(v.shape[0], dtype=bool) if marks is None else marks
        keep = order if first.all() else order[first]
        stats = dict(kwargs.pop("stats", {}))
        stats["duplicates"] = int(v.shape[0] - keep.shape[0])
        if numbered:
            return cls(identity=identity, signal=signal,
                       values=v if first.all() else take_rows(v, np.flatnonzero(first)),
                       refs=pa.array(keep), stats=stats, **kwargs)
        return cls(
            identity=identity,
            signal=signal,
            values=v if first.all() else take_rows(v, np.flatnonzero(first)),
            refs=refs if pa.types.is_integer(refs.type) else refs.cast(pa.string()),
            categories=categories,
            stats=stats,
            ref_order=np.ascontiguousarray(keep, dtype=np.int64),
            **kwargs,
        )
