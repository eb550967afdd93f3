"""Manifests named by an fsspec URL (here ``memory://``, a filesystem that is not local)
scan exactly as the same files on disk: same decisions, same rows, same digests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.compute as pc

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
                                    out=str(tmp_path / "local")))
        remote = run_scan(ScanConfig(manifests=["memory://dh-remote-test/*.parquet"], lists=lists,
                                     out=str(tmp_path / "remote")))
    finally:
        fs.rm("/dh-remote-test", recursive=True)

    assert remote.summary["rows"] == local.summary["rows"]
    assert remote.summary["rows"]["excluded"] == 6 and remote.summary["rows"]["unverified"] == 2
    for col in ("key", "row_index", "decision"):
        assert remote.exclusions.column(col).equals(local.exclusions.column(col))
    sources = pc.unique(remote.exclusions.column("source_file")).to_pylist()
    assert all(s.startswith("memory://") and s.rsplit("/", 1)[-1] in {p.name for p in local_files}
               for s in sources)
    digests = {i["path"].rsplit("/", 1)[-1]: i["sha256"] for i in remote.run["inputs"]}
    assert digests == {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
                       for p in local_files}
