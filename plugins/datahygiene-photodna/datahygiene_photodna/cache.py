"""Results cached by content digest, so a rerun does not send the same image again.

The cache key is SHA-256 over (service URL, enhance flag, image SHA-256): an answer
from a test environment is never reused against production. Only definite answers
are cached -- a match, a no-match, or a refusal that depends on the image alone
(3206 not an image, 3208 size out of range) -- each with the time it was given; they
expire after ``ttl_days`` because the service's hash sets grow. Failures are never
cached: a row unverified today is asked again next time.

The cache says which images matched, so it is treated like restricted output: an
owner-only directory (0700) and file (0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from datahygiene.errors import ConfigError
from datahygiene.services.base import ServiceResult


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "datahygiene" / "photodna"


class ResultCache:
    def __init__(self, directory: Path, namespace: str, ttl_days: float) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        path = directory / "results.sqlite"
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self._db.execute("CREATE TABLE IF NOT EXISTS results (key BLOB PRIMARY KEY, result TEXT, "
                             "at REAL)")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{path}: not a usable PhotoDNA result cache ({type(exc).__name__}); "
                              "delete it (it is only a cache), or set cache = \"\" to run without "
                              "one") from None
        self._ns = namespace.encode()
        self._ttl = ttl_days * 86400
        self._lock = threading.Lock()

    def key(self, digest: bytes) -> bytes:
        return hashlib.sha256(self._ns + b"\0" + digest).digest()

    def get(self, digest: bytes) -> ServiceResult | None:
        with self._lock:
            row = self._db.execute("SELECT result, at FROM results WHERE key = ?",
                                   (self.key(digest),)).fetchone()
        if row is None or time.time() - row[1] > self._ttl:
            return None
        d = json.loads(row[0])
        return ServiceResult(d["status"], tuple(d["refs"]), d.get("reason"),
                             {"lists": tuple(d.get("lists", ())), "cached": True})

    def put(self, digest: bytes, result: ServiceResult) -> None:
        d = {"status": result.status, "refs": list(result.refs), "reason": result.reason,
             "lists": list(result.details.get("lists", ()))}
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                             (self.key(digest), json.dumps(d, sort_keys=True), time.time()))
            self._db.commit()

    def close(self) -> None:
        self._db.close()
