"""The ``store`` list source: a scan names a stored snapshot as ``store:NAME[@VERSION]``.

The loaded lists say exactly which snapshot they came from (source
``store:NAME@N``, the snapshot number as the list version, the snapshot fingerprint
in the stats), and run.json records that. Signal types this installation does not
know (a partner's ``netclean`` or video hashes) are counted and skipped, never
silently treated as checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.errors import ListError
from datahygiene.lists.model import HashList, ListIdentity
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import Registry
from datahygiene.signals.hexcodec import hex_strings
from datahygiene.sources.base import ListSource
from datahygiene.store.snapshots import ENTRY_SCHEMA, ListStore, Snapshot, split_ref

STORE_OPTION = "store"


def hashlists_to_entries(lists: list[HashList]) -> pa.Table:
    """Loaded lists as store entries (the reference becomes the entry id)."""
    parts = []
    for hl in lists:
        n = len(hl)
        refs = hl.ref_strings(np.arange(n, dtype=np.int64)) if n else pa.array([], pa.string())
        aligned = hl.aligned_categories()
        cats = aligned.cast(pa.string()) if aligned is not None else pa.nulls(n, pa.string())
        parts.append(pa.table([refs.cast(pa.string()), pa.array([hl.signal] * n, pa.string()),
                               hex_strings(hl.values), cats, pa.nulls(n, pa.string()),
                               pa.nulls(n, pa.string())],
                              schema=ENTRY_SCHEMA))
    return pa.concat_tables(parts) if parts else ENTRY_SCHEMA.empty_table()


def snapshot_to_hashlists(snap: Snapshot, registry: Registry, spec: ListSpec) -> list[HashList]:
    entries = snap.entries
    meta = snap.meta
    sigcol = entries.column("signal")
    counts = {r["values"]: int(r["counts"]) for r in pc.value_counts(sigcol).to_pylist()
              if r["values"] is not None}
    present = sorted(counts)
    known = set(registry.names("signals"))
    where = f"store:{snap.name}@{snap.version}"
    if spec.signal is not None and spec.signal not in present:
        raise ListError(f"{where}: holds no {spec.signal} entries (holds: {', '.join(present) or 'none'})")
    wanted = [spec.signal] if spec.signal is not None else present
    unsupported = {s: counts[s] for s in wanted if s not in known}
    usable = [s for s in wanted if s in known]
    if not usable:
        raise ListError(f"{where}: no entries of a signal type installed here (holds: "
                        f"{', '.join(present) or 'none'}; installed: {', '.join(sorted(known))})")
    identity = ListIdentity(
        partner=str(meta.get("partner") or "local"),
        name=snap.name,
        version=str(snap.version),
        retrieved_at=meta.get("retrieved_at") or snap.info.get("created_at"),
    )
    options = {k: v for k, v in spec.options.items() if k != STORE_OPTION}
    out = []
    for sig in usable:
        # (a snapshot of one signal type, the usual case, is used as it is: no copy)
        part = entries if counts[sig] == entries.num_rows else entries.filter(pc.equal(sigcol, sig))
        st = registry.signal(sig, threshold=spec.threshold, options=dict(options))
        parsed = st.parse_entries(part.column("value").combine_chunks())
        good = np.flatnonzero(parsed.valid)
        stats: dict[str, Any] = {
            "store_snapshot": snap.version,
            "snapshot_fingerprint": snap.fingerprint,
            "snapshot_created_at": snap.info.get("created_at"),
        }
        if meta.get("upstream_version"):
            stats["upstream_version"] = meta["upstream_version"]
        if unsupported:
            stats["unsupported_signals_skipped"] = dict(sorted(unsupported.items()))
        if good.shape[0] != len(part):
            stats["skipped_bad_entries"] = int(len(part) - good.shape[0])
        take = pa.array(good, pa.int64())
        out.append(HashList.from_parsed(
            identity, sig, parsed.values[good], part.column("entry_id").combine_chunks().take(take),
            part.column("category").combine_chunks().take(take),
            source=where, threshold=spec.threshold, stats=stats,
        ))
    return out


class StoreListSource(ListSource):
    """``--list [SIGNAL=]store:NAME[@VERSION]``; the store is ``options.store``, else
    ``$DATAHYGIENE_STORE``, else the per-user default."""

    name = "store"

    def load(self, spec: ListSpec, registry: Registry) -> list[HashList]:
        name, version = split_ref(spec.path)
        store = ListStore.open(spec.options.get(STORE_OPTION))
        return snapshot_to_hashlists(store.read_snapshot(name, version), registry, spec)
