"""The conformance kit can fail: for each rule, a tiny plugin that breaks it (and only
it) is refused with an AssertionError naming the rule, while its well-behaved
baseline passes. Everything here is synthetic: random digests, loopback addresses."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dhtest import core_registry, hexes, rand_bytes

from datahygiene.errors import ServiceError
from datahygiene.lists.model import HashList, ListIdentity
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import Registry
from datahygiene.reporters.base import Reporter, RowDetails, write_owner_only
from datahygiene.services.base import MatchService, ServiceResult
from datahygiene.sources.base import ListSource, SyncingSource
from datahygiene.store.sync import EntryUpdate, SyncPage
from datahygiene.testing import (
    ReporterInputs,
    check_fails_closed,
    check_list_source,
    check_match_service,
    check_reporter,
    failing_backend,
    make_reporter_inputs,
    unreachable_backend,
)
from datahygiene.testing._rules import hex_needles, holds_hex

SPEC = ListSpec(path="placeholder", source="memory")
VALUES = rand_bytes(8, 16, seed=41)  # placeholder md5 entries
HEX = hexes(VALUES)

# -- list sources ------------------------------------------------------------------------------


class MemorySource(ListSource):
    """Eight placeholder MD5 entries with partner ids, built as a file source builds them."""

    name = "memory"

    def refs(self) -> list[str]:
        return [f"E-{i:03d}" for i in range(len(HEX))]

    def values(self) -> np.ndarray:
        return VALUES

    def identity(self) -> ListIdentity:
        return ListIdentity("synthetic", "memory", "1")

    def load(self, spec: ListSpec, registry: Registry) -> list[HashList]:
        built = HashList.from_parsed(
            self.identity(), "md5", self.values(), pa.array(self.refs()), source="memory"
        )
        return [self.alter(built)]

    def alter(self, hl: HashList) -> HashList:
        """The hook the broken sources below override: the list as loaded."""
        return hl


class DescribeLeaks(MemorySource):
    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sample": HEX[3]}


class ReprLeaks(MemorySource):
    def __repr__(self) -> str:
        return f"ReprLeaks(first=0x{HEX[0].upper()})"


class RefIsTheValue(MemorySource):
    def refs(self) -> list[str]:  # a partner "id" column that is the hash itself
        return list(HEX)


class RefHoldsAValue(MemorySource):
    def refs(self) -> list[str]:
        return [*super().refs()[:-1], f"entry:{HEX[2][:10].upper()}{HEX[2][10:]}"]


class NotDeterministic(MemorySource):
    def values(self) -> np.ndarray:
        return np.random.default_rng().integers(0, 256, (8, 16), dtype=np.uint8)


class Unsorted(MemorySource):
    def alter(self, hl: HashList) -> HashList:
        return HashList(hl.identity, "md5", hl.values[::-1].copy(), pa.array(self.refs()))


class WrongWidth(MemorySource):
    def values(self) -> np.ndarray:
        return np.ascontiguousarray(VALUES[:, :15])


class StaleFingerprint(MemorySource):
    def alter(self, hl: HashList) -> HashList:
        hl._fingerprint = "sha256:" + "0" * 64
        return hl


class StatsLeak(MemorySource):
    def alter(self, hl: HashList) -> HashList:
        hl.stats["first_bad_entry"] = HEX[5]
        return hl


class StatsNotJSON(MemorySource):
    def alter(self, hl: HashList) -> HashList:
        hl.stats["raw"] = b"\x00"
        return hl


class NoVersion(MemorySource):
    def identity(self) -> ListIdentity:
        return ListIdentity("synthetic", "memory", "")


class Empty(MemorySource):
    def load(self, spec: ListSpec, registry: Registry) -> list[HashList]:
        return []


class Unpicklable(MemorySource):
    def __init__(self) -> None:
        self.lock = threading.Lock()


class HoldsItsPassword(MemorySource):
    def __init__(self) -> None:
        self.password = "pw-Planted-Source-Secret-77"


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        (DescribeLeaks, "the source's describe\\(\\) holds an entry value"),
        (ReprLeaks, "the source's repr holds an entry value"),
        (RefIsTheValue, "entry references are opaque"),
        (RefHoldsAValue, "entry references are opaque"),
        (NotDeterministic, "loading twice gives the same lists"),
        (Unsorted, "sorted and unique"),
        (WrongWidth, "the signal's width"),
        (StaleFingerprint, "fingerprint covers exactly the entries"),
        (StatsLeak, "a list's (repr|describe\\(\\)) holds an entry value"),
        (StatsNotJSON, "stats must be JSON-able"),
        (NoVersion, "identity.version is a non-empty string"),
        (Empty, "load\\(\\) returned no list"),
        (Unpicklable, "must pickle"),
    ],
)
def test_a_broken_list_source_is_refused(source: type[ListSource], rule: str) -> None:
    with pytest.raises(AssertionError, match=rule) as info:
        check_list_source(source, SPEC, core_registry())
    for h in HEX:  # the failure names the rule, never the value
        assert h not in str(info.value).lower()


def test_a_source_holding_a_credential_is_refused() -> None:
    check_list_source(HoldsItsPassword, SPEC, core_registry())  # no secret named: nothing to find
    with pytest.raises(AssertionError, match="a pickled source holds a credential"):
        check_list_source(HoldsItsPassword, SPEC, core_registry(), secrets=["pw-Planted-Source-Secret-77"])


def test_a_good_list_source_passes() -> None:
    (hl,) = check_list_source(MemorySource, SPEC, core_registry())
    assert len(hl) == 8 and hl.id == "synthetic/memory@1"


def test_the_file_source_refuses_a_fixture_whose_ids_are_its_hashes(tmp_path: Path) -> None:
    """The rule holds for real sources: a list whose id column repeats the value."""
    (tmp_path / "l.csv").write_text("id,hash\n" + "".join(f"{h.upper()},{h}\n" for h in HEX))
    with pytest.raises(AssertionError, match="entry references are opaque"):
        check_list_source(
            core_registry().get("sources", "file").obj,
            ListSpec(path=str(tmp_path / "l.csv"), signal="md5"),
            core_registry(),
        )


def test_hex_is_found_in_any_case_at_any_offset() -> None:
    needles = hex_needles([HEX[0]])
    for text in (HEX[0], HEX[0].upper(), f"x{HEX[0][:7].upper()}{HEX[0][7:]}y", f"0x{HEX[0]}", f"1{HEX[0]}2"):
        assert holds_hex(text, needles), text
    assert not holds_hex(HEX[0][:-1], needles) and not holds_hex(HEX[1], needles)


# -- syncing sources ---------------------------------------------------------------------------

WINDOWS: list[list[EntryUpdate]] = [
    [
        EntryUpdate("a", fingerprints={"md5": HEX[0]}),
        EntryUpdate("b", fingerprints={"md5": HEX[1]}),
        EntryUpdate("f", fingerprints={"md5": HEX[6]}, category="A1"),
    ],
    [EntryUpdate("a", fingerprints={"md5": HEX[2]}), EntryUpdate("c", fingerprints={"md5": HEX[3]})],
    [EntryUpdate("b", deleted=True), EntryUpdate("d", fingerprints={"md5": HEX[4]})],
    [EntryUpdate("e", fingerprints={"md5": HEX[5]})],
]
SYNC = {"windows": len(WINDOWS)}


class MemorySync(MemorySource, SyncingSource):
    """Windows of updates; a checkpoint after each window, naming the next one."""

    def pages(self, start: int) -> Iterator[SyncPage]:
        for w in range(start, len(WINDOWS)):
            yield from self.sent(SyncPage(list(WINDOWS[w]), {"next": w + 1}, f"window {w + 1}"))

    def sent(self, page: SyncPage) -> list[SyncPage]:
        """The hook the broken syncs below override: what goes out for one window."""
        return [page]

    def sync(self, config: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        return self.pages(checkpoint["next"] if checkpoint else 0)


class SkipsAWindow(MemorySync):
    def sent(self, page: SyncPage) -> list[SyncPage]:  # the checkpoint names the window after next
        return [SyncPage(page.updates, {"next": page.checkpoint["next"] + 1} if page.checkpoint else None)]


class CommitsEarly(MemorySync):
    def sent(self, page: SyncPage) -> list[SyncPage]:  # the checkpoint goes before the window's entries
        return [SyncPage([], page.checkpoint), SyncPage(page.updates)]


class CheckpointLeaks(MemorySync):
    def sent(self, page: SyncPage) -> list[SyncPage]:
        last = page.updates[-1].fingerprints.get("md5")
        return [SyncPage(page.updates, {**(page.checkpoint or {}), "last": last})]


class ProgressLeaks(MemorySync):
    def sent(self, page: SyncPage) -> list[SyncPage]:
        return [SyncPage(page.updates, page.checkpoint, f"read {len(page.updates)}, last {HEX[0]}")]


class NeverCommits(MemorySync):
    def sent(self, page: SyncPage) -> list[SyncPage]:
        return [SyncPage(page.updates)]


class CheckpointNotJSON(MemorySync):
    def sent(self, page: SyncPage) -> list[SyncPage]:
        at = {"at": datetime.datetime.now(datetime.UTC)}
        return [SyncPage(page.updates, {"next": page.checkpoint["next"], **at} if page.checkpoint else None)]


class YieldsDicts(MemorySync):
    def sync(self, config: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        return [{"updates": [], "checkpoint": {"next": 1}}]


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        (SkipsAWindow, "a sync resumed from a committed checkpoint must end in the entries"),
        (CommitsEarly, "a sync resumed from a committed checkpoint must end in the entries"),
        (CheckpointLeaks, "a checkpoint holds an entry value"),
        (ProgressLeaks, "progress note holds an entry value"),
        (NeverCommits, "commits at least one checkpoint"),
        (CheckpointNotJSON, "a checkpoint must be JSON-able"),
        (YieldsDicts, "sync\\(\\) yields SyncPage objects"),
    ],
)
def test_a_sync_that_does_not_resume_is_refused(source: type[SyncingSource], rule: str) -> None:
    check_list_source(source, SPEC, core_registry())  # without a sync config the sync is not run
    with pytest.raises(AssertionError, match=rule):
        check_list_source(source, SPEC, core_registry(), sync_config=SYNC)


def test_a_sync_that_resumes_passes() -> None:
    check_list_source(MemorySync, SPEC, core_registry(), sync_config=SYNC)


class CountingSync(MemorySync):
    calls: list[Any] = []

    def sync(self, config: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        self.calls.append(checkpoint)
        return super().sync(config, checkpoint)


@pytest.mark.parametrize(
    ("max_resumes", "resumed_from"), [(3, [1, 3, 4]), (10, [1, 2, 3, 4]), (1, [1]), (0, [])]
)
def test_the_sync_resumes_from_first_last_and_evenly_between(
    max_resumes: int, resumed_from: list[int]
) -> None:
    CountingSync.calls = []
    check_list_source(CountingSync(), SPEC, core_registry(), sync_config=SYNC, max_resumes=max_resumes)
    assert CountingSync.calls == [None, *({"next": n} for n in resumed_from)]


def test_a_sync_config_for_a_source_that_does_not_sync_is_refused() -> None:
    with pytest.raises(AssertionError, match="sync_config is given for a source that does not sync"):
        check_list_source(MemorySource, SPEC, core_registry(), sync_config=SYNC)


# -- matching services -------------------------------------------------------------------------

_RNG = random.Random(43)
ITEMS = [b"MATCH" + _RNG.randbytes(40), b"BAD" + _RNG.randbytes(40), _RNG.randbytes(64), _RNG.randbytes(64)]
KEY = "svc-Planted-Key-0d9e"


class MemoryService(MatchService):
    """Matches items starting MATCH, refuses BAD..., calls the rest clean."""

    name = "memory"
    signal = "memory"

    def __init__(self) -> None:
        self.stats = {"requests": 0}
        self.client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "client": None}

    def setup(self) -> None:
        self.client = threading.Lock()  # stands for an HTTP client: not picklable

    def answer(self, item: bytes) -> ServiceResult:
        if item.startswith(b"MATCH"):
            return self.alter(item, ServiceResult("match", ("E-104",), details={"lists": ("memory/test",)}))
        if item.startswith(b"BAD"):
            return self.alter(item, ServiceResult("unverified", reason="not-an-image"))
        return self.alter(item, ServiceResult("no-match"))

    def alter(self, item: bytes, res: ServiceResult) -> ServiceResult:
        """The hook the broken services below override: the answer for one item."""
        return res

    def match(self, items: Sequence[bytes]) -> list[ServiceResult]:
        self.stats["requests"] += len(items)
        return [self.answer(i) for i in items]


class FewerResults(MemoryService):
    def match(self, items: Sequence[bytes]) -> list[ServiceResult]:
        return super().match(items)[:-1]


class UnknownStatus(MemoryService):
    def alter(self, item: bytes, res: ServiceResult) -> ServiceResult:
        return ServiceResult("clean") if res.status == "no-match" else res


class NoReason(MemoryService):
    def alter(self, item: bytes, res: ServiceResult) -> ServiceResult:
        return ServiceResult("unverified") if res.status == "unverified" else res


class MatchWithoutRefs(MemoryService):
    def alter(self, item: bytes, res: ServiceResult) -> ServiceResult:
        return ServiceResult("match") if res.status == "match" else res


class RefIsTheItemDigest(MemoryService):
    def alter(self, item: bytes, res: ServiceResult) -> ServiceResult:
        return ServiceResult("match", (hashlib.md5(item).hexdigest(),)) if res.status == "match" else res


class ReasonQuotesTheItem(MemoryService):
    def alter(self, item: bytes, res: ServiceResult) -> ServiceResult:
        bad = ServiceResult("unverified", reason=f"bad {hashlib.sha256(item).hexdigest()}")
        return bad if res.status == "unverified" else res


class ListsDoNotMatchRefs(MemoryService):
    def alter(self, item: bytes, res: ServiceResult) -> ServiceResult:
        two = ServiceResult("match", ("E-1", "E-2"), details={"lists": ("memory/test",)})
        return two if res.status == "match" else res


class HeavyPickle(MemoryService):
    def __init__(self) -> None:
        super().__init__()
        self.index = os.urandom(256 * 1024)  # built in __init__, not setup()


class ClientInThePickle(MemoryService):
    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)


class KeyInThePickle(MemoryService):
    def __init__(self) -> None:
        super().__init__()
        self.key = KEY  # kept: travels to every Ray worker


class KeyInDescribe(MemoryService):
    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "auth": f"Bearer {KEY}"}


class NoNameInDescribe(MemoryService):
    def describe(self) -> dict[str, Any]:
        return {"endpoint": "loopback"}


class FloatStats(MemoryService):
    def match(self, items: Sequence[bytes]) -> list[ServiceResult]:
        self.stats["latency_s"] = 0.5  # type: ignore[assignment]
        return super().match(items)


class IgnoresWorkerStats(MemoryService):
    def add_stats(self, delta: Mapping[str, int]) -> None:
        pass


class SaysNoMatchToEverything(MemoryService):
    def alter(self, item: bytes, res: ServiceResult) -> ServiceResult:
        return ServiceResult("no-match")


@pytest.mark.parametrize(
    ("service", "rule"),
    [
        (FewerResults, "exactly one result per item"),
        (UnknownStatus, "status is one of"),
        (NoReason, "an unverified result carries a reason"),
        (MatchWithoutRefs, "a match carries the matched entries' references"),
        (RefIsTheItemDigest, "a reference holds an item's bytes or digest"),
        (ReasonQuotesTheItem, "the reason holds an item's bytes or digest"),
        (ListsDoNotMatchRefs, "details\\['lists'\\] names one list per reference"),
        (HeavyPickle, "pickles cheaply before setup"),
        (ClientInThePickle, "a service after setup\\(\\) must pickle"),
        (KeyInThePickle, "pickled before setup\\(\\) holds a credential"),
        (KeyInDescribe, "describe\\(\\) holds a credential"),
        (NoNameInDescribe, "describe\\(\\) gives the service's name"),
        (FloatStats, "stats holds integer counters"),
        (IgnoresWorkerStats, "add_stats\\(delta\\) adds"),
    ],
)
def test_a_broken_service_is_refused(service: type[MatchService], rule: str) -> None:
    with pytest.raises(AssertionError, match=rule):
        check_match_service(service(), ITEMS, secrets=[KEY])


def test_expected_statuses_are_checked() -> None:
    expect = ["match", "unverified", "no-match", None]
    assert [r.status for r in check_match_service(MemoryService(), ITEMS, expect)][:3] == expect[:3]
    with pytest.raises(AssertionError, match="item 0: expected match, got no-match"):
        check_match_service(SaysNoMatchToEverything(), ITEMS, expect)


# A service over HTTP: the fail-closed check against backends that are down.


class HTTPService(MatchService):
    """POSTs each item to ``base_url/match``; a JSON ``{"match": bool, "ref": str}`` is
    a verdict, anything else is unverified."""

    name = "http-memory"
    signal = "http-memory"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def post(self, item: bytes) -> Any:
        req = urllib.request.Request(self.base_url + "/match", data=item, method="POST")
        with urllib.request.urlopen(req, timeout=2) as resp:
            return json.loads(resp.read())

    def answer(self, item: bytes) -> ServiceResult:
        try:
            doc = self.post(item)
        except (OSError, ValueError):  # URLError, HTTPError, refused, not JSON
            return self.down(item)
        return self.verdict(doc)

    def down(self, item: bytes) -> ServiceResult:
        """The answer when the backend cannot be reached or answers no JSON."""
        return ServiceResult("unverified", reason="service-unavailable")

    def verdict(self, doc: Any) -> ServiceResult:
        """The answer for the backend's JSON document."""
        if not isinstance(doc, dict) or not isinstance(doc.get("match"), bool):
            return ServiceResult("unverified", reason="bad-response")
        return ServiceResult("match", (str(doc.get("ref")),)) if doc["match"] else ServiceResult("no-match")

    def match(self, items: Sequence[bytes]) -> list[ServiceResult]:
        return [self.answer(i) for i in items]


