"""Conformance checks for ``datahygiene.services`` plugins (remote matching services).

What the scan relies on (datahygiene/services/check.py, the engines): one result per
item, in order; only the three statuses; a reason for every ``unverified`` row (it is
counted and printed by reason) and references for every match (they name the entry
in the exclusions); nothing derived from the item in a reference or a reason; a
service that pickles cheaply and without its credentials before and after
``setup()`` (the scan sets its plan up, then the Ray engine ships it to workers);
``stats`` of integer counters that ``add_stats`` adds to. And, above all, fail
closed: with its backend down a service answers ``unverified`` (or stops the scan
with a :class:`~datahygiene.errors.DatahygieneError`), never ``no-match``.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from datahygiene.errors import DatahygieneError
from datahygiene.services.base import MatchService, ServiceResult
from datahygiene.testing._rules import broken, holds_any, json_text, pickled, rule, unpickled

STATUSES = ("match", "no-match", "unverified")
MAX_PICKLE_BYTES = 64 * 1024


def check_match_service(
    service: MatchService,
    items: Sequence[bytes],
    expect: Sequence[str | None] | None = None,
    *,
    secrets: Sequence[str] = (),
    max_pickle_bytes: int = MAX_PICKLE_BYTES,
) -> list[ServiceResult]:
    """Set the service up, match ``items`` once, and check the contract.

    ``service``: a configured instance, not yet set up, pointing at the author's test
    backend (a loopback server); ``items``: synthetic content for it (at least one).
    ``expect``: the status each item should get from that backend (``None`` for any),
    so that the check also proves the answers are the right ones. ``secrets``: the
    credentials the service is given (from the environment): they must appear in no
    repr, description, reason, reference or pickle. Returns the results.
    """
    cls = type(service)
    rule(isinstance(service, MatchService), "a service subclasses datahygiene.services.base.MatchService")
    for attr in ("name", "signal"):
        value = getattr(cls, attr, None)
        rule(
            isinstance(value, str) and value and value == value.lower(),
            f"{attr} is a non-empty lower-case string",
        )
    items = list(items)
    rule(items and all(isinstance(i, bytes) for i in items), "give at least one item, each bytes")
    if expect is not None:
        expect = list(expect)
        rule(len(expect) == len(items), "expect gives one status (or None) per item")
        rule(all(e is None or e in STATUSES for e in expect), f"expected statuses are among {STATUSES}")
    needles = item_needles(items)

    _check_pickle(service, "before setup()", max_pickle_bytes, secrets)
    _check_describe(service, needles, secrets)
    service.setup()
    results = service.match(items)
    _check_results(results, items, needles, secrets)
    if expect is not None:
        for i, (want, got) in enumerate(zip(expect, results, strict=True)):
            rule(want is None or got.status == want, f"item {i}: expected {want}, got {got.status}")
    _check_stats(service)
    # run_scan sets the plan up, then an engine may ship it to Ray workers
    _check_pickle(service, "after setup()", max_pickle_bytes, secrets)
    _check_describe(service, needles, secrets)
    _check_add_stats(service)
    rule(not holds_any(repr(service), secrets), "repr() holds a credential")
    service.close()
    return results


def check_fails_closed(
    service_factory: Callable[[], MatchService], items: Sequence[bytes], *, secrets: Sequence[str] = ()
) -> list[ServiceResult] | None:
    """With its backend down, a service never calls an item clean.

    ``service_factory``: no arguments, returns a service configured against a backend
    that is down -- :func:`unreachable_backend` (connections refused) or
    :func:`failing_backend` (every request answered with an error) give one -- with
    retries and back-off kept short, and no result cache it could answer from.
    ``items``: content the service would otherwise send (not content it refuses
    before sending, which proves nothing here).

    Passes when every item comes back ``unverified`` with a reason, or when
    ``setup()``/``match()`` raise a :class:`~datahygiene.errors.DatahygieneError` (a
    ``ServiceError``: the scan stops with one line and calls nothing clean) whose
    message holds no item digest and no credential. Fails on any ``no-match`` or
    ``match``, on a result count that is not the item count, and on any other
    exception (a traceback, where the curator needs a reason). Returns the results,
    or None when the service raised.
    """
    items = list(items)
    rule(items and all(isinstance(i, bytes) for i in items), "give at least one item, each bytes")
    needles = item_needles(items)
    service = service_factory()
    rule(isinstance(service, MatchService), "the factory returns a MatchService")
    try:
        try:
            service.setup()
            results = service.match(items)
        except DatahygieneError as exc:
            text = str(exc)
            rule(text.strip(), "an error raised for a backend that is down says what failed")
            rule(
                not holds_any(text, needles),
                "the error raised for a backend that is down holds an item's bytes or digest",
            )
            rule(
                not holds_any(text, secrets), "the error raised for a backend that is down holds a credential"
            )
            return None
        except Exception as exc:
            broken(
                "with its backend down, a service answers unverified or raises a DatahygieneError "
                f"(ServiceError), not {type(exc).__name__}: the scan would stop with a traceback"
            )
        rule(
            isinstance(results, list) and len(results) == len(items),
            "match() returns one result per item, also with its backend down",
        )
        for i, res in enumerate(results):
            rule(isinstance(res, ServiceResult), "match() returns ServiceResult objects")
            rule(
                res.status != "no-match",
                f"item {i}: no-match from a service whose backend is down: the "
                "row would be called clean (fail closed: unverified with a reason)",
            )
            rule(
                res.status == "unverified",
                f"item {i}: a service whose backend is down answers unverified, not a verdict",
            )
            reason = res.reason if isinstance(res.reason, str) else ""
            rule(reason.strip(), f"item {i}: unverified without a reason")
            rule(not holds_any(reason, needles), f"item {i}: the reason holds an item's bytes or digest")
            rule(not holds_any(reason, secrets), f"item {i}: the reason holds a credential")
        return results
    finally:
        with contextlib.suppress(Exception):  # the verdict above is what matters
            service.close()


# -- backends that are down ---------------------------------------------------------------


@contextlib.contextmanager
def unreachable_backend() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where every connection is refused at once.

    The port is bound (so nothing else takes it) but never listens, for as long as
    the ``with`` block runs: no timeout to wait for, unlike an address that drops
    packets."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@contextlib.contextmanager
def failing_backend(
    status: int = 503, body: bytes = b"", content_type: str = "application/json"
) -> Iterator[str]:
    """``http://127.0.0.1:PORT``, a loopback HTTP server that answers every request
    (any method, any path) with ``status`` and ``body``: 503 for a service that is
    down, or ``status=200`` with an empty or malformed body for one answering nonsense
    (which is no verdict either)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    # (a short poll: shutdown() waits for the loop to see it)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- the rules ----------------------------------------------------------------------------


