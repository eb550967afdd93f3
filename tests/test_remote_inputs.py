"""Manifests named by an fsspec URL (here ``memory://``, a filesystem that is not local)
scan exactly as the same files on disk: same decisions, same rows, same digests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.compute as pc
import pytest

from datahygiene.config import ScanConfig
from datahygiene.errors import InputError
from datahygiene.lists.spec import ListSpec
from datahygiene.scan import run_scan


def test_memory_filesystem_scans_like_local_files(make_synth: Any, tmp_path: Path) -> None:
    truth = make_synth("remote", rows=3000, files=3, list_size=200, planted=6, malformed=2,
                       row_group_size=400, seed=21)
    fs = fsspec.filesystem("memory")
    local_files = sorted(Path(truth["manifest"]).glob("*.parquet"))
    for p in local_files:
        fs.pipe(f"/dh-remote-test/{p.name}", p.read_bytes())
    try:
        lists = [ListSpec(path=str(truth["lists"]["md5"]), signal="md5")]
        local = run_scan(ScanConfig(manifests=[str(truth["manifest"])], lists=lists,
                                    out=str(tmp_path / "run-local")))
        remote = run_scan(ScanConfig(manifests=["memory://dh-remote-test/*.parquet"], lists=lists,
                                     out=str(tmp_path / "run-remote")))
    finally:
        fs.rm("/dh-remote-test", recursive=True)

    assert remote.summary["rows"] == local.summary["rows"]
    assert remote.summary["rows"]["excluded"] == 6 and remote.summary["rows"]["unverified"] == 2
    for col in ("key", "row_index", "decision"):
        assert remote.exclusions.column(col).equals(local.exclusions.column(col))
    sources = pc.unique(remote.exclusions.column("source_file")).to_pylist()
    assert all(s.startswith("memory://") and s.rsplit("/", 1)[-1] in {p.name for p in local_files}
               for s in sources)
    digests = {i["path"].rsplit("/", 1)[-1]: i["digest"] for i in remote.run["inputs"]}
    assert digests == {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
                       for p in local_files}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on return: nothing listens there


def test_unreachable_or_unavailable_filesystems_are_one_line_errors(cli: Any, tmp_path: Path,
                                                                     monkeypatch: Any) -> None:
    lst = tmp_path / "l.txt"
    lst.write_text("0" * 32 + "\n")
    # a protocol whose package is not installed (as s3:// without s3fs)
    from fsspec.registry import known_implementations

    monkeypatch.setitem(known_implementations, "dhmissing",
                        {"class": "datahygiene_no_such_module.FS",
                         "err": "Install datahygiene-no-such-module to access dhmissing://"})
    res = cli("scan", "--manifest", "dhmissing://bucket/x/*.parquet", "--list", f"md5={lst}",
              "--out", tmp_path / "a", ok=False)
    assert res.exit_code == 3, res.output
    assert res.output.strip().splitlines()[-1] == (
        "datahygiene: error: dhmissing://bucket/x/*.parquet: no filesystem for this URL "
        "(Install datahygiene-no-such-module to access dhmissing://)")



def test_unreachable_filesystem_is_a_one_line_error(cli: Any, tmp_path: Path) -> None:
    """A real HTTP filesystem pointed at a 127.0.0.1 port where nothing listens."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    lst = tmp_path / "l.txt"
    lst.write_text("0" * 32 + "\n")
    url = f"http://127.0.0.1:{_closed_port()}/m/x.parquet"
    res = cli("scan", "--manifest", url, "--list", f"md5={lst}", "--out", tmp_path / "b", ok=False)
    assert res.exit_code == 3, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith(f"datahygiene: error: {url}: cannot list (") and "Traceback" not in res.output
    assert not (tmp_path / "b" / "run.json").exists()