class NoMatchWhenDown(HTTPService):
    def down(self, item: bytes) -> ServiceResult:
        return ServiceResult("no-match")  # "nothing matched"

    def verdict(self, doc: Any) -> ServiceResult:
        return ServiceResult("match", (str(doc["ref"]),)) if doc.get("match") else ServiceResult("no-match")


class AnyAnswerIsAVerdict(HTTPService):
    def verdict(self, doc: Any) -> ServiceResult:
        return ServiceResult("match", ("E",)) if doc.get("match") else ServiceResult("no-match")


class RaisesRawErrors(AnyAnswerIsAVerdict):
    def answer(self, item: bytes) -> ServiceResult:
        return self.verdict(self.post(item))  # URLError and the like escape


class StopsNamingTheItem(HTTPService):
    def down(self, item: bytes) -> ServiceResult:
        raise ServiceError(f"cannot send item {hashlib.sha1(item).hexdigest()}") from None

    def verdict(self, doc: Any) -> ServiceResult:
        return ServiceResult("no-match")


class StopsWithOneLine(HTTPService):
    def setup(self) -> None:
        try:
            self.post(b"ping")
        except OSError:
            raise ServiceError("http-memory: the service could not be reached; check base_url") from None


class DropsResultsWhenDown(HTTPService):
    def match(self, items: Sequence[bytes]) -> list[ServiceResult]:
        return [r for r in super().match(items) if r.status != "unverified"]


