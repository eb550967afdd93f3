"""The ``store`` list source: a scan names a stored snapshot as ``store:NAME[@VERSION]``.

The loaded lists say exactly which snapshot they came from (source
``store:NAME@N``, the snapshot number as the list version, the snapshot fingerprint
in the stats), and run.json records that. Signal types this installation does not
know (a partner's ``netclean`` or video hashes) are counted and skipped, never
silently treated as checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene import kernels
from datahygiene.errors import ListError
from datahygiene.lists.model import HashList, ListIdentity
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import Registry
from datahygiene.signals.hexcodec import hex_strings
from datahygiene.sources.base import ListSource
from datahygiene.store import scan_index
from datahygiene.store.snapshots import ENTRY_SCHEMA, ListStore, Snapshot, split_ref

STORE_OPTION = "store"


def hashlists_to_entries(lists: list[HashList]) -> pa.Table:
    """Loaded lists as store entries (the reference becomes the entry id)."""
    parts = []
    for hl in lists:
        n = len(hl)
        rows = _by_id(hl)  # None: the list's own order
        refs = (hl.ref_strings(np.arange(n, dtype=np.int64) if rows is None else rows) if n
                else pa.array([], pa.string()))
        aligned = hl.aligned_categories()
        cats = pa.nulls(n, pa.string()) if aligned is None else aligned.cast(pa.string())
        values = hl.values
        if rows is not None:
            cats = cats.take(pa.array(rows))
            values = _take_rows(values, rows)
        parts.append(pa.table([refs.cast(pa.string()), pa.repeat(pa.scalar(hl.signal, pa.string()), n),
                               hex_strings(values), cats, pa.nulls(n, pa.string()),
                               pa.nulls(n, pa.string())],
                              schema=ENTRY_SCHEMA))
    return pa.concat_tables(parts) if parts else ENTRY_SCHEMA.empty_table()


def _by_id(hl: HashList) -> np.ndarray | None:
    """The list's rows in the order of their entry ids as strings, for a list whose ids
    are a prefix and a number (``line:N``, a text list's), or None for other ids.

    The store's canonical order sorts ids as strings (``line:10`` before ``line:9``);
    for numbers of at most ``_DIGITS`` digits that is the order of each number's
    digits left-aligned to that many places (``10`` -> 1000..., ``9`` -> 9000...),
    then of its length (``1`` before ``10``): one integer sort, where sorting 5M
    strings took 3 s (:func:`datahygiene.store.snapshots.canonical_entries` then finds
    them in order)."""
    if (not len(hl) or not hl.ref_prefix or hl.ref_order is not None
            or not pa.types.is_integer(hl.refs.type)):
        return None
    if hl.refs.null_count:
        return None
    nums = np.asarray(hl.refs.to_numpy(zero_copy_only=False), dtype=np.int64)
    if nums.min() < 0 or nums.max() >= 10 ** _DIGITS:
        return None
    powers = 10 ** np.arange(_DIGITS + 1, dtype=np.int64)
    digits = np.maximum(np.searchsorted(powers, nums, side="right"), 1)  # 0 has one digit
    aligned = nums * powers[_DIGITS - digits]
    # left-aligned digits, then the length (under 32): one key that fits 63 bits
    return np.argsort(aligned * 32 + digits, kind="stable")


_DIGITS = 17  # 10**17 * 32 < 2**63


def _take_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of a (n, width) uint8 array, each moved as one item (indexing the
    2-D array moved them byte by byte: 0.6 s for 5M MD5s)."""
    n, w = values.shape
    if not n:
        return values
    items = np.ascontiguousarray(values).view(np.dtype((np.void, w))).reshape(n)
    return items[rows].view(np.uint8).reshape(len(rows), w)


def _plan(where: str, counts: dict[str, int], registry: Registry, spec: ListSpec
          ) -> tuple[list[str], dict[str, int]]:
    """The signals to load (installed here, and asked for) and the counts of those
    asked for but not installed."""
    present = sorted(counts)
    known = set(registry.names("signals"))
    if spec.signal is not None and spec.signal not in present:
        raise ListError(f"{where}: holds no {spec.signal} entries (holds: {', '.join(present) or 'none'})")
    wanted = [spec.signal] if spec.signal is not None else present
    unsupported = {s: counts[s] for s in wanted if s not in known}
    usable = [s for s in wanted if s in known]
    if not usable:
        raise ListError(f"{where}: no entries of a signal type installed here (holds: "
                        f"{', '.join(present) or 'none'}; installed: {', '.join(sorted(known))})")
    return usable, unsupported


def _identity(name: str, version: int, meta: dict[str, Any], info: dict[str, Any]) -> ListIdentity:
    return ListIdentity(
        partner=str(meta.get("partner") or "local"),
        name=name,
        version=str(version),
        retrieved_at=meta.get("retrieved_at"),  # when the partner gave it; never the import time
    )


def _stats(version: int, meta: dict[str, Any], info: dict[str, Any],
           unsupported: dict[str, int], skipped: int) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "store_snapshot": version,
        "snapshot_fingerprint": str(info["fingerprint"]),
        "snapshot_created_at": info.get("created_at"),
    }
    if meta.get("upstream_version"):
        stats["upstream_version"] = meta["upstream_version"]
    if meta.get("skipped_bad_entries"):  # left out when the list was imported
        stats["skipped_bad_entries_at_import"] = int(meta["skipped_bad_entries"])
    if unsupported:
        stats["unsupported_signals_skipped"] = dict(sorted(unsupported.items()))
    if skipped:
        stats["skipped_bad_entries"] = skipped
    return stats


