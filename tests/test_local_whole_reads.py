"""Small local inputs scanned by one task each (img2dataset's shards) and not digested
yet when the scan starts are read whole by their task, which scans and digests those
bytes: one read of each byte instead of two (datahygiene/manifest.py,
``InputDigests.hand_over``, ``read_local_whole``). The digest thread takes the others.
Either way run.json holds each file's own digest, and a file written under the scan
is an error, never a digest of bytes it did not scan."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from dhtest import hexes, rand_bytes, write_manifest, write_text_list

from datahygiene import manifest
from datahygiene.config import ScanConfig
from datahygiene.errors import InputError
from datahygiene.lists.spec import ListSpec
from datahygiene.scan import run_scan

pytestmark = pytest.mark.usefixtures("core_only")

SMALL, ROWS = 6, 40


def _world(tmp_path: Path) -> dict[str, Any]:
    """Six one-row-group inputs and one of three row groups (m6), each with one row
    on the list."""
    d = tmp_path / "manifest"
    d.mkdir()
    listed = []
    for i in range(SMALL + 1):
        md5 = hexes(rand_bytes(ROWS, 16, seed=i))
        listed.append(md5[i + 3])
        write_manifest(d / f"m{i}.parquet", {"key": [f"k{i}-{r}" for r in range(ROWS)], "md5": md5},
                       row_group_size=ROWS // 3 + 1 if i == SMALL else None)
    assert pq.ParquetFile(d / f"m{SMALL}.parquet").metadata.num_row_groups == 3
    lst = write_text_list(tmp_path / "list.txt", listed)
    return {"dir": d, "list": lst}


def _config(world: dict[str, Any], out: Path, write_clean: bool = False) -> ScanConfig:
    return ScanConfig(manifests=[str(world["dir"])], lists=[ListSpec(path=str(world["list"]), signal="md5")],
                      out=str(out), threads=2, write_clean=write_clean)


class _Held:
    """The digest thread held in its first input's digest until the scan starts, so
    that the tasks find the rest not begun; records what each side read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = threading.Event()
        self.digested: list[str] = []
        self.whole: list[str] = []
        real_digest, real_whole = manifest.digest_file, manifest.read_local_whole
        real_hand_over = manifest.InputDigests.hand_over

        def digest_file(f: manifest.InputFile, algorithm: str, **kw: Any) -> tuple[str, int]:
            self.started.wait(10)
            self.digested.append(Path(f.fs_path).name)
            return real_digest(f, algorithm, **kw)

        def read_local_whole(f: manifest.InputFile, footer: manifest.Footer) -> Any:
            self.whole.append(Path(f.fs_path).name)
            return real_whole(f, footer)

        def hand_over(digests: manifest.InputDigests, inputs: Any) -> None:
            real_hand_over(digests, inputs)
            self.on_hand_over()
            self.started.set()

        monkeypatch.setattr(manifest, "digest_file", digest_file)
        monkeypatch.setattr(manifest.InputDigests, "hand_over", hand_over)
        import datahygiene.scan as scan

        monkeypatch.setattr(scan, "read_local_whole", read_local_whole)

    def on_hand_over(self) -> None:
        pass


def test_inputs_left_to_their_tasks_are_read_once_and_digested_from_those_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = _world(tmp_path)
    held = _Held(monkeypatch)
    res = run_scan(_config(world, tmp_path / "out"))
    # m0 was the digest thread's when the scan started; m6 has three tasks
    assert sorted(held.whole) == [f"m{i}.parquet" for i in range(1, SMALL)]
    assert held.digested == ["m0.parquet", f"m{SMALL}.parquet"]
    run = json.loads((res.out / "run.json").read_text())
    for entry in run["inputs"]:
        data = (world["dir"] / Path(entry["path"]).name).read_bytes()
        assert entry["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert res.summary["rows"]["excluded"] == SMALL + 1
    assert sorted(res.exclusions.column("key").to_pylist()) == sorted(
        f"k{i}-{i + 3}" for i in range(SMALL + 1))


@pytest.mark.parametrize("write_clean", [False, True], ids=["pages", "clean"])
def test_the_same_outputs_whoever_digests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          write_clean: bool) -> None:
    world = _world(tmp_path)
    plain = run_scan(_config(world, tmp_path / "plain", write_clean))
    held = _Held(monkeypatch)
    handed = run_scan(_config(world, tmp_path / "handed", write_clean))
    assert len(held.whole) == SMALL - 1
    assert ((plain.out / "restricted" / "exclusions.parquet").read_bytes()
            == (handed.out / "restricted" / "exclusions.parquet").read_bytes())
    assert ([e["digest"] for e in json.loads((plain.out / "run.json").read_text())["inputs"]]
            == [e["digest"] for e in json.loads((handed.out / "run.json").read_text())["inputs"]])
    if write_clean:
        names = sorted(p.name for p in (plain.out / "clean").iterdir())
        assert len(names) == SMALL + 1
        for name in names:
            assert pq.read_table(plain.out / "clean" / name).equals(
                pq.read_table(handed.out / "clean" / name))
            assert pq.read_table(handed.out / "clean" / name).num_rows == ROWS - 1


@pytest.mark.parametrize("change", ["touched", "rewritten", "truncated"])
def test_an_input_changed_before_its_task_reads_it_whole_stops_the_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    world = _world(tmp_path)
    held = _Held(monkeypatch)
    victim = world["dir"] / "m3.parquet"

    def written() -> None:
        if change == "touched":
            st = os.stat(victim)
            os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
        elif change == "rewritten":
            write_manifest(victim, {"key": ["z"] * 7, "md5": hexes(rand_bytes(7, 16, seed=99))})
        else:
            os.truncate(victim, 100)

    held.on_hand_over = written  # type: ignore[method-assign]
    with pytest.raises(InputError, match=r"m3\.parquet: changed while the scan read it"):
        run_scan(_config(world, tmp_path / "out"))
    assert "m3.parquet" in held.whole
    assert not (tmp_path / "out" / "run.json").exists()


def test_read_local_whole_checks_the_bytes_against_the_footer(tmp_path: Path) -> None:
    p = write_manifest(tmp_path / "a.parquet", {"key": ["a", "b"], "md5": hexes(rand_bytes(2, 16))})
    f = manifest.InputFile(str(p), manifest.LocalFileSystem(), str(p))
    footer = manifest.read_footer(f)
    assert manifest.read_local_whole(f, footer).tobytes() == p.read_bytes()
    # the same size and modification time, another footer: not the file first read
    data = bytearray(p.read_bytes())
    data[-9] ^= 0xFF  # a byte of the footer's Thrift, just before its length
    st = os.stat(p)
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(InputError, match=r"a\.parquet: changed while the scan read it \(its size or footer"):
        manifest.read_local_whole(f, footer)
    p.unlink()
    with pytest.raises(InputError, match=r"a\.parquet"):
        manifest.read_local_whole(f, footer)