class _RangeFiles:
    """A static file server on 127.0.0.1 answering HTTP/1.1 GET and HEAD with byte
    ranges (RFC 9110, what fsspec's HTTP filesystem reads parquet with), as object
    storage and the Hugging Face Hub serve files; it counts the requests in flight."""

    def __init__(self, root: Path) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        files = self
        self.in_flight = self.most_in_flight = self.requests = self.bytes_sent = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # each response sent at once, as servers do (nginx's tcp_nodelay): Nagle's
            # algorithm held a short body back until the client's delayed ACK (40 ms)
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body: bool) -> None:
                import time

                with files._lock:
                    files.requests += 1
                    files.in_flight += 1
                    files.most_in_flight = max(files.most_in_flight, files.in_flight)
                try:
                    time.sleep(0.01)  # a round trip's worth: lets concurrent requests overlap
                    # a query (a presigned URL's signature) is the server's to check
                    path = root / self.path.split("?", 1)[0].lstrip("/")
                    if not path.is_file():
                        self.send_error(404)
                        return
                    data = path.read_bytes()
                    start, end, status = 0, len(data) - 1, 200
                    rng = self.headers.get("Range", "")
                    if rng.startswith("bytes="):
                        a, b = rng[6:].split("-", 1)
                        start, end = ((len(data) - int(b), end) if not a
                                      else (int(a), min(int(b), end) if b else end))
                        status = 206
                    self.send_response(status)
                    self.send_header("Content-Length", str(end - start + 1))
                    self.send_header("Accept-Ranges", "bytes")
                    st = path.stat()  # an entity tag as static servers make one (nginx)
                    self.send_header("ETag", f'"{st.st_mtime_ns:x}-{st.st_size:x}"')
                    if status == 206:
                        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                    self.end_headers()
                    if body:
                        self.wfile.write(data[start:end + 1])
                        with files._lock:
                            files.bytes_sent += end - start + 1
                finally:
                    with files._lock:
                        files.in_flight -= 1

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_files_served_over_http_scan_like_local_files(make_synth: Any, tmp_path: Path) -> None:
    """Manifests given as many URLs of a real HTTP server: the same decisions and
    digests as the files on disk, with the URLs looked up and the inputs digested
    several at a time (see the tests below)."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    truth = make_synth("http", rows=4000, files=12, list_size=200, planted=7, malformed=2,
                       row_group_size=300, seed=5)
    local_files = sorted(Path(truth["manifest"]).glob("*.parquet"))
    server = _RangeFiles(Path(truth["manifest"]))
    try:
        lists = [ListSpec(path=str(truth["lists"]["md5"]), signal="md5")]
        local = run_scan(ScanConfig(manifests=[str(truth["manifest"])], lists=lists,
                                    out=str(tmp_path / "run-local")))
        remote = run_scan(ScanConfig(manifests=[f"{server.url}/{p.name}" for p in local_files],
                                     lists=lists, out=str(tmp_path / "run-http")))
    finally:
        server.close()
    assert remote.summary["rows"] == local.summary["rows"]
    assert remote.summary["rows"]["excluded"] == 7
    for col in ("key", "row_index", "decision"):
        assert remote.exclusions.column(col).equals(local.exclusions.column(col))
    assert [i["digest"] for i in remote.run["inputs"]] == [
        "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in local_files]
    assert server.most_in_flight > 1
    # each input named by its URL as given (an HTTP filesystem's paths are whole URLs)
    urls = [f"{server.url}/{p.name}" for p in local_files]
    assert [i["path"] for i in remote.run["inputs"]] == urls
    assert set(remote.exclusions.column("source_file").to_pylist()) <= set(urls)


def test_a_task_opens_a_remote_input_without_asking_its_size_again(
        make_synth: Any, tmp_path: Path) -> None:
    """The size is known from the footer's reading: a task's open costs no round trip
    (fsspec's buffered files otherwise ask the server for it, once per task)."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    from datahygiene.engines.local import _Source
    from datahygiene.manifest import read_footer, resolve_manifests

    truth = make_synth("size", rows=500, files=1, list_size=10, planted=1, seed=3)
    path = next(Path(truth["manifest"]).glob("*.parquet"))
    server = _RangeFiles(path.parent)
    try:
        f = resolve_manifests([f"{server.url}/{path.name}"])[0]
        footer = read_footer(f)
        asked = server.requests
        source = _Source(f, footer)
        try:
            assert server.requests == asked
            assert source.handle.read(4) == path.read_bytes()[:4]  # and it reads the file
        finally:
            source.close()
    finally:
        server.close()


class _Overlap:
    """Wraps a function to count how many of its calls run at once."""

    def __init__(self, fn: Any) -> None:
        import threading

        self.fn, self.now, self.most = fn, 0, 0
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import time

        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.02)  # a round trip
            return self.fn(*args, **kwargs)
        finally:
            with self._lock:
                self.now -= 1


def _memory_files(n: int, missing: int | None = None) -> list[str]:
    fs = fsspec.filesystem("memory")
    urls = []
    for i in range(n):
        path = f"/dh-overlap/part-{i:02d}.parquet"
        if i != missing:
            fs.pipe(path, bytes([i]) * (50 + i))
        urls.append("memory:/" + path)
    return urls


