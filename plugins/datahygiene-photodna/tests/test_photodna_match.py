"""PhotoDNA Match through a loopback server speaking the documented API: every
status code, 429s, 5xx bursts, slow responses and dropped connections; the exact set
of matched and unverified rows and the number of requests sent."""

from __future__ import annotations

import json
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from datahygiene_photodna.imageinfo import NotAnImage, sniff
from datahygiene_photodna.service import PhotoDNAService
from photodna_server import PhotoDNAServer, digest, png

from datahygiene.cli import cli
from datahygiene.errors import ConfigError, ServiceError
from datahygiene.services.check import ServiceCheck

KEY = "pdna-Planted-Subscription-Key-7f3e"


def service(server: PhotoDNAServer, tmp: Path, **kw: Any) -> PhotoDNAService:
    opts = {"base_url": server.base_url, "key_env": "PDNA_TEST_KEY", "rate": 1000, "concurrency": 4,
            "timeout_s": 1.0, "max_retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05,
            "cache": str(tmp / "cache"), **kw}
    return PhotoDNAService(opts)


@pytest.fixture(autouse=True)
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDNA_TEST_KEY", KEY)
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "datahygiene-photodna")  # independent of other plugins


def scripted_rows(server: PhotoDNAServer) -> tuple[list[bytes | None], dict[int, int]]:
    """19 rows; the script per image; and the requests each row's image should cost."""
    img = [png(170 + i, 165, seed=i) for i in range(19)]
    img[6] = png(100, 100, seed=6)                                   # too small: not sent
    img[7] = png(200, 200, seed=7) + os.urandom(4 * 1024 * 1024)     # over 4 MB: not sent
    img[8] = os.urandom(3000)                                        # not an image: not sent
    img[15] = img[0]                                                 # duplicate content
    s = server.script
    s[digest(img[0])] = ["match:Test:104149"]
    s[digest(img[2])] = ["status:3002"]
    s[digest(img[3])] = ["status:3004"]
    s[digest(img[4])] = ["status:3206"]
    s[digest(img[5])] = ["status:3208"]
    s[digest(img[10])] = ["429:0", "429", "match:NCMEC:77"]
    s[digest(img[11])] = ["http:503", "http:502", "http:500", "nomatch"]
    s[digest(img[12])] = ["http:500"]                                # persistent
    s[digest(img[13])] = ["slow", "nomatch"]
    s[digest(img[14])] = ["drop", "nomatch"]
    s[digest(img[16])] = ["truncate", "nomatch"]
    s[digest(img[17])] = ["429"]                                     # persistent
    s[digest(img[18])] = ["slow"]                                    # persistent
    rows: list[bytes | None] = list(img)
    rows[9] = None
    cost = {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 10: 3, 11: 4, 12: 4, 13: 2, 14: 2, 16: 2, 17: 4, 18: 4}
    return rows, cost


EXPECTED_UNVERIFIED = {
    "r02": ["photodna:invalid-request"], "r03": ["photodna:service-error"],
    "r04": ["photodna:not-verified-as-image"], "r05": ["photodna:image-size-out-of-range"],
    "r06": ["photodna:image-too-small"], "r07": ["photodna:image-too-large"],
    "r08": ["photodna:unsupported-format"], "r09": ["photodna:null"],
    "r12": ["photodna:service-unavailable"], "r17": ["photodna:rate-limited"], "r18": ["photodna:timeout"],
}


