"""A small HTTP client for the NCMEC hash-sharing API (stdlib only).

Why stdlib: the plugin runs where partner credentials live, and every dependency is
one more thing an institution has to vet. urllib does all that is needed: GET with
HTTP Basic auth, a timeout, and retries we control.

Retries: a timeout, a dropped connection, HTTP 429 or any 5xx is retried on the same
URL with exponential backoff and full jitter, up to ``max_retries`` times. HTTP 401 or
403 stops at once (wrong or revoked credentials will not get better by retrying).
Messages name the endpoint and the status, never a credential or an entry.
"""

from __future__ import annotations

import base64
import http.client
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from datahygiene.errors import ServiceError

API_VERSION = "v2"
PAGE_SIZE = 1000


class StaleLink(Exception):
    """A paging link the server no longer honours (the window is restarted)."""


@dataclass
class RetryPolicy:
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.max_backoff_s, self.backoff_s * (2 ** attempt)))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would send the Authorization header to
    wherever the Location points (another host, or plain http)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # the 3xx then comes back as an HTTPError


class NCMECClient:
    """GETs against ``base_url`` (e.g. ``https://exttest.cybertip.org/hashsharing``)."""

    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None, sleep: object = time.sleep) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ServiceError("NCMEC base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._auth = f"Basic {token}"
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)
        self.requests = 0

    def __repr__(self) -> str:  # never the credentials
        return f"NCMECClient({self.base_url!r})"

    def __getstate__(self) -> dict[str, object]:
        raise TypeError("NCMECClient holds credentials and is not pickled")

    def entries_url(self, start: str, end: str) -> str:
        q = urllib.parse.urlencode({"from": start, "to": end})
        return f"{self.base_url}/{API_VERSION}/entries?{q}"

    def next_url(self, path: str) -> str:
        """``next`` links are paths below the base (``/v2/entries?...&start=1000``)."""
        if path.startswith(("http://", "https://")):
            if not path.startswith(self.base_url + "/"):
                raise ServiceError("NCMEC paging link points outside the configured base_url; refused")
            return path
        return self.base_url + "/" + path.lstrip("/")

    def get(self, url: str, what: str, is_next: bool = False) -> bytes:
        last = ""
        for attempt in range(self.retry.max_retries + 1):
            if attempt:
                self._sleep(self.retry.delay(attempt - 1))  # type: ignore[operator]
            req = urllib.request.Request(url, headers={"Authorization": self._auth,
                                                       "Accept": "application/xml"})
            self.requests += 1
            try:
                with self._opener.open(req, timeout=self.timeout_s) as resp:
                    return bytes(resp.read())
            except urllib.error.HTTPError as exc:
                code = exc.code
                exc.close()
                if code in (401, 403):
                    raise ServiceError(f"NCMEC {what}: HTTP {code}: credentials refused; check the "
                                       "username and password references in the sync config") from None
                if code == 429 or code >= 500:
                    last = f"HTTP {code}"
                    continue
                if 300 <= code < 400:
                    raise ServiceError(f"NCMEC {what}: HTTP {code}: a redirect, not followed (the "
                                       "credentials go to base_url only); check base_url") from None
                if is_next and code in (400, 404, 410):
                    raise StaleLink(f"HTTP {code}") from None
                raise ServiceError(f"NCMEC {what}: HTTP {code}") from None
            except TimeoutError:
                last = "timed out"
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                last = "timed out" if isinstance(reason, TimeoutError) else \
                    f"connection failed ({type(reason).__name__})"
        raise ServiceError(f"NCMEC {what}: {last} after {self.retry.max_retries + 1} attempt(s)")