def _signal_counts(entries: pa.Table) -> dict[str, int]:
    return {r["values"]: int(r["counts"]) for r in pc.value_counts(entries.column("signal")).to_pylist()
            if r["values"] is not None}


def snapshot_to_hashlists(snap: Snapshot, registry: Registry, spec: ListSpec) -> list[HashList]:
    entries = snap.entries
    sigcol = entries.column("signal")
    counts = _signal_counts(entries)
    where = f"store:{snap.name}@{snap.version}"
    usable, unsupported = _plan(where, counts, registry, spec)
    identity = _identity(snap.name, snap.version, snap.meta, snap.info)
    options = {k: v for k, v in spec.options.items() if k != STORE_OPTION}
    out = []
    for sig in usable:
        # (a snapshot of one signal type, the usual case, is used as it is: no copy)
        part = entries if counts[sig] == entries.num_rows else entries.filter(pc.equal(sigcol, sig))
        st = registry.signal(sig, threshold=spec.threshold, options=dict(options))
        parsed = st.parse_entries(part.column("value").combine_chunks())
        good = np.flatnonzero(parsed.valid)
        stats = _stats(snap.version, snap.meta, snap.info, unsupported, int(len(part) - good.shape[0]))
        take = pa.array(good, pa.int64())
        out.append(HashList.from_parsed(
            identity, sig, parsed.values[good], part.column("entry_id").combine_chunks().take(take),
            part.column("category").combine_chunks().take(take),
            source=where, threshold=spec.threshold, stats=stats,
        ))
    return out


# -- the scan index (datahygiene/store/scan_index.py) ----------------------------------------


def build_scan_index(registry: Registry) -> Callable[[Snapshot], bytes]:
    """A ``scan_index`` for :meth:`ListStore.write_snapshot`: the snapshot's entries of
    every signal type installed here, loaded exactly as a scan loads them."""

    def derive(snap: Snapshot) -> bytes:
        counts = _signal_counts(snap.entries) if snap.entries.num_rows else {}
        known = set(registry.names("signals"))
        parts: dict[str, scan_index.IndexedList] = {}
        for sig in sorted(s for s in counts if s in known):
            (hl,) = snapshot_to_hashlists(snap, registry, ListSpec(path=snap.name, signal=sig))
            n = len(hl)
            about = {"fingerprint": hl.fingerprint, "duplicates": int(hl.stats["duplicates"]),
                     "skipped_bad_entries": int(hl.stats.get("skipped_bad_entries", 0))}
            parts[sig] = scan_index.IndexedList(hl.values, hl.ref_strings(np.arange(n, dtype=np.int64)),
                                                "", hl.aligned_categories(), about)
        header = {"snapshot_fingerprint": snap.fingerprint, "counts": counts, "meta": snap.meta}
        return scan_index.encode(header, parts)

    return derive


def hashlists_from_scan_index(name: str, info: dict[str, Any], buf: np.ndarray,
                              registry: Registry, spec: ListSpec) -> list[HashList] | None:
    """The lists a scan of ``spec`` loads, from a scan index; None where the index cannot
    give exactly what loading the snapshot would (signal options given, a signal type
    installed since the index was written)."""
    if any(k != STORE_OPTION for k in spec.options):
        return None
    version = int(info["version"])
    where = f"store:{name}@{version}"
    try:
        header, parts = scan_index.decode(buf)
    except (scan_index.ScanIndexError, pa.ArrowException) as exc:
        # our own message, or only the type of Arrow's (whose text may quote a value)
        why = str(exc) if isinstance(exc, scan_index.ScanIndexError) else type(exc).__name__
        raise ListError(f"{where}: scan index unreadable ({why}); re-import the list") from None
    if header.get("snapshot_fingerprint") != info["fingerprint"]:
        raise ListError(f"{where}: scan index belongs to another snapshot; re-import the list")
    usable, unsupported = _plan(where, dict(header["counts"]), registry, spec)
    if any(sig not in parts for sig in usable):
        return None
    identity = _identity(name, version, header["meta"], info)
    out = []
    for sig in usable:
        part = parts[sig]
        if not kernels.rows_strictly_increasing(part.values):
            raise ListError(f"{where}: scan index damaged (entries out of order); re-import the list")
        stats = _stats(version, header["meta"], info, unsupported, int(part.about["skipped_bad_entries"]))
        stats["duplicates"] = int(part.about["duplicates"])
        hl = HashList(identity=identity, signal=sig, values=part.values, refs=part.refs,
                      categories=part.categories, source=where, threshold=spec.threshold,
                      stats=stats, ref_prefix=part.ref_prefix)
        if hl.fingerprint != part.about["fingerprint"]:
            raise ListError(f"{where}: scan index does not match its list fingerprint; "
                            "re-import the list")
        out.append(hl)
    return out


class StoreListSource(ListSource):
    """``--list [SIGNAL=]store:NAME[@VERSION]``; the store is ``options.store``, else
    ``$DATAHYGIENE_STORE``, else the per-user default."""

    name = "store"

    def load(self, spec: ListSpec, registry: Registry) -> list[HashList]:
        name, version = split_ref(spec.path)
        store = ListStore.open(spec.options.get(STORE_OPTION))
        found = store.read_scan_index(name, version)
        if found is not None:
            lists = hashlists_from_scan_index(name, found[0], found[1], registry, spec)
            if lists is not None:
                return lists
        return snapshot_to_hashlists(store.read_snapshot(name, version), registry, spec)
