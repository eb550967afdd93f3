"""PhotoDNA Match on the Ray engine: a real local Ray runtime whose workers call the
loopback server. The rows decided must be exactly the local engine's, the key must
reach the workers from their environment only, and run.json must count the requests
the workers sent (they, not the driver, talk to the service). Skipped without the
``ray`` extra; slow (``make test-ray`` runs it)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from photodna_server import PhotoDNAServer, digest, png

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

from datahygiene.config import ScanConfig  # noqa: E402
from datahygiene.scan import run_scan  # noqa: E402

pytestmark = pytest.mark.slow
KEY = "pdna-Planted-Ray-Key-0c1d"
KEY_ENV = "PDNA_RAY_TEST_KEY"


@pytest.fixture(scope="module", autouse=True)
def ray_runtime() -> Iterator[None]:
    # Ray's workers inherit the environment the runtime starts with: the key (and the
    # plugin allowlist) must be there before ray.init, as on a real cluster
    saved = {k: os.environ.get(k) for k in (KEY_ENV, "DATAHYGIENE_PLUGINS")}
    os.environ[KEY_ENV] = KEY
    os.environ["DATAHYGIENE_PLUGINS"] = "datahygiene-photodna"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def manifest(path: Path, server: PhotoDNAServer) -> None:
    """24 rows in 3 files (so several tasks): matches, a retried 503, a refused image,
    a null; the rest answer no match."""
    images: list[bytes | None] = [png(160 + i, 170, seed=100 + i) for i in range(24)]
    s = server.script
    s[digest(images[1])] = ["match:Test:501"]  # type: ignore[arg-type]
    s[digest(images[9])] = ["http:503", "match:NCMEC:77"]  # type: ignore[arg-type]
    s[digest(images[14])] = ["status:3206"]  # type: ignore[arg-type]
    s[digest(images[22])] = ["match:Test:502"]  # type: ignore[arg-type]
    images[5] = None
    path.mkdir(parents=True)
    for f in range(3):
        rows = range(8 * f, 8 * f + 8)
        pq.write_table(pa.table({"key": [f"r{i:02d}" for i in rows],
                                 "jpg": pa.array([images[i] for i in rows], pa.binary())}),
                       path / f"part-{f}.parquet", row_group_size=4)


def config(tmp: Path, server: PhotoDNAServer, out: str, **kw: Any) -> ScanConfig:
    return ScanConfig(manifests=[str(tmp / "m")], out=str(tmp / out), services=["photodna"],
                      image_column="jpg", batch_size=3,
                      options={"photodna": {"base_url": server.base_url, "key_env": KEY_ENV,
                                            "rate": 1000, "concurrency": 2, "timeout_s": 2.0,
                                            "max_retries": 2, "backoff_s": 0.01,
                                            "max_backoff_s": 0.05, "cache": ""}},
                      **kw)


def decided(out: Path) -> dict[str, Any]:
    rows = pq.read_table(out / "restricted" / "exclusions.parquet").to_pylist()
    return {r["key"]: (r["decision"], sorted((m["list"], m["entry_ref"]) for m in r["matches"]),
                       r["reasons"]) for r in rows}


def test_photodna_on_ray_decides_what_the_local_engine_decides(tmp_path: Path) -> None:
    with PhotoDNAServer(KEY) as server:
        manifest(tmp_path / "m", server)
        run_scan(config(tmp_path, server, "local"))
        local_requests = len(server.requests)
        server.requests.clear()
        server.used.clear()
        run_scan(config(tmp_path, server, "ray", engine="ray"))
        ray_requests = len(server.requests)

    local, on_ray = decided(tmp_path / "local"), decided(tmp_path / "ray")
    assert on_ray == local
    assert {k for k, v in on_ray.items() if v[0] == "excluded"} == {"r01", "r09", "r22"}
    assert {k for k, v in on_ray.items() if v[0] == "unverified"} == {"r05", "r14"}
    assert (tmp_path / "local" / "restricted" / "exclusions.parquet").read_bytes() == \
        (tmp_path / "ray" / "restricted" / "exclusions.parquet").read_bytes()
    # 23 images sent once each, one of them twice (the 503): on both engines
    assert local_requests == ray_requests == 24

    # run.json counts what the service did, wherever it ran
    def stats(out: str) -> dict[str, int]:
        run = json.loads((tmp_path / out / "run.json").read_text())
        (sig,) = run["signals"]
        return dict(sig["service"]["stats"])

    assert stats("ray") == stats("local")
    assert stats("ray")["requests"] == 24
    for out in ("local", "ray"):  # the key never reaches an output
        for p in (tmp_path / out).rglob("*"):
            if p.is_file():
                assert KEY.encode() not in p.read_bytes(), p


def test_a_refused_key_on_ray_stops_the_run_as_on_the_local_engine(tmp_path: Path) -> None:
    """The workers' key refused by the service (HTTP 401): the run stops with the
    service error the local engine gives (exit 8 from the command), its one line
    naming the key's variable and never the key, and nothing is committed."""
    from datahygiene.errors import ServiceError

    with PhotoDNAServer("not-the-workers-key") as server:
        manifest(tmp_path / "m", server)
        messages = []
        for engine in ("local", "ray"):
            with pytest.raises(ServiceError) as err:
                run_scan(config(tmp_path, server, engine, engine=engine))
            messages.append(str(err.value))
            assert not (tmp_path / engine / "run.json").exists()
    assert messages[0] == messages[1] == \
        f"photodna: HTTP 401: the subscription key in ${KEY_ENV} was refused"
    assert ServiceError.exit_code == 8
    assert all(KEY not in m for m in messages)