def test_a_service_that_fails_closed_passes() -> None:
    with unreachable_backend() as url:
        out = check_fails_closed(lambda: HTTPService(url), ITEMS)
        assert out is not None and {r.reason for r in out} == {"service-unavailable"}
        assert check_fails_closed(lambda: StopsWithOneLine(url), ITEMS) is None
    with failing_backend(200, b'{"status": "maintenance"}') as url:
        out = check_fails_closed(lambda: HTTPService(url), ITEMS)
        assert out is not None and {r.reason for r in out} == {"bad-response"}


@pytest.mark.parametrize(
    ("service", "backend", "rule"),
    [
        (NoMatchWhenDown, "refused", "no-match from a service whose backend is down"),
        (NoMatchWhenDown, "503", "no-match from a service whose backend is down"),
        (AnyAnswerIsAVerdict, "200-no-verdict", "no-match from a service whose backend is down"),
        (RaisesRawErrors, "refused", "raises a DatahygieneError \\(ServiceError\\), not URLError"),
        (StopsNamingTheItem, "refused", "holds an item's bytes or digest"),
        (DropsResultsWhenDown, "503", "one result per item"),
    ],
)
def test_a_service_that_does_not_fail_closed_is_refused(
    service: type[HTTPService], backend: str, rule: str
) -> None:
    backends = {
        "refused": unreachable_backend,
        "503": lambda: failing_backend(503),
        "200-no-verdict": lambda: failing_backend(200, b"{}"),
    }
    with backends[backend]() as url, pytest.raises(AssertionError, match=rule):
        check_fails_closed(lambda: service(url), ITEMS)


