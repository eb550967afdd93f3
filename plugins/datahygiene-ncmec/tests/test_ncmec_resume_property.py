"""Property: whatever the history of updates and tombstones and wherever a sync is cut
off, resuming gives exactly the state a correct client must hold -- and the same
snapshot as one uninterrupted sync."""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import Iterator

import pytest
from conftest import PASSWORD, USER
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ncmec_server import Fault, NCMECServer, Record, ts
from test_ncmec_sync import config, expected_state, stored_state

from datahygiene.errors import ServiceError
from datahygiene.plugins import discover
from datahygiene.store import ListStore, sync_list

DAY0 = ts("2026-03-01T00:00:00Z")
UNTIL = "2026-03-05T00:00:00Z"
WINDOW_STARTS = ["2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z",
                 "2026-03-04T00:00:00Z"]

event = st.tuples(st.integers(0, 5),                    # which entry
                  st.integers(60, 4 * 86400 - 60),      # when (never on a window edge)
                  st.booleans(),                        # tombstone?
                  st.binary(min_size=16, max_size=16))  # its md5
history = st.lists(event, min_size=1, max_size=25, unique_by=lambda e: e[1])


@pytest.fixture(scope="module")
def server() -> Iterator[NCMECServer]:
    with NCMECServer(USER, PASSWORD, page_size=2) as s:
        yield s


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ListStore]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DH_PROP_KEY", base64.b64encode(os.urandom(32)).decode())
        root = tmp_path_factory.mktemp("prop") / "store"
        yield ListStore.open(root, create=True, key_ref={"env": "DH_PROP_KEY"})


_names = itertools.count()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=history, cut=st.sampled_from(WINDOW_STARTS), cut_page=st.sampled_from(["0", "2"]))
def test_interrupted_sync_resumes_to_the_exact_state(server: NCMECServer, store: ListStore,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      events: list[tuple[int, int, bool, bytes]],
                                                      cut: str, cut_page: str) -> None:
    monkeypatch.setenv("NCMEC_TEST_USER", USER)
    monkeypatch.setenv("NCMEC_TEST_PASSWORD", PASSWORD)
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "datahygiene-ncmec")
    server.records = [Record(t=DAY0 + t, id=f"e{i}", deleted=dead, fingerprints={"md5": md5.hex()})
                      for i, t, dead, md5 in events]
    server.faults = [Fault(lambda p, q: q.get("from") == cut and q.get("start", "0") == cut_page,
                           "503", times=10_000)]
    reg = discover()
    a, b = f"a{next(_names)}", f"b{next(_names)}"
    store.set_sync_config(a, "ncmec", config(server, UNTIL, max_retries=0))
    try:
        sync_list(store, a, reg)
        interrupted = False
    except ServiceError:
        interrupted = True
    server.faults = []
    assert interrupted or cut_page == "2"  # a window with <= 2 entries has no second page
    sync_list(store, a, reg)
    assert stored_state(store, a) == expected_state(server, UNTIL)
    store.set_sync_config(b, "ncmec", config(server, UNTIL))
    sync_list(store, b, reg)
    assert store.read_snapshot(a).fingerprint == store.read_snapshot(b).fingerprint