def write_manifest(path: Path, rows: list[bytes | None]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    keys = [f"r{i:02d}" for i in range(len(rows))]
    pq.write_table(pa.table({"key": keys, "url": [f"https://example.invalid/{k}.png" for k in keys],
                             "jpg": pa.array(rows, pa.binary())}), path / "part-0.parquet")


def scan(tmp: Path, server: PhotoDNAServer, out: str) -> tuple[int, str]:
    conf = tmp / "scan.toml"
    conf.write_text(
        "[scan]\nservices = [\"photodna\"]\nimage_column = \"jpg\"\n"
        "[scan.options.photodna]\n"
        f"base_url = \"{server.base_url}\"\nkey_env = \"PDNA_TEST_KEY\"\nrate = 1000\nconcurrency = 4\n"
        "timeout_s = 1.0\nmax_retries = 3\nbackoff_s = 0.01\nmax_backoff_s = 0.05\n"
        f"cache = \"{tmp / 'cache'}\"\n")
    r = CliRunner().invoke(cli, ["scan", "--config", str(conf), "--manifest", str(tmp / "m"),
                                 "--out", str(tmp / out), "--batch-size", "7", "-q"],
                           catch_exceptions=False)
    return r.exit_code, r.output


def test_scan_exact_rows_and_request_count_then_rerun_uses_cache(tmp_path: Path) -> None:
    with PhotoDNAServer(KEY, slow_s=2.5) as server:
        rows, cost = scripted_rows(server)
        write_manifest(tmp_path / "m", rows)
        code, out = scan(tmp_path, server, "run1")
        assert code == 0, out
        ex = pq.read_table(tmp_path / "run1" / "restricted" / "exclusions.parquet").to_pylist()
        excluded = {e["key"]: [(m["signal"], m["list"], m["entry_ref"]) for m in e["matches"]]
                    for e in ex if e["decision"] == "excluded"}
        unverified = {e["key"]: e["reasons"] for e in ex if e["decision"] == "unverified"}
        assert excluded == {"r00": [("photodna", "photodna/Test", "104149")],
                            "r10": [("photodna", "photodna/NCMEC", "77")],
                            "r15": [("photodna", "photodna/Test", "104149")]}
        assert unverified == EXPECTED_UNVERIFIED
        for i, n in cost.items():
            assert server.requests_for(rows[i]) == n, f"row {i}"  # type: ignore[arg-type]
        assert len(server.requests) == sum(cost.values()) == 31
        assert {r["ctype"] for r in server.requests} == {"image/png"}
        assert {r["query"] for r in server.requests} == {"enhance=false"}
        assert "photodna:service-unavailable (1)" in out and "photodna:timeout (1)" in out
        runj = json.loads((tmp_path / "run1" / "run.json").read_text())
        (sig,) = runj["signals"]
        assert sig["service"]["stats"]["requests"] == 31 and sig["service"]["stats"]["not_sent"] == 3
        assert runj["config"]["services"] == ["photodna"]
        summary = json.loads((tmp_path / "run1" / "summary.json").read_text())
        assert summary["rows"] == {"scanned": 19, "clean": 5, "excluded": 3, "unverified": 11}
        # the report stub names the service that matched (it named only hash lists: none)
        stub = (tmp_path / "run1" / "restricted" / "reports" / "cybertipline" / "cybertipline-stub.json")
        assert "checked against: photodna (matching service)" in stub.read_text()

        # rerun: definite answers come from the cache; only what failed is asked again
        server.requests.clear()
        server.used.clear()
        code, out = scan(tmp_path, server, "run2")
        assert code == 0, out
        again = {2: 1, 3: 1, 12: 4, 17: 4, 18: 4}
        assert len(server.requests) == sum(again.values())
        for i, n in again.items():
            assert server.requests_for(rows[i]) == n  # type: ignore[arg-type]
        a = pq.read_table(tmp_path / "run1" / "restricted" / "exclusions.parquet")
        b = pq.read_table(tmp_path / "run2" / "restricted" / "exclusions.parquet")
        assert a.equals(b)


def test_rate_limit_and_concurrency(tmp_path: Path) -> None:
    imgs = [png(160, 160, seed=100 + i) for i in range(8)]
    with PhotoDNAServer(KEY) as server:
        svc = service(server, tmp_path, rate=20, concurrency=4, cache="")
        res = svc.match(imgs)
        assert [r.status for r in res] == ["no-match"] * 8
        t = sorted(r["t"] for r in server.requests)
        # 20 per second: the 8th request starts at least 7 x 50 ms after the first (the
        # margin allows for the first request arriving late; scheduling only adds delay)
        assert t[-1] - t[0] >= 7 * 0.05 - 0.05
    with PhotoDNAServer(KEY, delay_s=0.3) as server:
        svc = service(server, tmp_path, rate=1000, concurrency=3, cache="")
        svc.match(imgs)
        assert server.max_in_flight == 3
        # two batches at once (engine threads) share the same limit
        more = [png(160, 160, seed=200 + i) for i in range(8)]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(svc.match, [imgs, more]))
        assert server.max_in_flight == 3


