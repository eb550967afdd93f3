"""Manifests on object storage: scanned through a real S3-speaking server on
127.0.0.1 (moto's), read by s3fs as a curator's scan of a bucket would be.

An object replaced while the scan reads it stops the scan, as a local file written
meanwhile does (datahygiene/manifest.py, ``changed_under_scan``): an object of one
row group is read whole by its task, whose bytes must end in the footer the scan
planned from, and are digested; a larger one is read by ranges, and its version (the
ETag) as its footer was read must be found again after its digest, which follows
every task's reads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from dhtest import after_each_digest

from datahygiene.config import ScanConfig
from datahygiene.errors import InputError
from datahygiene.lists.spec import ListSpec
from datahygiene.scan import run_scan

pytest.importorskip("s3fs", reason="s3:// manifests need s3fs")
moto_server = pytest.importorskip("moto.server", reason="the S3 server of these tests is moto's")

pytestmark = pytest.mark.usefixtures("core_only")

CHANGED = "changed while the scan read it"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """s3fs pointed at the server (through the environment, as a user's scan is), with
    a fresh bucket."""
    for name, value in (("AWS_ACCESS_KEY_ID", "placeholder"), ("AWS_SECRET_ACCESS_KEY", "placeholder"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", s3_endpoint)):
        monkeypatch.setenv(name, value)
    fsspec.filesystem("s3").clear_instance_cache()
    fs = fsspec.filesystem("s3")
    fs.mkdir("dh-test")
    try:
        yield fs
    finally:
        fs.rm("dh-test", recursive=True)
        fs.clear_instance_cache()


def _upload(fs: Any, truth: dict[str, Any]) -> list[Path]:
    local = sorted(Path(truth["manifest"]).glob("*.parquet"))
    for p in local:
        fs.put(str(p), f"dh-test/manifest/{p.name}")
    return local


def _lists(truth: dict[str, Any]) -> list[ListSpec]:
    return [ListSpec(path=str(truth["lists"]["md5"]), signal="md5")]


def test_a_bucket_scans_like_the_same_files_on_disk(s3: Any, make_synth: Any, tmp_path: Path) -> None:
    truth = make_synth("s3", rows=3000, files=3, list_size=100, planted=6, malformed=2,
                       row_group_size=400, seed=8)
    local_files = _upload(s3, truth)
    local = run_scan(ScanConfig(manifests=[str(truth["manifest"])], lists=_lists(truth),
                                out=str(tmp_path / "run-local")))
    remote = run_scan(ScanConfig(manifests=["s3://dh-test/manifest"], lists=_lists(truth),
                                 out=str(tmp_path / "run-s3")))
    assert remote.summary["rows"] == local.summary["rows"]
    assert remote.summary["rows"]["excluded"] == 6 and remote.summary["rows"]["unverified"] == 2
    for col in ("key", "row_index", "decision"):
        assert remote.exclusions.column(col).equals(local.exclusions.column(col))
    assert [i["path"] for i in remote.run["inputs"]] == [
        f"s3://dh-test/manifest/{p.name}" for p in local_files]
    assert [i["digest"] for i in remote.run["inputs"]] == [
        "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in local_files]


def _replace(fs: Any, key: str) -> None:
    """Another object under the same key (what a job rewriting its shards leaves)."""
    data = fs.cat(key)
    fs.pipe(key, data[:-8] + b"\0" * 4 + data[-4:])


def test_an_object_replaced_after_its_footer_was_read_stops_the_scan(
        s3: Any, make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the footers and the tasks: the task reading the object whole finds
    other bytes than its footer said; the run fails on that input, naming it, and
    writes nothing that looks complete."""
    import datahygiene.scan as scan

    truth = make_synth("s3", rows=1000, files=2, list_size=50, planted=3, seed=9)
    names = [p.name for p in _upload(s3, truth)]
    real = scan.plan_tasks

    def then(*args: Any) -> Any:
        _replace(s3, f"dh-test/manifest/{names[1]}")
        return real(*args)

    monkeypatch.setattr(scan, "plan_tasks", then)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=rf"s3://dh-test/manifest/{names[1]}: {CHANGED}"):
        run_scan(ScanConfig(manifests=["s3://dh-test/manifest"], lists=_lists(truth), out=str(out)))
    assert not (out / "run.json").exists()
    assert not (out / "restricted" / "exclusions.parquet").exists()


