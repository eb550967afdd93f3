"""PDQ image hashing on the Ray engine: a real local Ray runtime whose actors read the
images (a bytes column, a path column, webdataset shards) and hash them in their own
process pools. The rows decided must be exactly the local engine's, byte for byte.
Skipped without the ``ray`` extra; slow (``make test-ray`` runs it)."""

from __future__ import annotations

import io
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_pdq_scan import BROKEN, N, expect_planted, images, run, write_list

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_runtime() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PDQ scan tests' images and list, as several files (several Ray tasks), a
    path column, and two webdataset shards."""
    d = tmp_path_factory.mktemp("pdq-ray")
    imgs = images()
    paths = []
    for i, img in enumerate(imgs):
        p = d / "img" / f"{i}.jpg"
        p.parent.mkdir(exist_ok=True)
        if img is not None:
            p.write_bytes(img)
        paths.append(str(p))  # row 14 (null image) names a file that does not exist
    (d / "manifest").mkdir()
    for f, rows in enumerate((range(0, 12), range(12, 22), range(22, N))):
        pq.write_table(pa.table({
            "key": [f"{i:09d}" for i in rows],
            "jpg": pa.array([imgs[i] for i in rows], pa.binary()),
            "path": [paths[i] for i in rows],
        }), d / "manifest" / f"part-{f:05d}.parquet", row_group_size=5)
    (d / "shards").mkdir()
    for s in range(2):
        rows = range(s * 15, s * 15 + 15)
        with tarfile.open(d / "shards" / f"{s:05d}.tar", "w") as tar:
            for i in rows:
                img = imgs[i]
                if img is None:
                    continue
                info = tarfile.TarInfo(f"{i:09d}.jpg")
                info.size = len(img)
                tar.addfile(info, io.BytesIO(img))
        pq.write_table(pa.table({"key": [f"{i:09d}" for i in rows], "status": ["success"] * 15}),
                       d / "shards" / f"{s:05d}.parquet")
    write_list(d / "pdq-list.txt", imgs)
    return d


def exclusions(out: Path) -> dict[int, tuple[str, list[int], list[str]]]:
    """Decisions by row number across files (the key; ``row_index`` is per file)."""
    t = pq.read_table(out / "restricted" / "exclusions.parquet").to_pylist()
    return {int(r["key"]): (r["decision"], [m["distance"] for m in r["matches"]], r["reasons"])
            for r in t}


def both_engines(tmp_path: Path, *args: object, workers: int = 1) -> tuple[Path, Path]:
    """Scan locally (hashing in this process) and on Ray (``workers`` hashing
    processes in each actor); the exclusions must be byte-identical."""
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    run("scan", *args, "--out", local, "--hash-workers", "1", "-q")
    run("scan", *args, "--out", on_ray, "--engine", "ray", "--hash-workers", str(workers), "-q")
    a = (local / "restricted" / "exclusions.parquet").read_bytes()
    assert a == (on_ray / "restricted" / "exclusions.parquet").read_bytes()
    return local, on_ray


def test_bytes_column_on_ray_as_locally(data: Path, tmp_path: Path) -> None:
    local, on_ray = both_engines(tmp_path, "--manifest", data / "manifest", "--list",
                                 f"pdq={data / 'pdq-list.txt'}", "--image-column", "jpg",
                                 "--write-clean", workers=2)
    expect_planted(exclusions(on_ray), BROKEN)
    for f in sorted((local / "clean").glob("*.parquet")):
        assert f.read_bytes() == (on_ray / "clean" / f.name).read_bytes()


def test_path_column_on_ray_as_locally(data: Path, tmp_path: Path) -> None:
    _, on_ray = both_engines(tmp_path, "--manifest", data / "manifest", "--list",
                             f"pdq={data / 'pdq-list.txt'}", "--image-path-column", "path")
    expect_planted(exclusions(on_ray), {**BROKEN, 14: "not-found"})


def test_webdataset_on_ray_as_locally(data: Path, tmp_path: Path) -> None:
    _, on_ray = both_engines(tmp_path, "--webdataset", data / "shards" / "*.tar", "--list",
                             f"pdq={data / 'pdq-list.txt'}")
    expect_planted(exclusions(on_ray), {**BROKEN, 14: "not-in-shard"})
