"""Excluded rows' URLs and hashes are captured by the scan (``TaskResult.details``) and
handed to the CyberTipline reporter, which no longer reads the inputs back -- and the
stub is byte-for-byte what the read-back path writes, whatever the threads, batch
size, clean output or ``--resume``."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import core_registry, write_text_list

import datahygiene.reporters.cybertipline as ct
from datahygiene.config import ScanConfig
from datahygiene.engines import local
from datahygiene.lists.spec import ListSpec
from datahygiene.manifest import resolve_manifests, row_group_rows
from datahygiene.plugins import PluginInfo
from datahygiene.reporters.base import Reporter, RowDetails
from datahygiene.resume import MARKER_LOG, read_markers
from datahygiene.scan import run_scan

pytestmark = pytest.mark.usefixtures("core_only")

FILES, ROWS, GROUP = 3, 600, 100
STUB = "restricted/reports/cybertipline/cybertipline-stub"


def _digest(i: int, f: int) -> bytes:
    return hashlib.md5(f"placeholder {f} {i}".encode()).digest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three inputs: md5 as lower-case hex, as 16-byte binary, as upper-case hex; a
    ``page_url`` column checked by url-md5; matches by md5, by URL and by both, at row
    group edges; malformed md5s (unverified, never in the stub); null keys and URLs."""
    base = tmp_path_factory.mktemp("details")
    rng = np.random.default_rng(11)
    md5_list: list[str] = []
    url_list: list[str] = []
    truth: dict[tuple[str, int], dict[str, Any]] = {}
    for f in range(FILES):
        digests = [_digest(i, f) for i in range(ROWS)]
        keys: list[str | None] = [f"k{f}-{i}" for i in range(ROWS)]
        urls: list[str | None] = [f"https://example.invalid/{f}/{i}.jpg" for i in range(ROWS)]
        pages = [f"https://example.invalid/page/{f}/{i}" for i in range(ROWS)]
        md5s: list[Any] = [d.hex() if f == 0 else d if f == 1 else d.hex().upper() for d in digests]
        by_md5 = {0, 99, 100, 199, 599, *rng.choice(ROWS, 12, replace=False).tolist()}
        by_url = {5, 250, 450, *rng.choice(ROWS, 6, replace=False).tolist()}
        for i in by_md5:
            md5_list.append(digests[i].hex())
        for i in by_url:
            url_list.append(hashlib.md5(pages[i].encode()).hexdigest())
        for i in sorted(by_url - by_md5)[:3]:
            md5s[i] = None  # a URL match with no file hash
        bad = sorted(set(range(ROWS)) - by_md5 - by_url)[:: ROWS // 7][:7]
        for i in bad:
            md5s[i] = "zz" * 16 if f != 1 else b"\x00" * 3  # unverified, not excluded
        for i in sorted(by_md5 | by_url)[:2]:
            keys[i] = None
        urls[sorted(by_md5)[3]] = None  # only page_url is left for this one
        table = pa.table({"key": pa.array(keys, pa.string()), "url": pa.array(urls, pa.string()),
                          "page_url": pages, "caption": [f"c{i}" for i in range(ROWS)],
                          "md5": pa.array(md5s, pa.binary() if f == 1 else pa.string())})
        path = base / "manifest" / f"part-{f}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, row_group_size=GROUP)
        for i in by_md5 | by_url:
            truth[(f"part-{f}.parquet", i)] = {"md5": digests[i].hex() if md5s[i] is not None else None,
                                               "urls": sorted(u for u in (urls[i], pages[i]) if u)}
    lists = {"md5": write_text_list(base / "md5.txt", sorted(md5_list)),
             "url-md5": write_text_list(base / "url-md5.txt", sorted(url_list))}
    return {"base": base, "manifest": base / "manifest", "lists": lists, "truth": truth}


def config(world: dict[str, Any], out: Path, **kw: Any) -> ScanConfig:
    return ScanConfig(manifests=[str(world["manifest"])],
                      lists=[ListSpec(path=str(p), signal=s) for s, p in world["lists"].items()],
                      columns={"url-md5": "page_url"}, out=str(out), **kw)


def no_time(data: bytes) -> bytes:
    """The stub less what differs from run to run: the scan's start time, and the run
    id (which covers the configuration, clean output included)."""
    data = re.sub(rb'("?incidentDateTime"?[>:] ?"?)[^<"]*', rb"\1T", data)
    return re.sub(rb"datahygiene run [0-9a-f]{32}", b"datahygiene run ID", data)


class Spy:
    """Counts read-backs by the reporter and records the details it was given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read_back: list[tuple[str, list[int]]] = []
        self.details: list[RowDetails | None] = []
        real_read, real_stub = ct._read_rows, ct.build_stub

        def read_rows(path: str, rows: list[int], wanted: list[str]) -> pa.Table | None:
            self.read_back.append((path, list(rows)))
            return real_read(path, rows, wanted)

        def build_stub(exclusions: pa.Table, run: dict[str, Any],
                       details: RowDetails | None = None) -> dict[str, Any]:
            self.details.append(details)
            return real_stub(exclusions, run, details)

        monkeypatch.setattr(ct, "_read_rows", read_rows)
        monkeypatch.setattr(ct, "build_stub", build_stub)


@pytest.mark.parametrize("kw", [
    {"threads": 1, "batch_size": 64},
    {"threads": 2, "batch_size": 100_000},
    {"threads": 2, "batch_size": 37, "write_clean": True},
    {"threads": 1, "batch_size": 50, "write_clean": True, "keep_unverified": True},
], ids=["t1-b64", "t2-big", "clean-b37", "clean-keep-unverified"])
def test_stub_from_details_equals_read_back(world: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, kw: dict[str, Any]) -> None:
    spy = Spy(monkeypatch)
    res = run_scan(config(world, tmp_path / "run", **kw))
    assert spy.read_back == [], "the reporter read the inputs again"
    (details,) = spy.details
    assert details is not None and sum(t.num_rows for t in details.tables.values()) == len(world["truth"])
    xml = (res.out / f"{STUB}.xml").read_bytes()
    js = (res.out / f"{STUB}.json").read_bytes()
    # the read-back path (no details), on the same run: the same bytes
    stub = ct.build_stub(res.exclusions, res.run)
    assert spy.read_back, "the comparison must exercise the read-back path"
    assert ct._xml(stub) == xml
    assert json.dumps(stub, indent=2, sort_keys=True).encode() + b"\n" == js
    # ... and it is right: every excluded row, its URLs, its md5 as lower-case hex
    seen = {}
    for fd in stub["fileDetails"]:
        m = re.search(r"\((.*/)?(part-\d\.parquet) row (\d+)\)", fd["additionalInfo"][0])
        assert m is not None
        seen[(m.group(2), int(m.group(3)))] = fd
    assert set(seen) == set(world["truth"])
    for k, want in world["truth"].items():
        fd = seen[k]
        assert fd["locationOfFile"] == (want["urls"][0] if want["urls"] else ct.TO_COMPLETE)
        assert fd["originalFileHash"] == ([{"hashType": "MD5", "value": want["md5"]}]
                                          if want["md5"] else [])
    # whatever threads, batch size or clean output: the same stub
    ref = world.setdefault("stub", no_time(xml))
    assert no_time(xml) == ref


def test_resume_reads_back_only_rows_of_files_from_the_earlier_run(
        world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = run_scan(config(world, tmp_path / "full", threads=1, write_clean=True))
    out = tmp_path / "cut"
    seen = {"n": 0}

    def progress(n: int, flagged: int) -> None:
        seen["n"] += n
        if seen["n"] >= ROWS + 2 * GROUP:  # input 0 finished, input 1 part-way
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scan(config(world, out, threads=1, write_clean=True), progress=progress)
    assert sorted(read_markers(out / ".work" / MARKER_LOG)) == [0]
    spy = Spy(monkeypatch)
    res = run_scan(config(world, out, threads=1, write_clean=True, resume=True))
    first = resolve_manifests([str(world["manifest"])])[0].path
    want = sorted(i for f, i in world["truth"] if f == "part-0.parquet")
    assert spy.read_back == [(first, want)], "read back anything but the earlier run's rows"
    (details,) = spy.details
    assert details is not None and first not in details.tables
    for name in ("xml", "json"):
        assert no_time((res.out / f"{STUB}.{name}").read_bytes()) == \
            no_time((full.out / f"{STUB}.{name}").read_bytes())


def test_run_task_details_and_one_late_read(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Only excluded rows; the checked columns come from the scan's batch, the others
    from the key's late read, once per row group; none of it with clean output."""
    cfg = config(world, world["base"] / "unused")
    from datahygiene.scan import build_plan, load_lists

    lists = load_lists(cfg, core_registry())
    plan = build_plan(lists, cfg, core_registry(), "key")
    plan.setup()
    f = resolve_manifests([str(world["manifest"])])[1]
    md = pq.ParquetFile(f.fs_path).metadata
    tasks = local.plan_tasks([f], [row_group_rows(md)])
    reads: list[list[str]] = []
    real = local._late_columns

    def late_read(task: local.Task, pf: pq.ParquetFile, columns: list[str], rows: np.ndarray,
                  batch_size: int, viewed: bool = False) -> pa.Table:
        reads.append(columns)
        return real(task, pf, columns, rows, batch_size, viewed)

    monkeypatch.setattr(local, "_late_columns", late_read)
    wanted = ["page_url", "url", "md5", "no_such_column"]
    tables = []
    for t in tasks:
        res = local.run_task(t, plan, 30, False, False, wanted)
        excl = res.flagged.filter(pa.compute.equal(res.flagged.column("decision"), "excluded"))
        if not excl.num_rows:
            assert res.details is None
            continue
        assert res.details is not None
        assert res.details.column_names == ["row_index", "page_url", "url", "md5"]
        assert res.details.column("row_index").to_pylist() == excl.column("row_index").to_pylist()
        assert res.details.schema.field("md5").type == pa.binary()
        tables.append(res.details)
        assert "page_url" not in repr(res) and "example.invalid" not in repr(res)
    assert reads and all(cols == ["key", "url"] for cols in reads)
    assert len(reads) == sum(1 for t in tasks if local.run_task(t, plan, 30, False, False).flagged.num_rows)
    got = pa.concat_tables(tables)
    whole = pq.read_table(f.fs_path)
    assert got.drop_columns(["row_index"]).to_pylist() == \
        whole.take(got.column("row_index")).select(["page_url", "url", "md5"]).to_pylist()
    reads.clear()
    for t in tasks:  # clean output reads every column anyway: details come from it
        res = local.run_task(t, plan, 30, True, False, wanted)
        assert res.details is None or res.details.column_names == ["row_index", "page_url", "url", "md5"]
    assert reads == []
    assert all(local.run_task(t, plan, 30, False, False).details is None for t in tasks)


def test_late_read_stops_after_the_last_needed_row(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"v": [f"v{i}" for i in range(1000)]}), path, row_group_size=1000)
    pf = pq.ParquetFile(path)
    consumed = []
    real = pf.iter_batches

    def iter_batches(**kw: Any) -> Any:
        for b in real(**kw):
            consumed.append(b.num_rows)
            yield b

    pf.iter_batches = iter_batches  # type: ignore[method-assign]
    got = local._late_read(pf, 0, ["v"], np.array([3, 140, 199]), 100)
    assert got.column("v").to_pylist() == ["v3", "v140", "v199"]
    assert consumed == [100, 100], "read past the batch holding the last needed row"