def test_many_remote_manifest_arguments_are_looked_up_several_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from datahygiene import manifest
    from datahygiene.errors import InputError

    urls = _memory_files(12, missing=7)
    try:
        overlap = _Overlap(manifest._list_spec)
        monkeypatch.setattr(manifest, "_list_spec", overlap)
        with pytest.raises(InputError, match=r"part-07\.parquet: manifest not found"):
            manifest.resolve_manifests(urls)  # the first failure in the order given
        found = manifest.resolve_manifests(urls[:7] + urls[8:])
        assert [f.path.rsplit("/", 1)[1] for f in found] == [
            f"part-{i:02d}.parquet" for i in range(12) if i != 7]
        assert 1 < overlap.most <= manifest.REMOTE_AT_ONCE
    finally:
        fsspec.filesystem("memory").rm("/dh-overlap", recursive=True)


def test_remote_inputs_are_digested_several_at_a_time_in_input_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Local inputs are digested one at a time (the digest is CPU work, on one core);
    remote ones several at once (each waits on the network). Either way the results
    come in input order, and a failure is its own input's."""
    from datahygiene import manifest
    from datahygiene.errors import InputError

    urls = _memory_files(20)
    try:
        files = manifest.resolve_manifests(urls)
        fsspec.filesystem("memory").rm("/dh-overlap/part-05.parquet")
        overlap = _Overlap(manifest.digest_file)
        monkeypatch.setattr(manifest, "digest_file", overlap)
        digests = manifest.InputDigests(files, "sha256")
        digests.close()
        for i in range(20):
            if i == 5:
                with pytest.raises(InputError, match=r"part-05\.parquet"):
                    digests.result(i)
            else:
                data = bytes([i]) * (50 + i)
                assert digests.result(i) == ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
        assert 1 < overlap.most <= manifest.REMOTE_AT_ONCE
    finally:
        fsspec.filesystem("memory").rm("/dh-overlap", recursive=True)


