"""The signal-type interface: what a kind of hash is and how values of it compare.

A *signal type* knows three things, kept apart as in python-threatexchange:

* how to turn raw column values (hex text in any case, whitespace, or fixed-width
  binary) into canonical fixed-width bytes, marking what cannot be parsed;
* how to build an *index* over list entries that answers "which entries match these
  query values", exactly or within a distance;
* optionally (the :class:`BytesHasher` mixin) how to compute itself from content bytes.

Everything works on whole Arrow arrays / numpy matrices at a time: a signal type is
called once per batch, never once per row, so that scanning billions of rows costs
vectorised work only.

Why canonical ``uint8`` matrices of shape ``(n, width)``: they are what every index
wants (sort keys, Hamming popcounts), they convert to and from Arrow
``fixed_size_binary`` without copying, and they never carry the text a partner
supplied, so nothing downstream can echo a list value by accident.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from datahygiene.errors import ConfigError


def take_rows(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` for an (n, width) uint8 matrix, several times faster.

    numpy's 2-D fancy indexing copies byte by byte; viewing each row as one
    ``width``-byte element makes the gather one copy per row (measured 0.37 s ->
    0.06 s for 5M MD5 rows)."""
    n, w = values.shape
    if w == 0 or n == 0:
        return values[index]
    rows = np.ascontiguousarray(values).view(f"V{w}").ravel()
    return rows[index].view(np.uint8).reshape(-1, w)


def no_reasons(n: int) -> np.ndarray:
    """A read-only length-``n`` array of None that costs no memory (for all-valid columns)."""
    return np.broadcast_to(np.array(None, dtype=object), (n,))


@dataclass(frozen=True)
class Normalized:
    """Canonical values for one column.

    ``values`` has shape ``(n, width)`` and dtype uint8; rows where ``valid`` is False
    hold zeros and must not be matched. ``reasons`` gives, for invalid rows only, a
    short reason code (``null``, ``malformed``, ``wrong-length``, ``low-quality``, ...)
    -- never the offending value. ``quality`` is an optional per-row score (PDQ).
    """

    # hash values (a list's, while it loads) never in a repr that may reach a log
    values: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    reasons: np.ndarray = field(repr=False)  # object array of str|None, same length
    quality: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.valid.shape[0])


@dataclass(frozen=True)
class Matches:
    """Index answer: parallel arrays, one element per (query, entry) pair that matched.

    ``query`` indexes the query matrix given to :meth:`SignalIndex.query`, ``entry``
    indexes the entries the index was built from, ``distance`` is 0 for exact types.
    Order does not matter; the caller sorts.
    """

    # which rows matched which entries: never in a repr that may reach a log
    query: np.ndarray = field(repr=False)
    entry: np.ndarray = field(repr=False)
    distance: np.ndarray = field(repr=False)

    @staticmethod
    def empty() -> Matches:
        z = np.zeros(0, dtype=np.int64)
        return Matches(z, z.copy(), np.zeros(0, dtype=np.int32))

    def __len__(self) -> int:
        return int(self.query.shape[0])


@dataclass(frozen=True)
class ColumnMatch:
    """What :meth:`SignalType.match_column` found in one column: the rows it could not
    check (ascending) with a reason code each, and the matches of the others
    (``matches.query`` indexes the column's rows)."""

    bad_rows: np.ndarray = field(repr=False)
    bad_reasons: np.ndarray = field(repr=False)  # object array of str
    matches: Matches = field(repr=False)


class SignalIndex(ABC):
    """An index over list entries of one signal type.

    Built once per scan (per worker) and queried once per batch. It must find *every*
    entry within the threshold: an index that can miss a match is not acceptable for
    this tool, whatever it gains in speed.
    """

    @abstractmethod
    def query(self, values: np.ndarray) -> Matches:
        """Return every (query row, entry) pair that matches. ``values``: (n, width) uint8."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of entries indexed."""

    def nbytes(self) -> int:
        """Approximate memory held by the index, for run.json and benchmarks."""
        return 0