def test_the_backends_are_down() -> None:
    with unreachable_backend() as url, pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    with failing_backend(503, b"down") as url, pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url + "/x", data=b"item", method="POST"), timeout=2)
    assert info.value.code == 503 and info.value.read() == b"down"


# -- reporters ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> ReporterInputs:
    return make_reporter_inputs(tmp_path_factory.mktemp("inputs"))


class KeysReporter(Reporter):
    """Writes the excluded rows' keys and URLs, one file, owner-only. The broken reporters
    below override its hooks: ``save`` (how the file is written) and ``after`` (what is
    done once it is, and what write() returns)."""

    name = "keys"

    def detail_columns(self, signals: list[dict[str, Any]]) -> list[str]:
        return ["url"]

    def looked_up(self, exclusions: pa.Table, details: RowDetails | None) -> list[tuple[Any, Any]]:
        """Each excluded row and its details (None where not given)."""
        rows = exclusions.select(["source_file", "row_index"]).to_pylist()
        got = [details.lookup(r["source_file"], [r["row_index"]])[0] if details else None for r in rows]
        return list(zip(rows, got, strict=True))

    def urls(self, exclusions: pa.Table, details: RowDetails | None) -> list[str]:
        out = []
        for r, rec in self.looked_up(exclusions, details):
            if rec is None:  # skipped on --resume: read it back
                rec = pq.read_table(r["source_file"], columns=["url"]).slice(r["row_index"], 1).to_pylist()[0]
            out.append(str(rec.get("url")))
        return out

    def text(self, exclusions: pa.Table, run: dict[str, Any], details: RowDetails | None) -> bytes:
        lines = [f"run {run['run_id']} finished {run['finished_at']}", *self.urls(exclusions, details)]
        return ("\n".join(lines) + "\n").encode()

    def write(
        self,
        exclusions: pa.Table,
        run: dict[str, Any],
        summary: dict[str, Any],
        directory: Path,
        *,
        details: RowDetails | None = None,
    ) -> list[Path]:
        path = self.save(directory / "keys.txt", self.text(exclusions, run, details))
        return self.after([path], exclusions, run, directory)

    def save(self, path: Path, data: bytes) -> Path:
        return write_owner_only(path, data)

    def after(self, paths: list[Path], rows: pa.Table, run: dict[str, Any], directory: Path) -> list[Path]:
        return paths


