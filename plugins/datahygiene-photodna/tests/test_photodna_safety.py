"""Nothing leaks: a real `datahygiene scan` process with a planted subscription key
and matching images; every printed byte and every public output is searched for the
key, the images and their digests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from photodna_server import PhotoDNAServer, digest, png

KEY = "planted-pdna-KEY-5a1b2c3d4e"
EXE = str(Path(sys.executable).parent / "datahygiene")


def test_scan_leaks_no_key_image_or_digest(tmp_path: Path) -> None:
    imgs = [png(170, 170 + i, seed=50 + i) for i in range(5)]
    urls = [f"https://example.invalid/planted-{i}.png" for i in range(5)]
    (tmp_path / "m").mkdir()
    pq.write_table(pa.table({"key": [f"planted-key-{i}" for i in range(5)], "url": urls,
                             "image": pa.array(imgs, pa.binary())}), tmp_path / "m" / "p.parquet")
    env = {**os.environ, "PHOTODNA_SUBSCRIPTION_KEY": KEY, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "DATAHYGIENE_PLUGINS": "datahygiene-photodna"}
    outputs = []
    with PhotoDNAServer(KEY) as server:
        server.script[digest(imgs[1])] = ["match:Test:555001"]
        server.script[digest(imgs[3])] = ["match:NCMEC:555002"]
        server.script[digest(imgs[4])] = ["http:503"]
        conf = tmp_path / "scan.toml"
        conf.write_text(f'[scan.options.photodna]\nbase_url = "{server.base_url}"\nbackoff_s = 0.01\n'
                        "max_retries = 1\nrate = 100\n")
        for out_dir in ("run", "run-again"):
            p = subprocess.run([EXE, "scan", "--config", str(conf), "--manifest", str(tmp_path / "m"),
                                "--service", "photodna", "--out", str(tmp_path / out_dir), "-q"],
                               env=env, capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stdout + p.stderr
            assert "2 excluded, 1 unverified" in p.stdout
            outputs.append(p.stdout + p.stderr)
        p = subprocess.run([EXE, "scan", "--config", str(conf), "--manifest", str(tmp_path / "m"),
                            "--service", "photodna", "--out", str(tmp_path / "run-401"), "-q"],
                           env={**env, "PHOTODNA_SUBSCRIPTION_KEY": "wrong-" + KEY,
                                "XDG_CACHE_HOME": str(tmp_path / "cache2")},
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 8 and "HTTP 401" in p.stdout + p.stderr
        outputs.append(p.stdout + p.stderr)
    texts = "\n".join(outputs)
    public = b""
    for run in ("run", "run-again"):
        public += b"".join(f.read_bytes() for f in (tmp_path / run).rglob("*")
                           if f.is_file() and "restricted" not in f.parts)
    needles = [KEY.encode(), *(u.encode() for u in urls)]
    for img in imgs:
        needles += [img[20:80], hashlib.sha256(img).hexdigest().encode(),
                    hashlib.md5(img).hexdigest().encode(), hashlib.sha256(img).digest()]
    for n in needles:
        assert n.decode(errors="replace") not in texts
        assert n not in public
    assert KEY not in texts and ("wrong-" + KEY) not in texts
    cache = tmp_path / "cache" / "datahygiene" / "photodna"
    assert (cache.stat().st_mode & 0o777) == 0o700
    assert ((cache / "results.sqlite").stat().st_mode & 0o777) == 0o600
    assert KEY.encode() not in (cache / "results.sqlite").read_bytes()