def test_row_details_lookup() -> None:
    d = RowDetails({"a": pa.table({"row_index": pa.array([2, 5, 9], pa.int64()), "url": ["x", None, "z"]})})
    assert d.lookup("a", [9, 3, 2, 5, 10]) == [{"url": "z"}, None, {"url": "x"}, {"url": None}, None]
    assert d.lookup("b", [1]) == [None]
    # an input with none of the wanted columns: its rows are known, with no values
    bare = RowDetails({"a": pa.table({"row_index": pa.array([4, 7], pa.int64())})})
    assert bare.lookup("a", [7, 5, 4]) == [{}, None, {}]
    assert d.lookup("a", []) == []
    assert "x" not in repr(d)


class OldStyle(Reporter):
    """A third-party reporter written before ``details`` existed."""

    name = "old"
    calls: list[int] = []

    def write(self, exclusions: pa.Table, run: dict[str, Any], summary: dict[str, Any],  # type: ignore[override]
              directory: Path) -> list[Path]:
        self.calls.append(exclusions.num_rows)
        return []


def test_reporter_without_details_keeps_working(world: dict[str, Any], tmp_path: Path) -> None:
    reg = core_registry()
    reg.add(PluginInfo("reporters", "old", "tests:OldStyle", "tests", "0", OldStyle))
    run_scan(config(world, tmp_path / "o", threads=1, reporters=["old", "cybertipline"]), registry=reg)
    assert OldStyle.calls == [sum(1 for _ in world["truth"]) + FILES * 7]


