"""The ``photodna`` matching service: Microsoft PhotoDNA Cloud Service, Match API.

One image per request: ``POST {base_url}/Match?enhance=false`` with the image bytes
as the body (``Content-Type: image/jpeg``...) and the subscription key in the
``Ocp-Apim-Subscription-Key`` header. The JSON answer carries ``Status.Code``,
``IsMatch`` and ``MatchDetails.MatchFlags`` (each with a ``Source`` and an
``AdvancedInfo`` ``MatchId``).

Fail closed, always: any answer short of status 3000 makes the row ``unverified``
with a reason; so does a request that still fails after the retries. Rejected
credentials (HTTP 401/403) stop the scan instead, because every row would fail the
same way and the run would be useless.

Images the service documents it will refuse (under 160x160 pixels, over 4 MB, not
GIF/JPEG/PNG/BMP/TIFF) are ``unverified`` without being sent anywhere.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from datahygiene.errors import ConfigError, ServiceError
from datahygiene.services.base import MatchService, ServiceResult
from datahygiene_photodna.cache import ResultCache, default_cache_dir
from datahygiene_photodna.imageinfo import MIME, NotAnImage, sniff

DEFAULT_BASE_URL = "https://api.microsoftmoderator.com/photodna/v1.0"
DEFAULT_KEY_ENV = "PHOTODNA_SUBSCRIPTION_KEY"
MIN_SIDE = 160
MAX_BYTES = 4 * 1024 * 1024

# Documented Match status codes and the reason a row gets for each. Definite answers
# about the image itself are cached; the others are asked again next run.
STATUS_REASONS: dict[int, tuple[str, bool]] = {
    3002: ("invalid-request", False),          # invalid or missing request parameter(s)
    3004: ("service-error", False),            # unknown scenario or unhandled error
    3206: ("not-verified-as-image", True),     # the file could not be verified as an image
    3208: ("image-size-out-of-range", True),   # min 160x160 pixels, max 4 MB
}
OPTIONS = {"base_url", "key_env", "rate", "concurrency", "timeout_s", "max_retries", "backoff_s",
           "max_backoff_s", "enhance", "cache", "cache_ttl_days", "max_bytes", "min_side"}


# retry reasons that mean no HTTP answer came back at all
_NO_ANSWER = ("connection-failed", "timeout")


@dataclass
class _Attempt:
    result: ServiceResult | None = None
    retry_reason: str | None = None
    retry_after: float | None = None


class RateLimiter:
    """At most ``rate`` request starts per second across all threads (even spacing)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class PhotoDNAService(MatchService):
    name: ClassVar[str] = "photodna"
    signal: ClassVar[str] = "photodna"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        opts = dict(options or {})
        unknown = sorted(set(opts) - OPTIONS)
        if unknown:
            raise ConfigError(f"photodna: unknown option(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(OPTIONS))}")
        _check_option_types(opts)
        self.base_url = str(opts.get("base_url", DEFAULT_BASE_URL)).rstrip("/")
        if not self.base_url.startswith(("https://", "http://")):
            raise ConfigError("photodna: base_url must be an http(s) URL")
        self.key_env = str(opts.get("key_env", DEFAULT_KEY_ENV))
        self.rate = float(opts.get("rate", 5.0))
        self.concurrency = int(opts.get("concurrency", 4))
        self.timeout_s = float(opts.get("timeout_s", 30.0))
        self.max_retries = int(opts.get("max_retries", 5))
        self.backoff_s = float(opts.get("backoff_s", 1.0))
        self.max_backoff_s = float(opts.get("max_backoff_s", 30.0))
        self.enhance = bool(opts.get("enhance", False))
        cache = opts.get("cache", str(default_cache_dir()))
        self.cache_dir = Path(str(cache)) if cache else None
        self.cache_ttl_days = float(opts.get("cache_ttl_days", 30))
        self.max_bytes = int(opts.get("max_bytes", MAX_BYTES))
        self.min_side = int(opts.get("min_side", MIN_SIDE))
        if self.rate <= 0 or self.concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ConfigError("photodna: rate and timeout_s must be > 0, concurrency >= 1, "
                              "max_retries >= 0")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.key_env):
            # never echo it: a key pasted here by mistake would land in the log
            raise ConfigError("photodna: key_env must name an environment variable (letters, digits, "
                              "_), not hold the key")
        self._key: str | None = None
        self._limiter: RateLimiter | None = None
        self._slots: threading.BoundedSemaphore | None = None  # in flight, across every batch
        self._stats_lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0, "not_sent": 0, "unverified": 0}
        self._answered = False  # any HTTP answer yet: the service can be reached at all

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_key"] = None  # read again from the environment where it is used
        state["_limiter"] = None
        state["_slots"] = None
        state["_stats_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PhotoDNAService({self.base_url!r})"

    def setup(self) -> None:
        if self._key is None:
            key = os.environ.get(self.key_env, "")
            if not key.strip():
                raise ConfigError(f"photodna: environment variable {self.key_env} is not set "
                                  "(the subscription key comes from the environment only)")
            key = key.strip()
            if any(c in key for c in "\r\n\0") or not key.isascii():
                raise ConfigError(f"photodna: the key in ${self.key_env} holds a line break or a "
                                  "character an HTTP header cannot carry; give one key")
            self._key = key
        if self._limiter is None:
            self._limiter = RateLimiter(self.rate)
        if self._slots is None:
            self._slots = threading.BoundedSemaphore(self.concurrency)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "base_url": self.base_url, "endpoint": "Match",
                "enhance": self.enhance, "rate_per_s": self.rate, "concurrency": self.concurrency,
                "max_retries": self.max_retries, "cache": self.cache_dir is not None,
                "stats": dict(self.stats)}

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def add_stats(self, delta: Mapping[str, int]) -> None:
        with self._stats_lock:
            for k, v in delta.items():
                self.stats[k] = self.stats.get(k, 0) + int(v)

    # -- matching ------------------------------------------------------------------------
    def match(self, items: Sequence[bytes]) -> list[ServiceResult]:
        self.setup()
        results: list[ServiceResult | None] = [None] * len(items)
        to_send: dict[bytes, tuple[bytes, str]] = {}  # digest -> (image, mime); one request each
        rows_for: dict[bytes, list[int]] = {}
        cache = (ResultCache(self.cache_dir, f"{self.base_url}|enhance={self.enhance}",
                             self.cache_ttl_days) if self.cache_dir else None)
        try:
            for i, data in enumerate(items):
                reason = self._precheck(data)
                if isinstance(reason, str):
                    results[i] = ServiceResult("unverified", reason=reason)
                    self._count("not_sent")
                    continue
                digest = hashlib.sha256(data).digest()
                if digest in rows_for:
                    rows_for[digest].append(i)
                    continue
                cached = cache.get(digest) if cache else None
                if cached is not None:
                    results[i] = cached
                    self._count("cache_hits")
                    rows_for[digest] = [i]
                    continue
                rows_for[digest] = [i]
                to_send[digest] = (data, reason[0])
            if to_send:
                with ThreadPoolExecutor(min(self.concurrency, len(to_send))) as pool:
                    futures = {d: pool.submit(self._match_one, img, mime)
                               for d, (img, mime) in to_send.items()}
                    answers = {d: f.result() for d, f in futures.items()}
                for d, (res, cacheable) in answers.items():
                    results[rows_for[d][0]] = res
                    if cache is not None and cacheable:
                        cache.put(d, res)
            for rows in rows_for.values():
                for i in rows[1:]:
                    results[i] = results[rows[0]]
        finally:
            if cache is not None:
                cache.close()
        out = [r if r is not None else ServiceResult("unverified", reason="internal-error") for r in results]
        self._count("unverified", sum(r.status == "unverified" for r in out))
        return out

    def _precheck(self, data: bytes) -> str | tuple[str]:
        """A reason not to send the image, or (its MIME type,)."""
        if len(data) > self.max_bytes:
            return "image-too-large"
        try:
            fmt, w, h = sniff(data)
        except NotAnImage as exc:
            return str(exc)
        if w < self.min_side or h < self.min_side:
            return "image-too-small"
        return (MIME[fmt],)

    def _match_one(self, image: bytes, mime: str) -> tuple[ServiceResult, bool]:
        """(result, cacheable) for one image, retrying transient failures."""
        assert self._limiter is not None and self._slots is not None
        last = "service-unavailable"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
            with self._slots:  # engine threads run batches at once: the limit holds across them
                self._limiter.wait()
                a = self._post(image, mime)
            if a.result is not None:
                return a.result, (a.retry_reason == "cacheable")
            last = a.retry_reason or last
            if last in _NO_ANSWER and attempt == self.max_retries and not self._answered:
                # Not one request of this run was answered: a wrong base_url, a closed
                # port, no route. Every row would be unverified and the run would look
                # like a scan with some failed requests; stop instead, naming the host.
                where = urllib.parse.urlsplit(self.base_url)
                host = f"{where.hostname}:{where.port}" if where.port else str(where.hostname)
                raise ServiceError(f"photodna: the service at {host} could not be reached ({last}, "
                                   f"{self.max_retries + 1} attempts, no request answered); check "
                                   "base_url and the network")
            if attempt < self.max_retries:
                delay = random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** attempt))
                if a.retry_after is not None:
                    delay = max(delay, min(a.retry_after, self.max_backoff_s))
                time.sleep(delay)
        return ServiceResult("unverified", reason=last, details={"attempts": self.max_retries + 1}), False

    def _post(self, image: bytes, mime: str) -> _Attempt:
        url = f"{self.base_url}/Match?enhance={'true' if self.enhance else 'false'}"
        req = urllib.request.Request(url, data=image, method="POST", headers={
            "Content-Type": mime, "Ocp-Apim-Subscription-Key": self._key or ""})
        self._count("requests")
        try:
            with _OPENER.open(req, timeout=self.timeout_s) as resp:
                self._answered = True
                body = _read_by(resp, time.monotonic() + self.timeout_s)
        except urllib.error.HTTPError as exc:
            self._answered = True
            code = exc.code
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            exc.close()
            if code in (401, 403):
                raise ServiceError(f"photodna: HTTP {code}: the subscription key in ${self.key_env} "
                                   "was refused") from None
            if code == 429:
                return _Attempt(retry_reason="rate-limited", retry_after=_seconds(retry_after))
            if code >= 500:
                return _Attempt(retry_reason="service-unavailable")
            return _Attempt(ServiceResult("unverified", reason=f"http-{code}"))
        except TimeoutError:
            return _Attempt(retry_reason="timeout")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return _Attempt(retry_reason="timeout" if isinstance(reason, TimeoutError)
                            else "connection-failed")
        except http.client.HTTPException:  # a connection cut mid-response
            return _Attempt(retry_reason="connection-failed")
        return self._parse(body)

    @staticmethod
    def _parse(body: bytes) -> _Attempt:
        try:
            doc = json.loads(body)
            code = int(doc["Status"]["Code"])
        except (ValueError, KeyError, TypeError):
            return _Attempt(retry_reason="bad-response")
        if code == 3000:
            verdict = doc.get("IsMatch")
            if not isinstance(verdict, bool):  # no verdict is not "no match"
                return _Attempt(retry_reason="bad-response")
            if not verdict:
                return _Attempt(ServiceResult("no-match"), retry_reason="cacheable")
            refs: list[str] = []
            lists: list[str] = []
            try:
                flags = (doc.get("MatchDetails") or {}).get("MatchFlags") or []
                for flag in flags:
                    info = {i.get("Key"): i.get("Value") for i in flag.get("AdvancedInfo") or []}
                    refs.append(str(info.get("MatchId", "")))
                    lists.append(f"photodna/{flag.get('Source') or 'unknown'}")
            except (AttributeError, TypeError):  # a match, details of another shape
                refs, lists = [], []
            if not refs:
                refs, lists = [""], ["photodna/unknown"]
            return _Attempt(ServiceResult("match", tuple(refs), details={"lists": tuple(lists)}),
                            retry_reason="cacheable")
        reason, cacheable = STATUS_REASONS.get(code, (f"status-{code}", False))
        return _Attempt(ServiceResult("unverified", reason=reason),
                        retry_reason="cacheable" if cacheable else None)


def _seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110 allows both)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would resend the request as a GET without the
    image, with the subscription key, to wherever the Location points, and take that
    answer as the image's verdict. The 3xx comes back as an HTTPError: unverified."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _read_by(resp: Any, deadline: float) -> bytes:
    """The response body, within the request's deadline: the socket timeout bounds
    each read, so a server sending a few bytes a second held a request for ever."""
    parts: list[bytes] = []
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer took longer than timeout_s")
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "base_url": (str,), "key_env": (str,), "rate": (int, float), "concurrency": (int,),
    "timeout_s": (int, float), "max_retries": (int,), "backoff_s": (int, float),
    "max_backoff_s": (int, float), "enhance": (bool,), "cache": (str, bool),
    "cache_ttl_days": (int, float), "max_bytes": (int,), "min_side": (int,)}


def _check_option_types(opts: Mapping[str, Any]) -> None:
    """A value of the wrong type is an error naming the option: ``enhance = "false"`` was
    read as true, and ``rate = "fast"`` was a traceback."""
    for key, value in opts.items():
        kinds = _OPTION_TYPES.get(key)
        if kinds is None:
            continue
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"[scan.options.photodna]: {key} must be a {names}")
