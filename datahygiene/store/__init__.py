"""The local list store: versioned, fingerprinted, owner-only, encrypted list snapshots.

See docs/list-store.md. ``snapshots`` holds the on-disk format, ``sync`` the
incremental-sync protocol partner sources speak, ``source`` the ``store`` list source
through which scans load a stored snapshot.
"""

from datahygiene.store.snapshots import ListStore, Snapshot, default_store_root, split_ref
from datahygiene.store.sync import EntryUpdate, SyncPage, SyncResult, sync_list

__all__ = ["EntryUpdate", "ListStore", "Snapshot", "SyncPage", "SyncResult", "default_store_root",
           "split_ref", "sync_list"]
