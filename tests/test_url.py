"""URL digests and the documented normalisation (docs/list-formats.md#url-digests)."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
from dhtest import core_registry

from datahygiene.errors import ConfigError
from datahygiene.signals.url import normalize_urls

REG = core_registry()


@pytest.mark.parametrize(("given", "want"), [
    ("https://example.invalid/a/B.jpg", "https://example.invalid/a/B.jpg"),
    ("  https://example.invalid/x.jpg\n", "https://example.invalid/x.jpg"),
    ("HTTPS://Example.INVALID/Path/IMG.JPG", "https://example.invalid/Path/IMG.JPG"),
    ("https://example.invalid/x.jpg#frag", "https://example.invalid/x.jpg"),
    ("https://example.invalid/x.jpg?q=A&b=C#f", "https://example.invalid/x.jpg?q=A&b=C"),
    ("http://example.invalid:80/x", "http://example.invalid/x"),
    ("https://example.invalid:443/x", "https://example.invalid/x"),
    ("http://example.invalid:443/x", "http://example.invalid:443/x"),
    ("https://example.invalid:8443/x", "https://example.invalid:8443/x"),
    ("https://example.invalid", "https://example.invalid"),
    ("HTTP://EXAMPLE.INVALID:80", "http://example.invalid"),
    ("not a url at all", "not a url at all"),
])
def test_basic_normalisation(given: str, want: str) -> None:
    assert normalize_urls(pa.array([given])).to_pylist() == [want]


def test_nulls_stay_null_and_none_mode_is_verbatim() -> None:
    assert normalize_urls(pa.array([None, "X"], pa.string())).to_pylist() == [None, "X"]
    raw = " HTTPS://Example.invalid/x#y "
    assert normalize_urls(pa.array([raw]), "none").to_pylist() == [raw]
    with pytest.raises(ConfigError, match="normalisation"):
        normalize_urls(pa.array([raw]), "aggressive")


@pytest.mark.parametrize(("name", "alg"), [("url-md5", "md5"), ("url-sha1", "sha1"),
                                           ("url-sha256", "sha256")])
def test_url_digest_is_digest_of_normalised_url(name: str, alg: str) -> None:
    sig = REG.signal(name)
    urls = ["HTTPS://Example.invalid:443/img/1.jpg#top", "https://example.invalid/img/1.jpg",
            None, "   "]
    n = sig.normalize(pa.array(urls))
    want = hashlib.new(alg, b"https://example.invalid/img/1.jpg").digest()
    assert n.valid.tolist() == [True, True, False, False]
    assert bytes(n.values[0]) == want and bytes(n.values[1]) == want
    assert n.reasons[2] == "null" and n.reasons[3] == "null"


def test_url_list_entries_are_digests_not_urls() -> None:
    sig = REG.signal("url-sha256")
    d = hashlib.sha256(b"https://example.invalid/a").hexdigest()
    n = sig.parse_entries(pa.array([d, d.upper(), "https://example.invalid/a"]))
    assert n.valid.tolist() == [True, True, False]


def test_precomputed_option_reads_digests_from_the_column() -> None:
    sig = REG.signal("url-md5", options={"precomputed": True})
    d = hashlib.md5(b"https://example.invalid/a").hexdigest()
    n = sig.normalize(pa.array([d, "https://example.invalid/a"]))
    assert n.valid.tolist() == [True, False]


def test_none_normalisation_option() -> None:
    sig = REG.signal("url-sha256", options={"normalization": "none"})
    n = sig.normalize(pa.array(["HTTPS://Example.invalid/a"]))
    assert bytes(n.values[0]) == hashlib.sha256(b"HTTPS://Example.invalid/a").digest()
