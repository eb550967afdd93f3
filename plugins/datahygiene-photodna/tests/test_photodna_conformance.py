"""The PhotoDNA service against the conformance kit (datahygiene.testing): the service
contract through the loopback Match server, and fail-closed with the service down --
refused connections, 503s, and answers without a verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from datahygiene_photodna.service import PhotoDNAService
from photodna_server import PhotoDNAServer, digest, png

from datahygiene.testing import (
    check_fails_closed,
    check_match_service,
    failing_backend,
    unreachable_backend,
)

KEY = "pdna-conformance-Planted-Key-4c1d"  # a placeholder: no real subscription key
KEY_ENV = "PDNA_CONFORMANCE_KEY"
PATH = "/photodna/v1.0"


@pytest.fixture(autouse=True)
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def options(base_url: str, **kw: Any) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "key_env": KEY_ENV,
        "rate": 1000,
        "concurrency": 4,
        "timeout_s": 1.0,
        "max_retries": 1,
        "backoff_s": 0.01,
        "max_backoff_s": 0.02,
        "cache": False,
        **kw,
    }


IMAGES = [png(170 + i, 168, seed=700 + i) for i in range(5)]


def test_photodna_honours_the_service_contract(tmp_path: Path) -> None:
    items = [*IMAGES, png(100, 100, seed=799)]  # the last is too small: unverified, never sent
    with PhotoDNAServer(KEY) as server:
        server.script[digest(items[0])] = ["match:Test:104149"]
        server.script[digest(items[1])] = ["match:NCMEC:77"]
        server.script[digest(items[2])] = ["status:3206"]
        server.script[digest(items[3])] = ["http:503"]  # still failing after the retry
        service = PhotoDNAService(options(server.base_url, cache=str(tmp_path / "cache")))
        results = check_match_service(
            service,
            items,
            expect=["match", "match", "unverified", "unverified", "no-match", "unverified"],
            secrets=[KEY],
        )
    assert [r.refs for r in results[:2]] == [("104149",), ("77",)]
    assert [r.details["lists"] for r in results[:2]] == [("photodna/Test",), ("photodna/NCMEC",)]
    assert [r.reason for r in results[2:]] == [
        "not-verified-as-image",
        "service-unavailable",
        None,
        "image-too-small",
    ]


def test_photodna_stops_when_nothing_answers() -> None:
    """Connections refused on every attempt: the scan stops (ServiceError) rather than
    report a run whose every row is unverified."""
    with unreachable_backend() as url:
        out = check_fails_closed(lambda: PhotoDNAService(options(url + PATH)), IMAGES[:3], secrets=[KEY])
    assert out is None


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (503, b"", "service-unavailable"),
        (200, b"{}", "bad-response"),  # no Status at all
        (200, b'{"Status": {"Code": 3000}}', "bad-response"),  # OK, but no IsMatch verdict
        (200, b"<html>maintenance</html>", "bad-response"),
    ],
)
def test_photodna_fails_closed_when_the_service_answers_no_verdict(
    status: int, body: bytes, reason: str
) -> None:
    with failing_backend(status, body) as url:
        out = check_fails_closed(lambda: PhotoDNAService(options(url + PATH)), IMAGES[:3], secrets=[KEY])
    assert out is not None and {r.reason for r in out} == {reason}
