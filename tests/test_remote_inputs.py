"""Manifests named by an fsspec URL (here ``memory://``, a filesystem that is not local)
scan exactly as the same files on disk: same decisions, same rows, same digests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.compute as pc
import pytest

from datahygiene.config import ScanConfig
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