def item_needles(items: Sequence[bytes]) -> list[str]:
    """What a reference, reason or description must never hold about an item: its
    MD5, SHA-1 and SHA-256 in hex, and its first 16 bytes raw or in hex."""
    out: list[str] = []
    for item in items:
        out += [
            hashlib.md5(item).hexdigest(),
            hashlib.sha1(item).hexdigest(),
            hashlib.sha256(item).hexdigest(),
        ]
        if len(item) >= 16:
            out += [item[:16].hex(), item[:16].decode("latin-1")]
    return out


def _check_pickle(service: MatchService, when: str, limit: int, secrets: Sequence[str]) -> None:
    data = pickled(service, f"a service {when}")
    rule(
        len(data) <= limit,
        f"a service pickles cheaply {when} (at most {limit:,} bytes; it took "
        f"{len(data):,}): open clients and load heavy state in setup(), leave them out of the pickle",
    )
    rule(
        not holds_any(data, secrets),
        f"a service pickled {when} holds a credential (read it again from the environment in setup())",
    )
    clone = unpickled(data, f"a service {when}")
    rule(type(clone) is type(service), f"a service {when} unpickles to its own class")


def _check_describe(service: MatchService, needles: list[str], secrets: Sequence[str]) -> None:
    desc = service.describe()
    rule(isinstance(desc, dict), "describe() returns a dict")
    text = json_text(desc, "describe()")
    rule(desc.get("name") == service.name, "describe() gives the service's name")
    rule(not holds_any(text, secrets), "describe() holds a credential")
    rule(not holds_any(text, needles), "describe() holds an item's bytes or digest")


def _check_results(results: Any, items: list[bytes], needles: list[str], secrets: Sequence[str]) -> None:
    rule(isinstance(results, list), "match() returns a list")
    rule(len(results) == len(items), "match() returns exactly one result per item")
    for i, res in enumerate(results):
        rule(isinstance(res, ServiceResult), "match() returns ServiceResult objects")
        rule(res.status in STATUSES, f"item {i}: status is one of {', '.join(STATUSES)}")
        rule(
            isinstance(res.refs, tuple) and all(isinstance(r, str) for r in res.refs),
            f"item {i}: refs is a tuple of strings",
        )
        rule(isinstance(res.details, dict), f"item {i}: details is a dict")
        if res.status == "unverified":
            rule(
                isinstance(res.reason, str) and res.reason.strip(),
                f"item {i}: an unverified result carries a reason",
            )
        if res.status == "match":
            rule(res.refs, f"item {i}: a match carries the matched entries' references")
            lists = res.details.get("lists")
            if lists is not None:
                rule(
                    isinstance(lists, tuple | list)
                    and len(lists) == len(res.refs)
                    and all(isinstance(x, str) and x for x in lists),
                    f"item {i}: details['lists'] names one list per reference",
                )
        # where item i's own result sits is the order; any item's digest is a leak
        for ref in res.refs:
            rule(not holds_any(ref, needles), f"item {i}: a reference holds an item's bytes or digest")
            rule(not holds_any(ref, secrets), f"item {i}: a reference holds a credential")
        if res.reason is not None:
            rule(isinstance(res.reason, str), f"item {i}: the reason is a string")
            rule(not holds_any(res.reason, needles), f"item {i}: the reason holds an item's bytes or digest")
            rule(not holds_any(res.reason, secrets), f"item {i}: the reason holds a credential")
        rule(not holds_any(repr(res.details), needles), f"item {i}: details hold an item's bytes or digest")


def _check_stats(service: MatchService) -> None:
    stats = getattr(service, "stats", None)
    if stats is None:
        return
    rule(isinstance(stats, dict), "stats is a dict")
    rule(
        all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in stats.items()
        ),
        "stats holds integer counters (>= 0) by name",
    )


def _check_add_stats(service: MatchService) -> None:
    stats = getattr(service, "stats", None)
    if stats is None:
        service.add_stats({"requests": 1})  # no stats: nothing to add to, and no error
        return
    before = dict(stats)
    service.add_stats({k: 2 for k in before})
    after = getattr(service, "stats", None)
    rule(
        isinstance(after, dict) and all(after.get(k) == v + 2 for k, v in before.items()),
        "add_stats(delta) adds each count of delta to stats (a Ray worker's increments)",
    )
    service.add_stats({})
    rule(getattr(service, "stats", None) == after, "add_stats({}) changes nothing")


__all__ = [
    "MAX_PICKLE_BYTES",
    "check_fails_closed",
    "check_match_service",
    "failing_backend",
    "unreachable_backend",
]