class WritesBesideItsDirectory(KeysReporter):
    def after(self, paths: list[Path], rows: pa.Table, run: dict[str, Any], directory: Path) -> list[Path]:
        write_owner_only(directory.parent / "copy.txt", b"x")
        return paths


class WritesThroughDotDot(KeysReporter):
    def save(self, path: Path, data: bytes) -> Path:
        return write_owner_only(path.parent / ".." / path.name, b"x")


class ReturnsAPathOutside(KeysReporter):
    def after(self, paths: list[Path], rows: pa.Table, run: dict[str, Any], directory: Path) -> list[Path]:
        scanned = rows.column("source_file")[0].as_py() if rows.num_rows else None
        return [*paths, Path(scanned) if scanned else directory / "keys.txt"]


class ReturnsALink(KeysReporter):
    def after(self, paths: list[Path], rows: pa.Table, run: dict[str, Any], directory: Path) -> list[Path]:
        (directory / "latest.txt").symlink_to(paths[0])
        return [*paths, directory / "latest.txt"]


class HidesAFile(KeysReporter):
    def after(self, paths: list[Path], rows: pa.Table, run: dict[str, Any], directory: Path) -> list[Path]:
        write_owner_only(directory / "debug.txt", b"x")  # written, not returned: never sealed
        return paths


