"""A loopback server speaking the NCMEC hash-sharing API (v2 entries + status) over
synthetic records, with fault injection. For tests only; every value is random.

The server holds a log of records ``(timestamp, element)``: a later record for an id
is an update, a ``deleted*`` record a tombstone. ``GET /v2/entries?from=&to=`` returns
the records whose timestamp lies in the window, in a shuffled (not time) order, in
pages of ``page_size`` linked by ``<paging><next>``.
"""

from __future__ import annotations

import base64
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

NS = "https://hashsharing.ncmec.org/hashsharing/v2"
FMT = "%Y-%m-%dT%H:%M:%SZ"


def ts(text: str) -> int:
    return int(datetime.strptime(text, FMT).replace(tzinfo=UTC).timestamp())


@dataclass
class Record:
    t: int
    id: str
    kind: str = "image"
    deleted: bool = False
    member: int = 42
    classification: str | None = "A1"
    fingerprints: dict[str, str] = field(default_factory=dict)

    def xml(self) -> str:
        tag = ("deleted" + self.kind.capitalize()) if self.deleted else self.kind
        parts = [f"<{tag}>", f"<id>{escape(self.id)}</id>",
                 f'<member id="{self.member}">Placeholder Member {self.member}</member>']
        if self.classification and not self.deleted:
            parts.append(f"<classification>{escape(self.classification)}</classification>")
        if self.fingerprints and not self.deleted:
            parts.append("<fingerprints>" + "".join(
                f"<{k}>{escape(v)}</{k}>" for k, v in self.fingerprints.items()) + "</fingerprints>")
        parts.append(f"</{tag}>")
        return "".join(parts)


@dataclass
class Fault:
    """Injected for requests ``match(path, query)`` accepts, ``times`` times."""

    match: Callable[[str, dict[str, str]], bool]
    # "401", "500", "503", "429", "410", "timeout", "drop", "truncate"; "maintenance" (200
    # with an HTML page), "empty" (200 with an empty queryResult), "bad-record" (a page with
    # an image record without an id), "redirect:URL" (302 to URL)
    action: str
    times: int = 1


class NCMECServer:
    def __init__(self, username: str, password: str, page_size: int = 1000, seed: int = 0,
                 timeout_sleep: float = 1.0) -> None:
        self.expected_auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.page_size = page_size
        self.records: list[Record] = []
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.seed = seed
        self.timeout_sleep = timeout_sleep
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hashsharing"

    def __enter__(self) -> NCMECServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- ground truth ---------------------------------------------------------------
    def state(self, until: int | None = None) -> dict[str, Record]:
        """What a correct client holds after reading every record up to ``until``."""
        latest: dict[str, Record] = {}
        for r in sorted(self.records, key=lambda r: r.t):  # stable: log order breaks ties
            if until is None or r.t <= until:
                latest[r.id] = r
        return {k: v for k, v in latest.items() if not v.deleted}

    # -- protocol -------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, code: int, body: bytes,
              ctype: str = "application/xml") -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        q = dict(urllib.parse.parse_qsl(parsed.query))
        with self.lock:
            self.requests.append((parsed.path, q))
            fault = next((f for f in self.faults if f.times > 0 and f.match(parsed.path, q)), None)
            if fault:
                fault.times -= 1
        if h.headers.get("Authorization") != self.expected_auth:
            self._send(h, 401, b"<error>unauthorized</error>")
            return
        if fault is not None:
            a = fault.action
            if a.isdigit():
                self._send(h, int(a), f"<error>injected {a}</error>".encode())
                return
            if a == "maintenance":
                self._send(h, 200, b"<html><body><p>Down for maintenance</p></body></html>", "text/html")
                return
            if a == "empty":
                self._send(h, 200, f'<?xml version="1.0"?><queryResult xmlns="{NS}"/>'.encode())
                return
            if a == "bad-record":
                self._send(h, 200, f'<queryResult xmlns="{NS}"><images count="1"><image><member '
                           'id="1"/></image></images><paging><next></next></paging>'
                           "</queryResult>".encode())
                return
            if a.startswith("redirect:"):
                h.send_response(302)
                h.send_header("Location", a[len("redirect:"):])
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            if a == "timeout":
                time.sleep(self.timeout_sleep)
            elif a == "drop":
                h.close_connection = True
                h.connection.shutdown(2)
                return
            elif a == "truncate":
                body = self._entries(q)
                h.send_response(200)
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body[: len(body) // 2])
                h.close_connection = True
                h.connection.shutdown(2)
                return
        if parsed.path == "/hashsharing/v2/status":
            self._send(h, 200, f'<status xmlns="{NS}"><member id="42">Placeholder</member></status>'.encode())
        elif parsed.path == "/hashsharing/v2/entries":
            if "from" not in q or "to" not in q:
                self._send(h, 400, b"<error>from and to are required</error>")
                return
            self._send(h, 200, self._entries(q))
        else:
            self._send(h, 404, b"<error>not found</error>")

    def _entries(self, q: dict[str, str]) -> bytes:
        lo, hi = ts(q["from"]), ts(q["to"])
        # one record per id: its latest within the window (the entry's state then)
        latest: dict[str, Record] = {}
        for r in sorted((r for r in self.records if lo <= r.t <= hi), key=lambda r: r.t):
            latest[r.id] = r
        window = sorted(latest.values(), key=lambda r: r.id)
        # entries are NOT in time order: a fixed shuffle per window
        order = list(range(len(window)))
        random.Random(f"{self.seed}:{lo}:{hi}").shuffle(order)
        window = [window[i] for i in order]
        start = int(q.get("start", 0))
        size = int(q.get("size", self.page_size))
        page = window[start:start + size]
        images = [r for r in page if r.kind == "image"]
        videos = [r for r in page if r.kind == "video"]
        out = [f'<?xml version="1.0" encoding="UTF-8"?><queryResult xmlns="{NS}">']
        for name, rs in (("images", images), ("videos", videos)):
            if rs:
                mx = datetime.fromtimestamp(max(r.t for r in rs), UTC).strftime(FMT)
                out.append(f'<{name} count="{len(rs)}" maxTimestamp="{mx}">'
                           + "".join(r.xml() for r in rs) + f"</{name}>")
        nxt = ""
        if start + size < len(window):
            nq = urllib.parse.urlencode({"from": q["from"], "to": q["to"], "start": start + size,
                                         "size": size, "max": len(window)})
            nxt = escape(f"/v2/entries?{nq}")
        out.append(f"<paging><next>{nxt}</next></paging></queryResult>")
        return "".join(out).encode()


def synthetic_records(n: int, t0: str, t1: str, seed: int = 0) -> list[Record]:
    """``n`` random entries spread over [t0, t1], with md5/sha1 and sometimes pdq,
    pdna or a type nobody knows; case varies to exercise normalisation."""
    rng = random.Random(seed)
    lo, hi = ts(t0), ts(t1)
    out = []
    for i in range(n):
        fps = {"md5": rng.randbytes(16).hex(), "sha1": rng.randbytes(20).hex().upper()}
        if i % 3 == 0:
            fps["pdq"] = rng.randbytes(32).hex()
        if i % 4 == 0:
            fps["pdna"] = base64.b64encode(rng.randbytes(144)).decode()
        if i % 5 == 0:
            fps["netclean"] = rng.randbytes(12).hex()
        out.append(Record(t=rng.randint(lo, hi), id=f"ent-{seed}-{i:05d}",
                          kind="video" if i % 7 == 0 else "image",
                          member=rng.choice([42, 77]),
                          classification=rng.choice(["A1", "A2", "B1", None]),
                          fingerprints=fps))
    return out