def test_wrong_key_stops_the_scan_without_showing_it(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with PhotoDNAServer("the-right-key") as server:
        write_manifest(tmp_path / "m", [png(200, 200)])
        code, out = scan(tmp_path, server, "run")
        assert code == ServiceError.exit_code
        assert out.strip().splitlines() == [
            "datahygiene: error: photodna: HTTP 401: the subscription key in $PDNA_TEST_KEY was refused"]
        assert KEY not in out
        assert not (tmp_path / "run" / "run.json").exists()
    monkeypatch.delenv("PDNA_TEST_KEY")
    with pytest.raises(ConfigError, match="PDNA_TEST_KEY is not set"):
        PhotoDNAService({"key_env": "PDNA_TEST_KEY"}).setup()


def test_service_pickles_without_its_key(tmp_path: Path) -> None:
    with PhotoDNAServer(KEY) as server:
        svc = service(server, tmp_path)
        svc.setup()
        blob = pickle.dumps(ServiceCheck(svc, "jpg"))
        assert KEY.encode() not in blob
        assert KEY not in repr(svc) and KEY not in json.dumps(svc.describe())
        again = pickle.loads(blob)
        assert [r.status for r in again.service.match([png(161, 161, seed=3)])] == ["no-match"]


def test_struct_image_column_and_not_cached_failures(tmp_path: Path) -> None:
    with PhotoDNAServer(KEY) as server:
        img = png(180, 180, seed=9)
        server.script[digest(img)] = ["http:503"]
        svc = service(server, tmp_path, max_retries=0)
        check = ServiceCheck(svc, "image")
        col = pa.array([{"bytes": img, "path": "a.png"}, {"bytes": None, "path": "b.png"}],
                       pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        out = check.run(pa.table({"image": col}))
        assert out.invalid_rows.tolist() == [0, 1]
        assert out.invalid_reasons.to_pylist() == ["service-unavailable", "null"]
        server.script[digest(img)] = ["match:Test:1"]
        out = check.run(pa.table({"image": col}))  # the failure was not cached
        assert out.match_rows.tolist() == [0] and out.match_ref.to_pylist() == ["1"]


@pytest.mark.parametrize(("data", "expect"), [
    (png(161, 170), ("png", 161, 170)),
    (b"GIF89a" + (300).to_bytes(2, "little") + (200).to_bytes(2, "little") + b"\0" * 10, ("gif", 300, 200)),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
     b"\xff\xc0\x00\x11\x08\x00\xa0\x01\x00\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01", ("jpeg", 256, 160)),
    (b"BM" + b"\0" * 12 + (40).to_bytes(4, "little") + (500).to_bytes(4, "little")
     + (-400).to_bytes(4, "little", signed=True) + b"\0" * 20, ("bmp", 500, 400)),
    (b"II*\0" + (8).to_bytes(4, "little") + (2).to_bytes(2, "little")
     + (256).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little")
     + (640).to_bytes(2, "little") + b"\0\0"
     + (257).to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(4, "little")
     + (480).to_bytes(4, "little"), ("tiff", 640, 480)),
])
def test_sniff(data: bytes, expect: tuple[str, int, int]) -> None:
    assert sniff(data) == expect


def test_sniff_refuses() -> None:
    with pytest.raises(NotAnImage, match="unsupported-format"):
        sniff(b"RIFF\0\0\0\0WEBPVP8 ")
    with pytest.raises(NotAnImage, match="unreadable-image"):
        sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0")


def test_a_missing_image_column_is_called_an_image_column(tmp_path: Path) -> None:
    """A service reads the ``image`` column unless told another; its absence was
    reported as "no hash column 'image'"."""
    with PhotoDNAServer(KEY) as server:
        write_manifest(tmp_path / "m", [png(200, 200)])
        conf = tmp_path / "scan.toml"
        conf.write_text("[scan]\nservices = [\"photodna\"]\n[scan.options.photodna]\n"
                        f"base_url = \"{server.base_url}\"\nkey_env = \"PDNA_TEST_KEY\"\n")
        r = CliRunner().invoke(cli, ["scan", "--config", str(conf), "--manifest", str(tmp_path / "m"),
                                     "--out", str(tmp_path / "run"), "-q"])
        assert r.exit_code == 3, r.output
        assert "no image column 'image'" in r.output


def test_answers_without_a_definite_verdict_leave_the_row_unverified(tmp_path: Path) -> None:
    """A redirect was followed as a GET without the image, with the key, to the other
    origin, whose answer became the verdict (clean); a status 3000 answer without a
    boolean IsMatch was read as no match (clean); a match whose details had another
    shape stopped the scan with a traceback; an answer sent a few bytes at a time held
    the request past timeout_s."""
    imgs = [png(170 + i, 165, seed=300 + i) for i in range(6)]
    with PhotoDNAServer("other") as other, PhotoDNAServer(KEY, slow_s=2.0) as server:
        s = server.script
        s[digest(imgs[0])] = [f"redirect:{other.base_url}/Match"]
        s[digest(imgs[1])] = ['raw:{"Status": {"Code": 3000}}']
        s[digest(imgs[2])] = ['raw:{"Status": {"Code": 3000}, "IsMatch": null}']
        s[digest(imgs[3])] = ['raw:{"Status": {"Code": 3000}, "IsMatch": true, "MatchDetails": []}']
        s[digest(imgs[4])] = ["drip"]
        svc = service(server, tmp_path, cache="", max_retries=0, timeout_s=0.5)
        res = svc.match(imgs)
        assert [(r.status, r.reason) for r in res] == [
            ("unverified", "http-302"), ("unverified", "bad-response"),
            ("unverified", "bad-response"), ("match", None), ("unverified", "timeout"),
            ("no-match", None)]
        assert other.requests == []  # the key never went there


def test_a_bad_key_option_or_cache_is_one_line_that_never_shows_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with PhotoDNAServer(KEY) as server:
        monkeypatch.setenv("PDNA_TEST_KEY", KEY + "\n" + KEY)  # two keys pasted
        with pytest.raises(ConfigError, match=r"\$PDNA_TEST_KEY holds a line break") as exc:
            service(server, tmp_path).setup()
        assert KEY not in str(exc.value)
        with pytest.raises(ConfigError, match="key_env must name an environment variable") as exc:
            service(server, tmp_path, key_env=KEY)
        assert KEY not in str(exc.value)
        for opt, value in (("enhance", "false"), ("rate", "fast"), ("cache_ttl_days", "30d")):
            with pytest.raises(ConfigError, match=f"photodna.*{opt} must be"):
                service(server, tmp_path, **{opt: value})
        (tmp_path / "cache").mkdir(mode=0o700)
        (tmp_path / "cache" / "results.sqlite").write_bytes(b"not a database" * 100)
        monkeypatch.setenv("PDNA_TEST_KEY", KEY)
        svc = service(server, tmp_path)
        with pytest.raises(ConfigError, match="not a usable PhotoDNA result cache"):
            svc.match([png(170, 170, seed=1)])


def test_retry_after_as_an_http_date() -> None:
    import email.utils
    import time

    from datahygiene_photodna.service import _seconds

    later = email.utils.formatdate(time.time() + 3, usegmt=True)
    assert 1.5 < (_seconds(later) or 0) <= 3.0
    assert _seconds("2") == 2.0 and _seconds("soon") is None


def test_a_service_that_cannot_be_reached_stops_the_scan_naming_its_host(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch
                                                                       ) -> None:
    """A wrong base_url (here a loopback port nobody listens on, closed after the server
    that had it stopped): every row would be unverified and the run exit 0 like any scan
    with a few failed requests. The scan stops instead (exit 8, nothing committed), one
    line naming the service and host, never an image digest or the key."""
    monkeypatch.setenv("PDNA_TEST_KEY", KEY)
    with PhotoDNAServer(KEY) as server:
        rows, _ = scripted_rows(server)
    write_manifest(tmp_path / "m", rows)  # the server is gone: its port is closed
    code, out = scan(tmp_path, server, "run")
    assert code == 8, out
    lines = [ln for ln in out.splitlines() if ln.startswith("datahygiene: error:")]
    host = server.base_url.split("//", 1)[1].split("/", 1)[0]
    assert len(lines) == 1 and f"photodna: the service at {host} could not be reached" in lines[0], out
    assert "connection-failed" in lines[0]
    assert KEY not in out and not any(digest(r) in out for r in rows if r)
    assert not (tmp_path / "run" / "run.json").exists()
