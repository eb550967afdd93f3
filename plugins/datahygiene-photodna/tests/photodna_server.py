"""A loopback server speaking the PhotoDNA Cloud Service Match API, for tests.

``POST /photodna/v1.0/Match?enhance=false`` with an image body and the
``Ocp-Apim-Subscription-Key`` header; answers the documented JSON (``Status``,
``IsMatch``, ``MatchDetails.MatchFlags``, ``TrackingId``). What it answers for an
image is scripted per image SHA-256: a list of actions used one per request (the
last repeats), default "nomatch". Actions: ``match:SOURCE:ID``, ``nomatch``,
``status:CODE``, ``http:CODE``, ``429``/``429:SECONDS`` (Retry-After), ``slow``
(sleeps past the client timeout, then answers nomatch), ``drop`` (closes the
connection without answering), ``truncate`` (cuts the body half way), ``redirect:URL``
(302 to URL), ``raw:JSON`` (answers that body, status 200), ``drip`` (the no-match answer
a few bytes at a time, well past the client timeout).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import struct
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DESCRIPTIONS = {3000: "OK", 3002: "Invalid or missing request parameter(s)",
                3004: "Unknown scenario or unhandled error occurred while processing request",
                3206: "The given file could not be verified as an image",
                3208: "Image size in pixels is not within allowed range"}


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A synthetic gradient-and-noise RGB PNG (stdlib only)."""
    rng = random.Random(seed)
    rows = []
    base = rng.randrange(256)
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            row += bytes(((base + x) & 255, (y * 3 + seed) & 255, rng.randrange(256)))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PhotoDNAServer:
    def __init__(self, key: str, slow_s: float = 1.0, delay_s: float = 0.0) -> None:
        self.key = key
        self.slow_s = slow_s
        self.delay_s = delay_s
        self.script: dict[str, list[str]] = {}
        self.used: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._counted = threading.local()  # whether this thread's request is counted in flight
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/photodna/v1.0"

    def __enter__(self) -> PhotoDNAServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests_for(self, image: bytes) -> int:
        d = digest(image)
        return sum(r["digest"] == d for r in self.requests)

    def _json(self, h: BaseHTTPRequestHandler, code: int, doc: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        body = json.dumps(doc).encode()
        self._leave()  # before the answer: the client may send its next request once it has it
        h.send_response(code)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    @staticmethod
    def result(code: int, is_match: bool = False,
               flags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"Status": {"Code": code, "Description": DESCRIPTIONS.get(code, "?"), "Exception": None},
                "ContentId": None, "IsMatch": is_match,
                "MatchDetails": {"AdvancedInfo": [], "MatchFlags": flags or []},
                "TrackingId": f"test_{random.randrange(1 << 30):x}", "EvaluateResponse": None}

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        length = int(h.headers.get("Content-Length", 0))
        body = h.rfile.read(length)
        d = digest(body)
        with self.lock:
            self.requests.append({"t": time.monotonic(), "digest": d, "path": parsed.path,
                                  "query": parsed.query, "ctype": h.headers.get("Content-Type")})
            n = self.used.get(d, 0)
            self.used[d] = n + 1
            script = self.script.get(d, ["nomatch"])
            action = script[min(n, len(script) - 1)]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._counted.on = True
        try:
            self._answer(h, parsed, body, action)
        finally:
            self._leave()

    def _leave(self) -> None:
        """This request is no longer in flight: counted out once it starts its answer
        (counted out after it, a request the client sent on receiving that answer could
        arrive first and be counted beside it, one more than the client had in flight)."""
        if getattr(self._counted, "on", False):
            self._counted.on = False
            with self.lock:
                self.in_flight -= 1

    def _answer(self, h: BaseHTTPRequestHandler, parsed: Any, body: bytes, action: str) -> None:
        if h.headers.get("Ocp-Apim-Subscription-Key") != self.key:
            self._json(h, 401, {"statusCode": 401,
                                "message": "Access denied due to invalid subscription key."})
            return
        if parsed.path != "/photodna/v1.0/Match":
            self._json(h, 404, {"statusCode": 404, "message": "Resource not found"})
            return
        if not (h.headers.get("Content-Type") or "").startswith("image/") or not body:
            self._json(h, 200, self.result(3002))
            return
        if self.delay_s:
            time.sleep(self.delay_s)
        kind, _, arg = action.partition(":")
        if kind == "match":
            source, _, mid = arg.partition(":")
            flags = [{"AdvancedInfo": [{"Key": "MatchId", "Value": mid}], "Source": source,
                      "Violations": ["A1"]}]
            self._json(h, 200, self.result(3000, True, flags))
        elif kind == "nomatch":
            self._json(h, 200, self.result(3000))
        elif kind == "status":
            self._json(h, 200, self.result(int(arg)))
        elif kind == "http":
            self._json(h, int(arg), {"statusCode": int(arg), "message": "injected"})
        elif kind == "429":
            self._json(h, 429, {"statusCode": 429, "message": "Rate limit is exceeded."},
                       {"Retry-After": arg} if arg else None)
        elif kind == "slow":
            time.sleep(self.slow_s)
            with contextlib.suppress(OSError):  # the client has given up by now
                self._json(h, 200, self.result(3000))
        elif kind == "drop":
            h.close_connection = True
            h.connection.shutdown(2)
        elif kind == "truncate":
            full = json.dumps(self.result(3000)).encode()
            h.send_response(200)
            h.send_header("Content-Length", str(len(full)))
            h.end_headers()
            h.wfile.write(full[: len(full) // 2])
            h.close_connection = True
            h.connection.shutdown(2)
        elif kind == "redirect":
            h.send_response(302)
            h.send_header("Location", arg)
            h.send_header("Content-Length", "0")
            h.end_headers()
        elif kind == "raw":
            data = arg.encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        elif kind == "drip":
            full = json.dumps(self.result(3000)).encode()
            h.send_response(200)
            h.send_header("Content-Length", str(len(full)))
            h.end_headers()
            with contextlib.suppress(OSError):  # the client gives up part way
                for i in range(0, len(full), 8):
                    h.wfile.write(full[i:i + 8])
                    h.wfile.flush()
                    time.sleep(self.slow_s / 4)
        else:  # pragma: no cover - a test bug
            raise ValueError(action)
