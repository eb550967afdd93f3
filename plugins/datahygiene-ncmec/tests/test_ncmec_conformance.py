"""The NCMEC source against the conformance kit (datahygiene.testing): the lists it
loads from a synced snapshot, and its sync resumed from each committed checkpoint,
through the loopback hash-sharing server over synthetic records (updates and
tombstones in later windows)."""

from __future__ import annotations

from pathlib import Path

from conftest import KEY_ENV, PASSWORD, USER
from datahygiene_ncmec.source import NCMECSource
from ncmec_server import NCMECServer, Record, synthetic_records, ts
from test_ncmec_sync import config

from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import discover
from datahygiene.store import ListStore, sync_list
from datahygiene.testing import check_list_source

T0, UNTIL = "2026-04-01T00:00:00Z", "2026-04-05T00:00:00Z"


def test_ncmec_source_conforms(env: Path) -> None:
    with NCMECServer(USER, PASSWORD, page_size=4) as server:
        records = synthetic_records(24, T0, "2026-04-02T20:00:00Z", seed=31)
        # later windows change earlier ones: an update, a tombstone, an entry added then removed
        records += [
            Record(t=ts("2026-04-03T10:00:00Z"), id=records[0].id, fingerprints={"md5": "ab" * 16}),
            Record(t=ts("2026-04-03T11:00:00Z"), id=records[1].id, deleted=True),
            Record(t=ts("2026-04-03T12:00:00Z"), id="ent-late", fingerprints={"sha1": "cd" * 20}),
            Record(t=ts("2026-04-04T12:00:00Z"), id="ent-late", deleted=True),
        ]
        server.records = records
        conf = config(server, UNTIL, start=T0)
        store = ListStore.open(None, create=True, key_ref={"env": KEY_ENV})
        store.set_sync_config("conf", "ncmec", conf)
        registry = discover()
        assert sync_list(store, "conf", registry).windows == 4
        lists = check_list_source(
            NCMECSource, ListSpec(path="conf", source="ncmec"), registry, sync_config=conf, secrets=[PASSWORD]
        )
        # windows read (first pages): the store's sync, the kit's from scratch, then the
        # kit's resumed from checkpoints 1, 3 and 4 of 4 (3, 1 and 0 windows left)
        starts = [q["from"] for p, q in server.requests if p.endswith("/v2/entries") and "start" not in q]
        assert starts.count(T0) == 2 and len(starts) == 4 + 4 + 3 + 1 + 0
    assert sorted(hl.signal for hl in lists) == ["md5", "sha1"]
    assert {hl.identity.partner for hl in lists} == {"ncmec"}