class ReadableByOthers(KeysReporter):
    def save(self, path: Path, data: bytes) -> Path:
        path.write_bytes(data)  # 0666 less the umask: 0644
        return path


class StampsTheClock(KeysReporter):
    def text(self, exclusions: pa.Table, run: dict[str, Any], details: RowDetails | None) -> bytes:
        return super().text(exclusions, run, details) + f"written {time.time_ns()}\n".encode()


class NeedsDetails(KeysReporter):
    def urls(self, exclusions: pa.Table, details: RowDetails | None) -> list[str]:
        assert details is not None  # (the crash a resumed run would meet)
        return super().urls(exclusions, details)


class SkipsRowsWithoutDetails(KeysReporter):
    def urls(self, exclusions: pa.Table, details: RowDetails | None) -> list[str]:
        return [str(rec.get("url")) for _, rec in self.looked_up(exclusions, details) if rec is not None]


class MarksTheRun(KeysReporter):
    def after(self, paths: list[Path], rows: pa.Table, run: dict[str, Any], directory: Path) -> list[Path]:
        run.setdefault("reports", []).append(self.name)
        return paths


class ReturnsStrings(KeysReporter):
    def after(self, paths: list[Path], rows: pa.Table, run: dict[str, Any], directory: Path) -> list[Path]:
        return [str(p) for p in paths]  # type: ignore[misc]