def test_an_object_replaced_while_it_is_digested_is_an_error(
        s3: Any, make_synth: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from datahygiene import manifest

    truth = make_synth("s3", rows=500, files=1, list_size=10, planted=1, seed=4)
    name = _upload(s3, truth)[0].name
    files = manifest.resolve_manifests(["s3://dh-test/manifest"])
    after_each_digest(monkeypatch, lambda f: _replace(s3, f"dh-test/manifest/{name}"))
    digests = manifest.InputDigests(files, "sha256")
    digests.close()
    with pytest.raises(InputError, match=rf"{name}: {CHANGED}"):
        digests.result(0)


def test_each_object_is_looked_at_again_once_after_all_its_reads(
        s3: Any, make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan asks each object's version afresh once: its digest does, after the
    scan's tasks have read its row groups (the tasks themselves ask nothing), so that
    one look vouches for every read. The look goes past s3fs's listing, which stays."""
    import datahygiene.scan as scan
    from datahygiene import manifest

    # read by ranges, as a larger object is where the work area's disk lacks room
    monkeypatch.setattr(scan, "WHOLE_REMOTE_MAX", 0)
    monkeypatch.setattr(manifest, "SPOOL_KEEP_FREE", 2**62)
    truth = make_synth("s3", rows=2000, files=2, list_size=50, planted=3, row_group_size=300, seed=12)
    names = [p.name for p in _upload(s3, truth)]
    looks: list[str] = []
    real = manifest.remote_state

    def counted(f: manifest.InputFile, fresh: bool = False) -> Any:
        if fresh:
            looks.append(f.path)
        return real(f, fresh)

    monkeypatch.setattr(manifest, "remote_state", counted)
    res = run_scan(ScanConfig(manifests=["s3://dh-test/manifest"], lists=_lists(truth),
                              out=str(tmp_path / "out")))
    assert sum(i["row_groups"] for i in res.run["inputs"]) > len(names)  # several tasks a file
    assert sorted(looks) == [f"s3://dh-test/manifest/{n}" for n in names]
    assert "dh-test/manifest" in fsspec.filesystem("s3").dircache


@pytest.mark.parametrize(("size", "reader"), [("small", "read_remote_whole"), ("large", "spool_remote")])
def test_an_object_is_read_whole_once_and_not_looked_at_again(
        s3: Any, make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: str,
        reader: str) -> None:
    """One read serves all its tasks and the digest (of the bytes scanned): no look at
    its version after, and no other read of it (see manifest.WholeReads). A small object
    is held in memory (one GET); one over the whole-read size is copied to the work
    area, hashed as it arrives, and the copy is gone after the run."""
    import datahygiene.scan as scan
    from datahygiene import manifest

    if size == "large":
        monkeypatch.setattr(scan, "WHOLE_REMOTE_MAX", 0)
        monkeypatch.setattr(manifest, "SPOOL_BLOCK", 8192)
    truth = make_synth("s3", rows=1500, files=3, list_size=50, planted=3, row_group_size=200,
                       seed=13)
    local_files = _upload(s3, truth)
    looks: list[str] = []
    reads: list[str] = []
    real_state, real_read = manifest.remote_state, getattr(manifest, reader)

    def counted(f: manifest.InputFile, fresh: bool = False) -> Any:
        if fresh:
            looks.append(f.path)
        return real_state(f, fresh)

    def read(f: manifest.InputFile, *args: Any) -> Any:
        reads.append(f.path)
        return real_read(f, *args)

    monkeypatch.setattr(manifest, "remote_state", counted)
    monkeypatch.setattr(manifest, "digest_file", None)  # no digest reads the object again
    monkeypatch.setattr(manifest, reader, read)
    res = run_scan(ScanConfig(manifests=["s3://dh-test/manifest"], lists=_lists(truth),
                              out=str(tmp_path / "out")))
    assert looks == []
    assert reads == [f"s3://dh-test/manifest/{p.name}" for p in local_files]
    assert [i["digest"] for i in res.run["inputs"]] == [
        "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in local_files]
    assert res.summary["rows"]["excluded"] == 3
    assert [i["row_groups"] for i in res.run["inputs"]] == [3] * len(local_files)
    assert not (tmp_path / "out" / ".work").exists()


def test_a_task_given_a_remote_state_checks_it_after_its_reads(s3: Any, make_synth: Any) -> None:
    """Outside a scan's digests, a task carrying a remote file's state looks at its
    version once, after its reads (none at its open: the footer gave the size)."""
    from datahygiene import manifest
    from datahygiene.engines import local

    truth = make_synth("s3", rows=500, files=1, list_size=10, planted=1, seed=3)
    _upload(s3, truth)
    f = manifest.resolve_manifests(["s3://dh-test/manifest"])[0]
    footer = manifest.read_footer(f)
    assert footer.state is not None and footer.state == manifest.remote_state(f, fresh=True)
    source = local._Source(f, footer, footer.state)
    try:
        source.handle.read(4)
        source.check_unchanged()
        _replace(s3, f.fs_path)
        with pytest.raises(InputError, match=CHANGED):
            source.check_unchanged()
    finally:
        source.close()


def test_a_prefix_named_like_a_parquet_file_is_a_directory(s3: Any) -> None:
    """A Spark table is a prefix named ``table.parquet``: looked up as an object first,
    it is still read as the directory of its parts."""
    from datahygiene import manifest

    for i in range(2):
        s3.pipe(f"dh-test/table.parquet/part-{i}.parquet", bytes([i]) * 30)
    s3.pipe("dh-test/table.parquet/_SUCCESS", b"")
    found = manifest.resolve_manifests(["s3://dh-test/table.parquet"])
    assert [f.path for f in found] == [f"s3://dh-test/table.parquet/part-{i}.parquet" for i in range(2)]
    assert all(f.listed is not None and f.listed[0] == 30 for f in found)
