"""Nothing leaks: run real `datahygiene` processes (a sync, a failing sync, listing,
inspection and a scan) with planted credentials and list values, and grep every byte
they print and every public file they write."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from ncmec_server import Fault, NCMECServer, synthetic_records

USER, PASSWORD = "planted-user-Qx81", "planted-PASSWORD-9hZ!k2"
STORE_KEY = base64.b64encode(hashlib.sha256(b"planted store key").digest()).decode()
EXE = str(Path(sys.executable).parent / "datahygiene")


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    p = subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_sync_and_scan_leak_no_secret_or_value(tmp_path: Path) -> None:
    env = {**os.environ, "DATAHYGIENE_STORE": str(tmp_path / "store"), "DH_KEY": STORE_KEY,
           "NCMEC_U": USER, "NCMEC_P": PASSWORD, "DATAHYGIENE_PLUGINS": "datahygiene-ncmec"}
    with NCMECServer(USER, PASSWORD, page_size=6) as server:
        server.records = synthetic_records(30, "2026-02-01T00:00:00Z", "2026-02-02T20:00:00Z", seed=9)
        conf = tmp_path / "ncmec.toml"
        conf.write_text(f'base_url = "{server.base_url}"\nusername = {{ env = "NCMEC_U" }}\n'
                        'password = { env = "NCMEC_P" }\nstart = "2026-02-01T00:00:00Z"\n'
                        'until = "2026-02-03T00:00:00Z"\nwindow_hours = 12\nbackoff_s = 0.01\n'
                        'max_retries = 1\n')
        outputs = []
        code, out = run(["lists", "sync", "n", "--source", "ncmec", "--config", str(conf),
                         "--key-env", "DH_KEY"], env)
        assert code == 0, out
        outputs.append(out)
        # a failing sync (server errors) and a refused one (wrong password) print errors
        server.faults = [Fault(lambda p, q: True, "503", times=1000)]
        conf2 = tmp_path / "ncmec2.toml"
        conf2.write_text(conf.read_text().replace("2026-02-03T00", "2026-02-04T00"))
        code, out = run(["lists", "sync", "n", "--config", str(conf2), "--source", "ncmec"], env)
        assert code == 8 and "HTTP 503" in out
        outputs.append(out)
        server.faults = []
        code, out = run(["lists", "sync", "n"], {**env, "NCMEC_P": "wrong-" + PASSWORD[::-1]})
        assert code == 8 and "HTTP 401" in out
        outputs.append(out)
        for args in (["lists", "stored"], ["lists", "stored", "--json"],
                     ["lists", "inspect", "store:n"], ["lists", "inspect", "store:n", "--json"]):
            code, out = run(args, env)
            assert code == 0, out
            outputs.append(out)
        recs = sorted(server.state().values(), key=lambda r: r.id)
        planted = [recs[1].fingerprints["md5"], recs[4].fingerprints["md5"]]
        (tmp_path / "m").mkdir()
        pq.write_table(pa.table({"key": ["k0", "k1", "k2"], "md5": [planted[0], "11" * 16, planted[1]]}),
                       tmp_path / "m" / "p.parquet")
        code, out = run(["scan", "--manifest", str(tmp_path / "m"), "--list", "md5=store:n",
                         "--out", str(tmp_path / "run"), "-q"], env)
        assert code == 0 and "2 excluded" in out, out
        outputs.append(out)
        code, out = run(["scan", "--manifest", str(tmp_path / "m"), "--list", "md5=store:n",
                         "--out", str(tmp_path / "run-bad"), "-q"],
                        {**env, "DH_KEY": base64.b64encode(b"\1" * 32).decode()})
        assert code == 4 and "wrong store key" in out
        outputs.append(out)

    secrets = [USER, PASSWORD, STORE_KEY, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
    values = [v for r in server.records for v in r.fingerprints.values()]
    texts = "\n".join(outputs)
    public = b"".join(p.read_bytes() for p in (tmp_path / "run").rglob("*")
                      if p.is_file() and "restricted" not in p.parts)
    store_plain = b"".join((tmp_path / "store" / f).read_bytes() for f in ("store.toml",)) + b"".join(
        p.read_bytes() for p in (tmp_path / "store").rglob("index.json"))
    store_all = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert len(values) > 60
    for s in secrets:
        assert s not in texts
        assert s.encode() not in public and s.encode() not in store_all
    for v in values:
        for form in {v, v.lower(), v.upper()}:
            assert form not in texts, "a list value was printed"
            assert form.encode() not in public and form.encode() not in store_plain
            assert form.encode() not in store_all, "a list value is stored in clear"
        try:
            raw = bytes.fromhex(v)
        except ValueError:
            continue
        assert raw not in store_all
    # the restricted exclusions may name the rows (k0, k2) but stay owner-only
    restricted = tmp_path / "run" / "restricted"
    assert (restricted.stat().st_mode & 0o777) == 0o700