def test_details_that_are_not_utf8_are_left_out(tmp_path: Path) -> None:
    """A string column may hold bytes that are not UTF-8 (parquet writers do not check):
    an excluded row's URL or hash of that kind is left out of the stub, as a null is,
    on both paths (decoding it was a traceback after the scan, exit 1)."""
    h = _digest(0, 0).hex()
    text = pa.array([b"https://example.invalid/\xff.jpg", b"https://example.invalid/b.jpg"],
                    pa.binary()).view(pa.string())
    sha1 = pa.array([b"\xfe" * 40, ("ab" * 20).encode()], pa.binary()).view(pa.string())
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"url": text, "md5": [h, h], "sha1": sha1}), path)
    run = {"signals": [{"name": "md5", "column": "md5"}, {"name": "sha1", "column": "sha1"}]}
    excluded = pa.table({"source_file": [str(path)] * 2, "row_index": pa.array([0, 1], pa.int64())})
    want = {(str(path), 0): {"urls": [], "hashes": [{"hashType": "MD5", "value": h}]},
            (str(path), 1): {"urls": ["https://example.invalid/b.jpg"],
                             "hashes": [{"hashType": "MD5", "value": h},
                                        {"hashType": "SHA1", "value": "ab" * 20}]}}
    assert ct._row_details(run, excluded) == want
    details = RowDetails({str(path): pa.table({"row_index": pa.array([0, 1], pa.int64()), "url": text,
                                               "md5": [h, h], "sha1": sha1})})
    assert ct._row_details(run, excluded, details) == want
