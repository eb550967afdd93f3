"""Keeping a stored list up to date from a syncing source (the protocol and the loop).

A :class:`~datahygiene.sources.base.SyncingSource` used with the store yields
:class:`SyncPage` objects from ``sync(config, checkpoint)``. A page carries entry
updates and, when it closes a unit of work the partner can restart from (for NCMEC,
a time window), the checkpoint to resume from. Only a page with a checkpoint makes
the updates before it durable. Why: partner APIs do not return entries in time
order, so "the newest entry seen" says nothing about what was missed; the end of a
fully read window does.

Updates are replace-by-id: a later record for an entry replaces every fingerprint
it had, a tombstone removes it. Replaying a window therefore changes nothing, which
is what makes a resumed sync free of loss and duplication.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.errors import DatahygieneError, InterruptedAfterCommit, ServiceError
from datahygiene.plugins import Registry
from datahygiene.store.normalize import normalize_values
from datahygiene.store.snapshots import ENTRY_SCHEMA, ListStore, empty_entries
from datahygiene.store.source import build_scan_index


@dataclass(frozen=True)
class EntryUpdate:
    """One partner record for one entry. ``fingerprints`` maps signal name -> value."""

    entry_id: str
    deleted: bool = False
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    category: str | None = None
    kind: str | None = None  # image, video...
    member_id: str | None = None  # the partner member that supplied it

    def __repr__(self) -> str:  # values never in a repr that may reach a log
        return (f"EntryUpdate(entry_id={self.entry_id!r}, deleted={self.deleted}, "
                f"signals={sorted(self.fingerprints)})")


@dataclass(frozen=True)
class SyncPage:
    updates: list[EntryUpdate]
    checkpoint: dict[str, Any] | None = None  # set when everything up to it has been delivered
    progress: str | None = None  # a short human note ("window 3/10"), never a value


@dataclass
class SyncResult:
    name: str
    version: int | None
    new_snapshot: bool
    windows: int
    updates: int
    deletions: int
    entries: int
    checkpoint: dict[str, Any] | None
    normalize_stats: dict[str, int] = field(default_factory=dict)


def updates_to_table(updates: Iterable[EntryUpdate]) -> pa.Table:
    ids, sigs, vals, cats, kinds, members = [], [], [], [], [], []
    for u in updates:
        if u.deleted:
            continue
        for sig, val in sorted(u.fingerprints.items()):
            ids.append(u.entry_id)
            sigs.append(sig)
            vals.append(val)
            cats.append(u.category)
            kinds.append(u.kind)
            members.append(u.member_id)
    return pa.table([pa.array(x, pa.string()) for x in (ids, sigs, vals, cats, kinds, members)],
                    schema=ENTRY_SCHEMA)


def apply_updates(entries: pa.Table, pending: Mapping[str, EntryUpdate], registry: Registry,
                  stats: dict[str, int]) -> pa.Table:
    """Replace (or, for tombstones, remove) every row of each updated entry id."""
    if not pending:
        return entries
    touched = pa.array(sorted(pending), pa.string())
    keep = pc.invert(pc.is_in(entries.column("entry_id"), value_set=touched))
    fresh = normalize_values(updates_to_table(pending.values()), registry, stats)
    return pa.concat_tables([entries.filter(keep), fresh]).combine_chunks()


def sync_list(store: ListStore, name: str, registry: Registry,
              progress: Callable[[str], None] | None = None) -> SyncResult:
    """Run one sync of a stored list from the source named in its sync config.

    Durable progress is written after the loop; if the source fails part way, the
    windows completed so far are committed (a complete snapshot as of their
    checkpoint) before the error is raised, so the next run resumes from there. The
    list's write lock is held throughout: a second sync or import of it is refused."""
    with store.writing(name):
        return _sync_list(store, name, registry, progress)


def _sync_list(store: ListStore, name: str, registry: Registry,
               progress: Callable[[str], None] | None) -> SyncResult:
    idx = store.index(name)
    conf = idx.get("sync")
    if not conf:
        raise ServiceError(f"stored list {name} has no sync source; give --source and --config once")
    source = registry.get("sources", conf["source"]).obj()
    if not hasattr(source, "sync"):
        raise ServiceError(f"list source {conf['source']!r} cannot sync")
    state = store.read_state(name) or {}
    checkpoint = state.get("checkpoint")
    if store.latest_version(name) is not None:
        snap = store.read_snapshot(name)
        entries, meta = snap.entries, dict(snap.meta)
    else:
        entries, meta = empty_entries(), {}
    meta.update({"source": conf["source"], "partner": getattr(source, "partner", conf["source"])})
    pending: dict[str, EntryUpdate] = {}
    windows = updates = deletions = 0
    stats: dict[str, int] = {}
    failure: BaseException | None = None
    try:
        for page in source.sync(dict(conf["config"]), checkpoint):
            for u in page.updates:
                pending[u.entry_id] = u  # later record for an entry replaces the earlier one
            if page.checkpoint is not None:
                updates += sum(not u.deleted for u in pending.values())
                deletions += sum(u.deleted for u in pending.values())
                entries = apply_updates(entries, pending, registry, stats)
                pending.clear()
                checkpoint = page.checkpoint
                windows += 1
            if progress and page.progress:
                progress(page.progress)
    except BaseException as exc:  # commit what is complete whatever stopped us, then re-raise
        failure = exc
    record: dict[str, Any] | None = None
    new = False
    if windows:
        meta["checkpoint"] = checkpoint
        meta["retrieved_at"] = _checkpoint_time(checkpoint)
        record, new = store.write_snapshot(name, entries, meta,
                                           scan_index=build_scan_index(registry))
        store.write_state(name, {"checkpoint": checkpoint, "snapshot": record["version"]})
    if failure is not None:
        done = f"{windows} window(s) committed; run `datahygiene lists sync {name}` to resume" \
            if windows else "nothing committed"
        if isinstance(failure, KeyboardInterrupt) and windows:
            raise InterruptedAfterCommit(f"{done} (snapshot {record['version'] if record else '?'})"
                                         ) from None
        if not isinstance(failure, DatahygieneError | OSError):
            raise failure
        if not windows and isinstance(failure, DatahygieneError) and not isinstance(failure, ServiceError):
            raise failure  # a configuration problem: its own message and exit code
        raise ServiceError(f"sync of {name} stopped: {failure} ({done})") from None
    version = record["version"] if record else store.latest_version(name)
    return SyncResult(name, version, new, windows, updates, deletions,
                      len(pc.unique(entries.column("entry_id"))) if entries.num_rows else 0,
                      checkpoint, stats)


def _checkpoint_time(checkpoint: dict[str, Any] | None) -> str | None:
    if not checkpoint:
        return None
    for k in ("retrieved_at", "time", "end"):
        if isinstance(checkpoint.get(k), str):
            return str(checkpoint[k])
    return None