def test_a_scan_given_more_threads_keeps_more_lookups_and_footers_in_flight(
        make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--threads`` above REMOTE_AT_ONCE raises the requests in flight before the scan
    starts too: a bucket of many shards waited on its footers 8 at a time however
    many threads its tasks had."""
    from datahygiene import manifest

    truth = make_synth("many", rows=3200, files=32, list_size=20, planted=2, seed=5)
    fs = fsspec.filesystem("memory")
    urls = []
    for p in sorted(Path(truth["manifest"]).glob("*.parquet")):
        fs.pipe(f"/dh-many/{p.name}", p.read_bytes())
        urls.append(f"memory:///dh-many/{p.name}")
    try:
        lookups, footers = _Overlap(manifest._list_spec), _Overlap(manifest.read_footer)
        monkeypatch.setattr(manifest, "_list_spec", lookups)
        monkeypatch.setattr(manifest, "read_footer", footers)
        res = run_scan(ScanConfig(manifests=urls, lists=[ListSpec(path=str(truth["lists"]["md5"]),
                                                                  signal="md5")],
                                  out=str(tmp_path / "out"), threads=16))
        assert res.summary["rows"]["excluded"] == 2
        assert manifest.REMOTE_AT_ONCE < lookups.most <= 16
        assert manifest.REMOTE_AT_ONCE < footers.most <= 16
    finally:
        fs.rm("/dh-many", recursive=True)


def test_remote_inputs_get_more_threads_by_default(make_synth: Any, tmp_path: Path) -> None:
    """A task of a remote file waits on round trips, not on a core: without --threads,
    a scan of remote inputs runs at least REMOTE_THREADS workers; local inputs, and
    a rewrite (whole row groups in memory per task), one per core; --threads decides
    when given."""
    from datahygiene.engines.local import default_threads
    from datahygiene.scan import REMOTE_THREADS

    truth = make_synth("threads", rows=600, files=2, list_size=20, planted=2, seed=4)
    fs = fsspec.filesystem("memory")
    for p in Path(truth["manifest"]).glob("*.parquet"):
        fs.pipe(f"/dh-threads/{p.name}", p.read_bytes())
    lists = [ListSpec(path=str(truth["lists"]["md5"]), signal="md5")]
    cores = default_threads()
    try:
        for name, manifest, kw, want in [
                ("remote", "memory://dh-threads/*.parquet", {}, max(cores, REMOTE_THREADS)),
                ("remote-clean", "memory://dh-threads/*.parquet", {"write_clean": True}, cores),
                ("remote-given", "memory://dh-threads/*.parquet", {"threads": 3}, 3),
                ("local", str(truth["manifest"]), {}, cores)]:
            res = run_scan(ScanConfig(manifests=[manifest], lists=lists, out=str(tmp_path / name), **kw))
            assert res.run["engine"]["threads"] == want, name
            assert res.summary["rows"]["excluded"] == 2
    finally:
        fs.rm("/dh-threads", recursive=True)


def _scan_after(server: _RangeFiles, truth: dict[str, Any], paths: list[Path], out: Path,
                monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> Any:
    """Scan ``paths`` as served, ``change()`` running once the footers are read."""
    import datahygiene.scan as scan

    real = scan.plan_tasks

    def then(*args: Any) -> Any:
        change()
        return real(*args)

    monkeypatch.setattr(scan, "plan_tasks", then)
    return run_scan(ScanConfig(manifests=[f"{server.url}/{p.name}" for p in paths],
                               lists=[ListSpec(path=str(truth["lists"]["md5"]), signal="md5")],
                               out=str(out)))


def _touch(path: Path) -> None:
    """The same bytes written again: a later time, a new entity tag."""
    import os

    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))


def _rewrite(path: Path) -> None:
    """Other bytes of the same size (another footer length), under a new tag."""
    data = path.read_bytes()
    path.write_bytes(data[:-8] + b"\0" * 4 + data[-4:])
    _touch(path)


def _spooled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Have the scan copy remote inputs to local disk, as it copies those over
    ``WHOLE_REMOTE_MAX``, a few KB a request."""
    import datahygiene.manifest as manifest
    import datahygiene.scan as scan

    monkeypatch.setattr(scan, "WHOLE_REMOTE_MAX", 0)
    monkeypatch.setattr(manifest, "SPOOL_BLOCK", 4096)


def _by_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Have the scan read remote inputs by ranges, as it reads those over
    ``WHOLE_REMOTE_MAX`` where the disk of its work area lacks room for a copy."""
    import datahygiene.manifest as manifest

    _spooled(monkeypatch)
    monkeypatch.setattr(manifest, "SPOOL_KEEP_FREE", 2**62)


@pytest.mark.parametrize(("read", "change"), [
    ("ranges", _touch),  # read by ranges: the version looked at after the reads
    ("whole", _rewrite),  # read whole: its bytes checked against its footer
    ("spooled", _rewrite),  # copied to disk: the copy checked against its footer
])
def test_a_file_replaced_on_the_server_during_the_scan_stops_it(
        make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        read: str, change: Callable[[Path], None]) -> None:
    """An input replaced after its footer was read fails the run on that input (exit 3
    from the command line), as a local file written meanwhile does: a file read by
    ranges through its entity tag, which stands for its version, a file read whole or
    copied by its bytes, which must end in the footer the scan planned from."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    if read == "ranges":
        _by_ranges(monkeypatch)
    elif read == "spooled":
        _spooled(monkeypatch)
    truth = make_synth("http", rows=1000, files=2, list_size=50, planted=3, seed=6,
                       row_group_size=300)
    paths = sorted(Path(truth["manifest"]).glob("*.parquet"))
    server = _RangeFiles(paths[0].parent)
    try:
        out = tmp_path / "out"
        with pytest.raises(InputError, match=rf"/{paths[1].name}: changed while the scan read it"):
            _scan_after(server, truth, paths, out, monkeypatch, lambda: change(paths[1]))
        assert not (out / "run.json").exists()
    finally:
        server.close()


def test_a_small_file_is_read_whole_once_and_digested_from_those_bytes(
        make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small remote input costs its tasks one request, whose bytes they scan and
    which are digested: no other read of it and no second look at its version
    (footer, then the whole file: two requests an input). The same bytes written
    again meanwhile (a new tag) are no change to what was scanned, and the digest is
    theirs."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    truth = make_synth("http", rows=1200, files=3, list_size=50, planted=3, row_group_size=200,
                       seed=8)
    paths = sorted(Path(truth["manifest"]).glob("*.parquet"))
    server = _RangeFiles(paths[0].parent)
    try:
        local = run_scan(ScanConfig(manifests=[str(truth["manifest"])],
                                    lists=[ListSpec(path=str(truth["lists"]["md5"]), signal="md5")],
                                    out=str(tmp_path / "local")))
        asked: list[int] = []
        res = _scan_after(server, truth, paths, tmp_path / "out", monkeypatch,
                          lambda: (asked.append(server.requests), _touch(paths[0])))
        assert server.requests - asked[0] == len(paths)  # one request a file, nothing after
        assert [i["row_groups"] for i in res.run["inputs"]] == [2] * len(paths)
        assert [i["digest"] for i in res.run["inputs"]] == [
            "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
        assert res.summary["rows"] == local.summary["rows"]
        assert res.exclusions.column("key").equals(local.exclusions.column("key"))
    finally:
        server.close()


def test_a_file_read_by_ranges_is_fetched_a_column_chunk_at_a_time(
        make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's reads of a file read by ranges fetch its column chunks and no more:
    fsspec's files otherwise read several MB ahead, which for a file of small row
    groups fetched most of it again for every task. The file's bytes cross once for
    its digest, and its `md5` chunks once more, not a task's read-ahead each."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    _by_ranges(monkeypatch)
    truth = make_synth("ranges", rows=6000, files=1, list_size=50, planted=3, row_group_size=300,
                       seed=9)
    res, served, size = _scan_served(truth, tmp_path)
    assert res.run["inputs"][0]["row_groups"] == 20
    assert res.summary["rows"]["excluded"] == 3
    assert served < 2 * size


def test_a_large_file_is_copied_to_disk_once_scanned_there_and_digested_as_copied(
        make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote input too large to hold in memory is copied to the run's work area,
    block by block, each hashed as it arrives: its bytes cross the network once (its
    footer's read apart), where read by ranges its hash column crossed it for the scan
    and the whole file again for its digest; the scan's decisions and the digest are
    those of the file on disk, and the copy is gone after the run."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    from datahygiene import manifest

    truth = make_synth("spool", rows=6000, files=1, list_size=50, planted=3, row_group_size=300,
                       seed=9)
    local = run_scan(ScanConfig(manifests=[str(truth["manifest"])],
                                lists=[ListSpec(path=str(truth["lists"]["md5"]), signal="md5")],
                                out=str(tmp_path / "local")))
    copies: list[str] = []
    real = manifest.spool_remote

    def spool(f: Any, footer: Any, to: str, algorithm: str) -> tuple[str, int]:
        copies.append(to)
        return real(f, footer, to, algorithm)

    monkeypatch.setattr(manifest, "spool_remote", spool)
    with monkeypatch.context() as ranges:
        _by_ranges(ranges)
        _, by_ranges, _ = _scan_served(truth, tmp_path / "ranges")
    assert not copies
    _spooled(monkeypatch)
    res, served, size = _scan_served(truth, tmp_path / "spooled")
    assert len(copies) == 1 and not Path(copies[0]).exists()
    assert served <= size + min(size, manifest.FOOTER_PROBE) < by_ranges
    path = next(Path(truth["manifest"]).glob("*.parquet"))
    assert res.run["inputs"][0]["digest"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert res.run["inputs"][0]["row_groups"] == 20
    assert res.summary["rows"] == local.summary["rows"]
    assert res.exclusions.column("key").equals(local.exclusions.column("key"))


def _scan_served(truth: dict[str, Any], tmp_path: Path, **options: Any) -> tuple[Any, int, int]:
    """A scan of ``truth``'s one file served over HTTP: its result, the bytes the server
    sent, and the file's size."""
    path = next(Path(truth["manifest"]).glob("*.parquet"))
    server = _RangeFiles(path.parent)
    try:
        res = run_scan(ScanConfig(manifests=[f"{server.url}/{path.name}"],
                                  lists=[ListSpec(path=str(truth["lists"]["md5"]), signal="md5")],
                                  out=str(tmp_path / "out"), **options))
    finally:
        server.close()
    return res, server.bytes_sent, path.stat().st_size


def test_the_key_check_of_a_remote_input_fetches_its_key_chunks_only(
        make_synth: Any, tmp_path: Path) -> None:
    """``--check-keys`` reads the key column of every input again after the scan: on a
    remote one, that column's chunks and not a read-ahead of the others. The scan's
    whole read and the key check together serve well under twice the file's bytes."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    truth = make_synth("keys", rows=30000, files=1, list_size=50, planted=3, row_group_size=1500,
                       seed=10)
    res, served, size = _scan_served(truth, tmp_path, check_keys=True)
    assert res.summary["rows"]["excluded"] == 3
    assert served < 1.5 * size


def test_a_looked_up_url_is_not_asked_its_size_again(make_synth: Any) -> None:
    """A URL named as a parquet file is looked up with one request, and the answer
    (size and entity tag) serves the footer's read and the digest: each reads the file
    without first asking about it."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    from datahygiene import manifest

    truth = make_synth("http", rows=500, files=1, list_size=10, planted=1, seed=2)
    path = next(Path(truth["manifest"]).glob("*.parquet"))
    server = _RangeFiles(path.parent)
    try:
        f = manifest.resolve_manifests([f"{server.url}/{path.name}"])[0]
        assert server.requests == 1  # a URL named as a parquet file: one request to look it up
        assert f.listed is not None and f.listed[0] == path.stat().st_size
        asked = server.requests
        footer = manifest.read_footer(f)
        assert server.requests == asked + 1  # the footer's bytes only
        assert footer.state == f.listed == manifest.remote_state(f, fresh=True)
        asked = server.requests
        digests = manifest.InputDigests([f], "sha256")
        digests.close()
        assert digests.result(0)[0] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        assert server.requests == asked + 2  # the bytes, then the version asked again
    finally:
        server.close()


def test_an_in_memory_file_written_again_after_its_footer_is_an_error(
        make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any fsspec filesystem that tells a version (here the in-memory one's creation
    time) is checked the same way."""
    import datahygiene.scan as scan

    # read by ranges, as a file over WHOLE_REMOTE_MAX is without room for a copy (one read whole would be
    # checked by its bytes, and the same bytes written again would be no change)
    _by_ranges(monkeypatch)
    truth = make_synth("mem", rows=600, files=2, list_size=20, planted=2, seed=7)
    fs = fsspec.filesystem("memory")
    names = []
    for p in sorted(Path(truth["manifest"]).glob("*.parquet")):
        fs.pipe(f"/dh-changed/{p.name}", p.read_bytes())
        names.append(p.name)
    real = scan.plan_tasks

    def then(*args: Any) -> Any:
        fs.pipe(f"/dh-changed/{names[0]}", fs.cat(f"/dh-changed/{names[0]}"))
        return real(*args)

    monkeypatch.setattr(scan, "plan_tasks", then)
    try:
        with pytest.raises(InputError, match=rf"{names[0]}: changed while the scan read it"):
            run_scan(ScanConfig(manifests=["memory:///dh-changed"],
                                lists=[ListSpec(path=str(truth["lists"]["md5"]), signal="md5")],
                                out=str(tmp_path / "out")))
    finally:
        fs.rm("/dh-changed", recursive=True)


def test_a_remote_file_gone_or_not_to_be_asked_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked again after its reads: a file removed meanwhile has changed; a storage that
    cannot answer (a network error) is an input error saying so, not a change."""
    from datahygiene import manifest

    urls = _memory_files(2)
    try:
        f, g = manifest.resolve_manifests(urls)
        assert f.listed is not None
        manifest.check_remote(f, f.listed)  # unchanged: nothing raised
        fsspec.filesystem("memory").rm(f.fs_path)
        with pytest.raises(InputError, match=r"part-00\.parquet: changed while the scan read it"):
            manifest.check_remote(f, f.listed)

        class Down:
            def info(self, path: str) -> Any:
                raise ConnectionError("connection refused")

            def invalidate_cache(self, path: str) -> None:
                pass

        monkeypatch.setattr(manifest, "_uncached", lambda fs: Down())
        with pytest.raises(InputError, match=r"part-01\.parquet: cannot ask its storage whether it "
                                             r"changed during the scan \(ConnectionError"):
            manifest.check_remote(g, g.listed)
    finally:
        fsspec.filesystem("memory").rm("/dh-overlap", recursive=True)


def test_a_remote_directory_named_like_a_parquet_file_is_a_directory() -> None:
    """Spark writes a table as a directory named ``table.parquet``: looked up as a file
    first (one request for a URL that names one), it is still read as the directory."""
    from datahygiene import manifest

    fs = fsspec.filesystem("memory")
    for i in range(2):
        fs.pipe(f"/dh-spark/table.parquet/part-{i}.parquet", bytes([i]) * 20)
    fs.pipe("/dh-spark/table.parquet/_SUCCESS", b"")
    try:
        found = manifest.resolve_manifests(["memory:///dh-spark/table.parquet"])
        assert [f.path for f in found] == [f"memory:///dh-spark/table.parquet/part-{i}.parquet"
                                           for i in range(2)]
        assert all(f.listed is not None and f.listed[0] == 20 for f in found)
    finally:
        fs.rm("/dh-spark", recursive=True)


def test_a_remote_digest_held_for_the_scans_reads_waits_for_them() -> None:
    """With ``after_reads`` a remote input is digested only once released (its tasks
    done); a local one at once; closing without a release ends the wait, with an error
    for that input instead of a hang."""
    from datahygiene import manifest

    urls = _memory_files(3)
    try:
        remote = manifest.resolve_manifests(urls)
        digests = manifest.InputDigests(remote, "sha256", after_reads=True)
        import time

        time.sleep(0.2)
        assert not digests.done(0)
        digests.release(0)
        digests.release(1)
        assert digests.result(1)[1] == 51 and digests.done(0)
        assert not digests.done(2)
        digests.close()
        with pytest.raises(InputError, match=r"part-02\.parquet: its digest was not computed"):
            digests.result(2)
    finally:
        fsspec.filesystem("memory").rm("/dh-overlap", recursive=True)


def test_whole_reads_read_a_file_once_for_its_tasks_and_let_it_go_after_the_last(
        make_synth: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks of one file asking at once get one read's bytes, digested once; after the
    last task is done the bytes are let go (a later ask would read again)."""
    import threading

    from datahygiene import manifest

    truth = make_synth("whole", rows=500, files=1, list_size=10, planted=1, seed=4)
    path = next(Path(truth["manifest"]).glob("*.parquet"))
    fs = fsspec.filesystem("memory")
    fs.pipe("/dh-whole/a.parquet", path.read_bytes())
    try:
        files = manifest.resolve_manifests(["memory:///dh-whole/a.parquet"])
        footer = manifest.read_footer(files[0])
        reads: list[str] = []
        real = manifest.read_remote_whole

        def counted(f: manifest.InputFile, ft: manifest.Footer) -> bytes:
            reads.append(f.path)
            return real(f, ft)

        monkeypatch.setattr(manifest, "read_remote_whole", counted)
        digests = manifest.InputDigests(files, "sha256", after_reads=True)
        digests.expect([footer.state])
        whole = manifest.WholeReads(files, lambda i: footer, {0: 4}, digests)
        got: list[bytes] = []
        start = threading.Barrier(4)

        def task() -> None:
            start.wait()
            got.append(whole.bytes_of(0))
            whole.task_done(0)

        threads = [threading.Thread(target=task) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        digests.close()
        assert reads == ["memory:///dh-whole/a.parquet"]
        assert got == [path.read_bytes()] * 4
        assert digests.result(0) == ("sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(),
                                     path.stat().st_size)
        assert whole._data == {}  # let go after the fourth task
    finally:
        fs.rm("/dh-whole", recursive=True)


def test_copies_being_made_count_against_the_room_left_for_the_next(
        make_synth: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two large inputs asked for at once, on a disk with room for one copy beside the
    free space kept: the first is copied, the second read by ranges (its tasks get
    None), though each alone would fit the free space the disk reports."""
    import threading
    from collections import namedtuple

    from datahygiene import manifest

    truth = make_synth("room", rows=400, files=2, list_size=10, planted=1, seed=3)
    paths = sorted(Path(truth["manifest"]).glob("*.parquet"))
    fs = fsspec.filesystem("memory")
    for p in paths:
        fs.pipe(f"/dh-room/{p.name}", p.read_bytes())
    try:
        files = manifest.resolve_manifests([f"memory:///dh-room/{p.name}" for p in paths])
        footers = [manifest.read_footer(f) for f in files]
        biggest = max(ft.size for ft in footers)
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(manifest.shutil, "disk_usage",
                            lambda _: usage(0, 0, manifest.SPOOL_KEEP_FREE + biggest + 10))
        both_asked = threading.Barrier(2)
        real = manifest.spool_remote

        def slow(f: Any, footer: Any, to: str, algorithm: str) -> tuple[str, int]:
            both_asked.wait(timeout=10)  # the other task asks while this copy is made
            return real(f, footer, to, algorithm)

        monkeypatch.setattr(manifest, "spool_remote", slow)
        digests = manifest.InputDigests(files, "sha256", after_reads=True)
        digests.expect([ft.state for ft in footers])
        whole = manifest.WholeReads(files, lambda i: footers[i], {0: 1, 1: 1}, digests, {0, 1},
                                    str(tmp_path))
        got: dict[int, Any] = {}
        first = threading.Thread(target=lambda: got.__setitem__(0, whole.bytes_of(0)))
        first.start()
        while not whole._copying:  # the first copy has its room
            threading.Event().wait(0.01)
        got[1] = whole.bytes_of(1)
        both_asked.wait(timeout=10)
        first.join()
        assert got[0] == str(tmp_path / "0.parquet") and got[1] is None
        assert Path(got[0]).read_bytes() == paths[0].read_bytes()
        whole.task_done(0)
        whole.task_done(1)
        assert not Path(got[0]).exists()
        digests.release(1)
        digests.close()
    finally:
        fs.rm("/dh-room", recursive=True)


def test_verify_reads_each_remote_input_once_several_at_a_time(
        make_synth: Any, tmp_path: Path) -> None:
    """An auditor's coverage check of a run whose inputs are URLs: each input read once
    for its digest, size and row count (its footer among the last bytes read), several
    inputs at once, the findings in run.json's order."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    from datahygiene.audit.verify import Verification

    truth = make_synth("verify", rows=4000, files=8, list_size=50, planted=3, seed=11)
    paths = sorted(Path(truth["manifest"]).glob("*.parquet"))
    server = _RangeFiles(paths[0].parent)
    try:
        run_scan(ScanConfig(manifests=[f"{server.url}/{p.name}" for p in paths],
                            lists=[ListSpec(path=str(truth["lists"]["md5"]), signal="md5")],
                            out=str(tmp_path / "out")))
        asked, server.most_in_flight = server.requests, 0
        checks = {c.name: c for c in Verification(tmp_path / "out").run_all()}
        assert checks["coverage"].status == "pass", checks["coverage"].reason
        assert "8 input file(s), 4000 rows" in checks["coverage"].reason
        # fsspec asks a URL's size, then reads it: two requests an input, no footer read
        assert server.requests - asked == 2 * len(paths)
        assert server.most_in_flight > 1
        for p in (paths[5], paths[2]):  # two inputs changed: both named, in run.json's order
            p.write_bytes(p.read_bytes()[:-1])
        checks = {c.name: c for c in Verification(tmp_path / "out").run_all()}
        assert checks["coverage"].status == "fail"
        assert checks["coverage"].reason.index(paths[2].name) < checks["coverage"].reason.index(
            paths[5].name)
    finally:
        server.close()


def test_a_signed_url_is_read_through_and_never_named_with_its_secret(
        make_synth: Any, tmp_path: Path) -> None:
    """A presigned URL's query (its signature) and a URL's user name and password are
    credentials: the scan reads through them, but run.json (published), the other
    outputs and the errors name the URL without them."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")
    truth = make_synth("signed", rows=1000, files=2, list_size=50, planted=3, seed=12)
    paths = sorted(Path(truth["manifest"]).glob("*.parquet"))
    server = _RangeFiles(paths[0].parent)
    secret = "X-Amz-Signature=0123456789abcdefSECRET"
    host = server.url.split("://", 1)[1]
    urls = [f"{server.url}/{paths[0].name}?{secret}&X-Amz-Expires=3600",
            f"http://someone:PASSWORD@{host}/{paths[1].name}#SECRET",
            f"{server.url}/{paths[0].name}?X-Amz-Signature=another"]  # the same object again
    lists = [ListSpec(path=str(truth["lists"]["md5"]), signal="md5")]
    out = tmp_path / "out"
    try:
        res = run_scan(ScanConfig(manifests=urls, lists=lists, out=str(out), write_clean=True))
        with pytest.raises(InputError) as err:
            run_scan(ScanConfig(manifests=[f"{server.url}/missing.parquet?{secret}"], lists=lists,
                                out=str(tmp_path / "missing")))
    finally:
        server.close()
    assert res.summary["rows"]["excluded"] == 3
    assert [i["path"] for i in res.run["inputs"]] == [f"{server.url}/{p.name}" for p in paths]
    assert sorted(p.name for p in (out / "clean").iterdir()) == [p.name for p in paths]
    written = [f for f in out.rglob("*") if f.is_file()]
    assert written and not [f for f in written if b"SECRET" in f.read_bytes() or
                            b"PASSWORD" in f.read_bytes()]
    assert str(err.value) == f"{server.url}/missing.parquet: manifest not found"
