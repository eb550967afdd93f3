"""NCMEC sync against a loopback server speaking the hash-sharing protocol:
multi-page windows, updates, tombstones, 401, 5xx and timeouts mid-page, dropped
connections, stale paging links, and an interrupted sync that resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import KEY_ENV, PASSWORD, USER
from ncmec_server import Fault, NCMECServer, Record, synthetic_records, ts

from datahygiene.cli import cli
from datahygiene.errors import ServiceError
from datahygiene.plugins import discover
from datahygiene.store import ListStore, sync_list

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-08T00:00:00Z"
HEX_TYPES = {"md5", "sha1", "pdq"}




def config(server: NCMECServer, until: str, **kw: Any) -> dict[str, Any]:
    return {"base_url": server.base_url, "username": {"env": "NCMEC_TEST_USER"},
            "password": {"env": "NCMEC_TEST_PASSWORD"}, "start": T0, "until": until,
            "window_hours": 24, "timeout_s": 1.5, "max_retries": 3, "backoff_s": 0.01, **kw}


def open_store(name: str, server: NCMECServer, until: str, **kw: Any) -> ListStore:
    store = ListStore.open(None, create=True, key_ref={"env": KEY_ENV})
    store.set_sync_config(name, "ncmec", config(server, until, **kw))
    return store


def stored_state(store: ListStore, name: str, version: int | None = None) -> set[tuple[str, ...]]:
    t = store.read_snapshot(name, version).entries
    return {(r["entry_id"], r["signal"], r["value"], r["category"] or "", r["kind"] or "",
             r["member"] or "") for r in t.to_pylist()}


def expected_state(server: NCMECServer, until: str) -> set[tuple[str, ...]]:
    out = set()
    for r in server.state(ts(until)).values():
        for k, v in r.fingerprints.items():
            sig = "photodna" if k == "pdna" else k
            out.add((r.id, sig, v.lower() if sig in HEX_TYPES else v, r.classification or "", r.kind,
                     str(r.member)))
    return out


def entries_requests(server: NCMECServer) -> list[dict[str, str]]:
    return [q for p, q in server.requests if p.endswith("/v2/entries")]


def test_multi_page_windows_then_updates_and_tombstones(env: Path) -> None:
    with NCMECServer(USER, PASSWORD, page_size=5) as server:
        server.records = synthetic_records(40, T0, "2026-01-04T23:00:00Z", seed=1)
        store = open_store("ncmec", server, T1)
        reg = discover()
        res = sync_list(store, "ncmec", reg)
        assert (res.windows, res.version, res.new_snapshot) == (4, 1, True)
        assert stored_state(store, "ncmec") == expected_state(server, T1)
        reqs = entries_requests(server)
        # every page of every window read once: windows hold ~10 entries -> 2-3 pages each
        assert len(reqs) == sum(-(-max(n, 1) // 5) for n in _per_window_counts(server, T0, T1))
        assert any(q.get("start") for q in reqs), "paging links were followed"

        # later: an update (new fingerprints), a tombstone, a new entry, and an update of
        # an entry followed by its deletion within the next windows
        old = sorted(server.state(ts(T1)).values(), key=lambda r: r.id)
        server.records.append(Record(t=ts("2026-01-05T10:00:00Z"), id=old[0].id,
                                     fingerprints={"md5": "ab" * 16}, classification="B2"))
        server.records.append(Record(t=ts("2026-01-06T10:00:00Z"), id=old[1].id, deleted=True,
                                     kind=old[1].kind))
        server.records.append(Record(t=ts("2026-01-06T11:00:00Z"), id="ent-new-1",
                                     fingerprints={"sha1": "CD" * 20}, kind="video"))
        server.records.append(Record(t=ts("2026-01-05T12:00:00Z"), id=old[2].id,
                                     fingerprints={"md5": "ef" * 16}))
        server.records.append(Record(t=ts("2026-01-07T12:00:00Z"), id=old[2].id, deleted=True))
        server.requests.clear()
        store.set_sync_config("ncmec", "ncmec", config(server, T2))
        res2 = sync_list(store, "ncmec", reg)
        assert (res2.windows, res2.version) == (3, 2)
        reqs = entries_requests(server)
        assert min(q["from"] for q in reqs) == T1, "the second sync starts at the checkpoint"
        state = stored_state(store, "ncmec")
        assert state == expected_state(server, T2)
        ids = {e[0] for e in state}
        assert old[1].id not in ids and old[2].id not in ids and "ent-new-1" in ids
        assert {e for e in state if e[0] == old[0].id} == {(old[0].id, "md5", "ab" * 16, "B2", "image",
                                                           "42")}
        # snapshot 1 is untouched
        assert stored_state(store, "ncmec", 1) == expected_state(server, T1)
        # a sync with nothing new keeps the snapshot
        res3 = sync_list(store, "ncmec", reg)
        assert (res3.windows, res3.new_snapshot, res3.version) == (0, False, 2)


def _per_window_counts(server: NCMECServer, a: str, b: str) -> list[int]:
    out = []
    t = ts(a)
    while t < ts(b):
        e = min(t + 86400, ts(b))
        out.append(len({r.id for r in server.records if t <= r.t <= e}))
        t = e
    return out


def test_exactly_1000_per_page(env: Path) -> None:
    with NCMECServer(USER, PASSWORD) as server:  # the API's own page size
        server.records = synthetic_records(2300, T0, "2026-01-01T20:00:00Z", seed=2)
        store = open_store("big", server, "2026-01-02T00:00:00Z")
        sync_list(store, "big", discover())
        reqs = entries_requests(server)
        assert [q.get("start", "0") for q in reqs] == ["0", "1000", "2000"]
        assert stored_state(store, "big") == expected_state(server, "2026-01-02T00:00:00Z")


def test_401_stops_at_once_and_commits_nothing(env: Path) -> None:
    with NCMECServer(USER, "another-password") as server:
        server.records = synthetic_records(5, T0, "2026-01-01T10:00:00Z")
        store = open_store("n", server, T1)
        with pytest.raises(ServiceError, match="HTTP 401: credentials refused") as ei:
            sync_list(store, "n", discover())
        assert PASSWORD not in str(ei.value) and "nothing committed" in str(ei.value)
        assert len(server.requests) == 1
        assert store.latest_version("n") is None


@pytest.mark.parametrize("action", ["503", "500", "429", "timeout", "drop", "truncate"])
def test_transient_failures_mid_page_are_retried(env: Path, action: str) -> None:
    # a timeout well above any honest response on a loaded machine, a sleep well above it
    with NCMECServer(USER, PASSWORD, page_size=4, timeout_sleep=3.0) as server:
        server.records = synthetic_records(30, T0, "2026-01-04T23:00:00Z", seed=3)
        # the second page of the second window fails twice, then succeeds
        server.faults = [Fault(lambda p, q: q.get("from") == "2026-01-02T00:00:00Z"
                               and q.get("start") == "4", action, times=2)]
        store = open_store("n", server, T1)
        res = sync_list(store, "n", discover())
        assert res.windows == 4
        assert stored_state(store, "n") == expected_state(server, T1)
        pages = sum(-(-max(n, 1) // 4) for n in _per_window_counts(server, T0, T1))
        assert len(entries_requests(server)) == pages + 2


def test_persistent_5xx_commits_completed_windows_and_resume_is_exact(env: Path) -> None:
    with NCMECServer(USER, PASSWORD, page_size=4) as server:
        server.records = synthetic_records(30, T0, "2026-01-04T23:00:00Z", seed=4)
        server.faults = [Fault(lambda p, q: q.get("from") == "2026-01-03T00:00:00Z"
                               and q.get("start") == "4", "503", times=100)]
        store = open_store("n", server, T1)
        with pytest.raises(ServiceError, match=r"HTTP 503 after 4 attempt\(s\).*2 window\(s\) committed"):
            sync_list(store, "n", discover())
        assert store.read_state("n") == {"checkpoint": {"end": "2026-01-03T00:00:00Z",
                                                        "retrieved_at": "2026-01-03T00:00:00Z"},
                                         "snapshot": 1}
        assert stored_state(store, "n") == expected_state(server, "2026-01-02T23:59:59Z")
        server.faults.clear()
        server.requests.clear()
        res = sync_list(store, "n", discover())
        assert res.windows == 2
        assert min(q["from"] for q in entries_requests(server)) == "2026-01-03T00:00:00Z"
        assert stored_state(store, "n") == expected_state(server, T1)

        # the same as one uninterrupted sync into a fresh list
        other = open_store("m", server, T1)
        sync_list(other, "m", discover())
        assert store.read_snapshot("n").fingerprint == other.read_snapshot("m").fingerprint


def test_stale_paging_link_restarts_the_window(env: Path) -> None:
    with NCMECServer(USER, PASSWORD, page_size=3) as server:
        server.records = synthetic_records(20, T0, "2026-01-01T23:00:00Z", seed=5)
        server.faults = [Fault(lambda p, q: q.get("start") == "6", "410", times=1)]
        store = open_store("n", server, "2026-01-02T00:00:00Z")
        sync_list(store, "n", discover())
        starts = [q.get("start", "0") for q in entries_requests(server)]
        assert starts[:4] == ["0", "3", "6", "0"], "after the stale link the window starts over"
        assert stored_state(store, "n") == expected_state(server, "2026-01-02T00:00:00Z")


def test_cli_sync_then_scan_matches_by_ncmec_id(env: Path) -> None:
    with NCMECServer(USER, PASSWORD, page_size=7) as server:
        server.records = synthetic_records(25, T0, "2026-01-02T23:00:00Z", seed=6)
        conf = env / "ncmec.toml"
        conf.write_text(
            f'base_url = "{server.base_url}"\nusername = {{ env = "NCMEC_TEST_USER" }}\n'
            f'password = {{ env = "NCMEC_TEST_PASSWORD" }}\nstart = "{T0}"\nuntil = "2026-01-03T00:00:00Z"\n'
            'window_hours = 24\nbackoff_s = 0.01\n')
        r = CliRunner().invoke(cli, ["lists", "sync", "ncmec", "--source", "ncmec", "--config", str(conf),
                                     "--key-env", KEY_ENV], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "2 window(s) fetched" in r.output and "new snapshot 1" in r.output
        recs = sorted(server.state().values(), key=lambda x: x.id)
        md5s = [recs[3].fingerprints["md5"], recs[9].fingerprints["md5"]]
        (env / "m").mkdir()
        pq.write_table(pa.table({"key": ["a", "b", "c"], "md5": [md5s[0], "00" * 16, md5s[1].upper()]}),
                       env / "m" / "x.parquet")
        r = CliRunner().invoke(cli, ["scan", "--manifest", str(env / "m"), "--list", "md5=store:ncmec",
                                     "--out", str(env / "run"), "-q"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        ex = pq.read_table(env / "run" / "restricted" / "exclusions.parquet").to_pylist()
        assert {(e["key"], e["matches"][0]["entry_ref"]) for e in ex} == {("a", recs[3].id),
                                                                          ("c", recs[9].id)}
        runj = json.loads((env / "run" / "run.json").read_text())
        assert runj["lists"][0]["source"] == "store:ncmec@1"
        assert runj["lists"][0]["partner"] == "ncmec"
        assert runj["lists"][0]["retrieved_at"] == "2026-01-03T00:00:00Z"
        # all signals: those not installed (netclean, maybe photodna) are counted, not used
        r = CliRunner().invoke(cli, ["lists", "inspect", "store:ncmec", "--json"], catch_exceptions=False)
        info = json.loads(r.output)
        assert {i["signal"] for i in info} >= {"md5", "sha1"}
        assert set(info[0]["stats"]["unsupported_signals_skipped"]) == {"netclean", "pdq", "photodna"}


def test_hostile_or_broken_responses_stop_the_sync(env: Path) -> None:
    from datahygiene_ncmec.client import NCMECClient
    from datahygiene_ncmec.xmlapi import parse_document

    with pytest.raises(ServiceError, match="declares a document type"):
        parse_document(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "entries")
    with pytest.raises(ServiceError, match="not well-formed XML"):
        parse_document(b"<queryResult><images>", "entries")
    client = NCMECClient("http://127.0.0.1:9/hashsharing", USER, PASSWORD)
    assert client.next_url("/v2/entries?start=1000").startswith("http://127.0.0.1:9/hashsharing/v2/")
    with pytest.raises(ServiceError, match="outside the configured base_url"):
        client.next_url("https://elsewhere.example.invalid/v2/entries?start=1000")
    assert PASSWORD not in repr(client)


@pytest.mark.parametrize("action", ["maintenance", "empty", "bad-record"])
def test_a_response_that_is_not_an_entries_page_stops_the_sync(env: Path, action: str) -> None:
    """A maintenance page or an empty queryResult answered with HTTP 200 was read as a
    window without entries, and the checkpoint moved past it for good: its entries were
    never fetched. A record without an id was dropped without a word."""
    with NCMECServer(USER, PASSWORD, page_size=5) as server:
        server.records = synthetic_records(30, T0, "2026-01-04T23:00:00Z", seed=8)
        server.faults = [Fault(lambda p, q: q.get("from") == "2026-01-03T00:00:00Z", action)]
        store = open_store("n", server, T1)
        with pytest.raises(ServiceError, match=r"2026-01-03.*refused.*2 window\(s\) committed"):
            sync_list(store, "n", discover())
        assert store.read_state("n")["checkpoint"]["end"] == "2026-01-03T00:00:00Z"
        sync_list(store, "n", discover())  # the window is read again, whole
        assert stored_state(store, "n") == expected_state(server, T1)


def test_a_redirect_is_not_followed_and_the_credentials_stay_home(env: Path) -> None:
    """urllib followed a 302 to any host and sent the Basic credentials there."""
    with NCMECServer(USER, PASSWORD) as other, NCMECServer(USER, PASSWORD) as server:
        server.records = synthetic_records(10, T0, "2026-01-01T23:00:00Z", seed=9)
        server.faults = [Fault(lambda p, q: True, f"redirect:{other.base_url}/v2/entries?from=x&to=y")]
        store = open_store("n", server, "2026-01-02T00:00:00Z")
        with pytest.raises(ServiceError, match="HTTP 302: a redirect, not followed"):
            sync_list(store, "n", discover())
        assert other.requests == []


def test_ctrl_c_after_committed_windows_says_what_was_kept(env: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The finished windows are committed on Ctrl-C, but the console said 'no output was
    committed'."""
    from datahygiene_ncmec.client import NCMECClient

    real = NCMECClient.get

    def get(self: NCMECClient, url: str, what: str, is_next: bool = False) -> bytes:
        if "from=2026-01-03" in url:
            raise KeyboardInterrupt
        return real(self, url, what, is_next)

    monkeypatch.setattr(NCMECClient, "get", get)
    with NCMECServer(USER, PASSWORD, page_size=5) as server:
        server.records = synthetic_records(30, T0, "2026-01-04T23:00:00Z", seed=10)
        open_store("n", server, T1)
        r = CliRunner().invoke(cli, ["lists", "sync", "n"])
        assert r.exit_code == 130
        assert "interrupted; 2 window(s) committed; run `datahygiene lists sync n` to resume " \
               "(snapshot 1)" in r.output