@dataclass
class SignalType(ABC):
    """A kind of hash. Subclasses set the class attributes and implement the methods.

    Instances carry per-list configuration (``threshold``) rather than class
    constants, so two lists of the same type can use different thresholds.

    Class attributes:
        name: registry name (``md5``, ``pdq``...). Open strings: partners add types.
        width: bytes in a canonical value.
        default_column: manifest column read when the user names none.
        exact: True when matching is byte equality (threshold ignored).
        examples: canonical-hex -> list of accepted spellings, for the conformance kit.
        invalid_examples: spellings that must be rejected.
    """

    name: ClassVar[str]
    width: ClassVar[int]
    default_column: ClassVar[str]
    exact: ClassVar[bool] = True
    default_threshold: ClassVar[int] = 0
    examples: ClassVar[Mapping[str, list[Any]]] = {}
    invalid_examples: ClassVar[list[Any]] = []

    # List text files hold one hex digest of ``width`` bytes per line: lists of this
    # type may take the compiled plain-text parser (same result, one pass).
    hex_entries: ClassVar[bool] = False

    # The options ([scan.options.NAME]) this type reads, each with its type (a tuple
    # for several); a key not named here is an error. None: not declared (a plugin
    # written before declarations existed), and any option is passed through.
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]] | None] = None
    # The value an option takes when it is not given: given with that value, it is the
    # same run (run.json and the run id record only the options in force).
    option_defaults: ClassVar[Mapping[str, Any]] = {}

    threshold: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_threshold(self) -> int:
        return self.default_threshold if self.threshold is None else int(self.threshold)

    @abstractmethod
    def normalize(self, column: pa.Array | pa.ChunkedArray) -> Normalized:
        """Parse a whole column into canonical values. Never raises on bad values:
        bad rows come back ``valid=False`` with a reason (fail closed happens later)."""

    def parse_entries(self, column: pa.Array | pa.ChunkedArray) -> Normalized:
        """Parse list entries (as read from a list file) into canonical values.

        Usually the same as :meth:`normalize`; differs for derived signals such as URL
        digests, whose manifest column holds URLs but whose list holds digests."""
        return self.normalize(column)

    def match_column(self, column: pa.Array | pa.ChunkedArray,
                     index: SignalIndex) -> ColumnMatch | None:
        """Optionally normalise and match a whole column in one fused pass; ``None``
        (the default) means :meth:`normalize` then ``index.query``. Must decide every
        row exactly as that path would."""
        return None

    @abstractmethod
    def build_index(self, values: np.ndarray) -> SignalIndex:
        """Build an index over list entries (``(m, width)`` uint8, already valid)."""

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distance between row-aligned value matrices; 0/1 for exact types."""
        return np.any(a != b, axis=1).astype(np.int32)

    def check_options(self) -> None:
        """Refuse an option this type does not read, or a value of the wrong type: a
        misspelt option would otherwise be ignored and the scan run another way than
        the configuration says."""
        if self.option_types is None:
            return
        for key, value in self.options.items():
            want = self.option_types.get(key)
            if want is None:
                known = ", ".join(sorted(self.option_types)) or "none"
                raise ConfigError(f"[scan.options.{self.name}]: unknown option {key!r}; known: {known}")
            kinds = want if isinstance(want, tuple) else (want,)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                names = " or ".join(k.__name__ for k in kinds)
                raise ConfigError(f"[scan.options.{self.name}]: {key} must be a {names}")

    def describe(self) -> dict[str, Any]:
        """What run.json records about this signal's configuration (options included:
        they change what matches, so they are part of what a run is)."""
        out: dict[str, Any] = {"name": self.name, "width": self.width, "exact": self.exact}
        if not self.exact:
            out["threshold"] = self.effective_threshold
        options = self.options_in_force()
        if options:
            out["options"] = options
        return out

    def options_in_force(self) -> dict[str, Any]:
        """The options given, less those given with their default value
        (``option_defaults``; ``True`` is not ``1``), sorted by name."""
        return {k: v for k, v in sorted(self.options.items())
                if not (k in self.option_defaults and type(v) is type(self.option_defaults[k])
                        and v == self.option_defaults[k])}


class BytesHasher(ABC):
    """Mixin for signal types that can compute themselves from content bytes."""

    @abstractmethod
    def hash_bytes(self, data: bytes) -> tuple[bytes, int | None]:
        """Return (canonical value, quality or None). Raise ValueError with a short
        reason (never the content) when the bytes cannot be hashed."""