class ColumnsAsATuple(KeysReporter):
    def detail_columns(self, signals: list[dict[str, Any]]) -> list[str]:
        return ("url",)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("reporter", "rule"),
    [
        (WritesBesideItsDirectory, "nothing outside its directory"),
        (WritesThroughDotDot, "nothing outside its directory"),
        (ReturnsAPathOutside, "every path write\\(\\) returns is inside its directory"),
        (ReturnsALink, "is a regular file"),
        (HidesAFile, "returns every file it wrote"),
        (ReadableByOthers, "owner-only"),
        (StampsTheClock, "deterministic"),
        (NeedsDetails, "write\\(\\) works for a run with matches and details=None"),
        (SkipsRowsWithoutDetails, "read the missing rows back"),
        (MarksTheRun, "leaves run and summary unchanged"),
        (ReturnsStrings, "returns a list of pathlib.Path"),
        (ColumnsAsATuple, "detail_columns\\(\\) returns a list"),
    ],
)
def test_a_broken_reporter_is_refused(reporter: type[Reporter], rule: str, inputs: ReporterInputs) -> None:
    with pytest.raises(AssertionError, match=rule):
        check_reporter(reporter, inputs)


def test_a_good_reporter_passes(inputs: ReporterInputs) -> None:
    assert check_reporter(KeysReporter, inputs) == [Path("keys.txt")]


def test_the_check_makes_its_own_run_when_given_none() -> None:
    assert check_reporter(KeysReporter()) == [Path("keys.txt")]


def test_the_runs_are_what_the_checks_need(inputs: ReporterInputs) -> None:
    """Excluded and unverified rows in both inputs (so "some inputs' details" leaves rows
    to read back), details captured by the scan, and a run that flagged nothing."""
    ex = inputs.matched.exclusions
    assert set(ex.column("decision").to_pylist()) == {"excluded", "unverified"}
    excluded = ex.filter(pc.equal(ex.column("decision"), "excluded"))
    assert len(set(excluded.column("source_file").to_pylist())) == 2
    assert sum(t.num_rows for t in inputs.matched.details.tables.values()) == excluded.num_rows
    assert inputs.unmatched.exclusions.num_rows == 0
