"""URL digests and the documented normalisation (docs/list-formats.md#url-digests)."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
    # a line feed inside is kept like any byte; the host is still lower-cased and the
    # fragment still dropped (both were missed: the rule's "." did not match "\n")
    ("HTTPS://EXAMPLE.INVALID/a\nb.jpg", "https://example.invalid/a\nb.jpg"),
    ("https://example.invalid/q.jpg#x\ny", "https://example.invalid/q.jpg"),
    ("HTTP://EXAMPLE.INVALID:80/\nx", "http://example.invalid/\nx"),
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


def _random_urls(n: int, seed: int) -> list[str | None]:
    """URLs meant to hit every branch of the normalisation: case, default and other
    ports, fragments, queries, surrounding and inner whitespace, control characters,
    non-ASCII text, no scheme, odd schemes, empty values and nulls."""
    import random

    rng = random.Random(seed)
    schemes = ["http", "HTTP", "https", "HtTpS", "ftp", "s3", "a+b.c-d", "1http", "", "http:", "mailto"]
    hosts = ["example.invalid", "EXAMPLE.invalid", "Ex.Invalid", "h\u00e9llo.invalid", "", "a@b.invalid"]
    ports = ["", ":80", ":443", ":8080", ":80:80", ":", ":0443", ":800"]
    paths = ["", "/", "/A/b.JPG", "/x y", "/caf\u00e9", "/%20", "/a\tb", "/a\nb#c"]
    queries = ["", "?q=1", "?Q=A&b=#x", "?#"]
    frags = ["", "#f", "#", "#A#B", "#x\ny"]
    pads = ["", " ", "\t", "\x1c", "\u00a0", "\r\n", "\x0b "]
    out: list[str | None] = []
    for _ in range(n):
        if rng.random() < 0.03:
            out.append(None)
            continue
        sep = rng.choice(["://", "://", ":/", "//", ""])
        url = (rng.choice(pads) + rng.choice(schemes) + sep + rng.choice(hosts) + rng.choice(ports)
               + rng.choice(paths) + rng.choice(queries) + rng.choice(frags) + rng.choice(pads))
        out.append(url)
    return out


def _documented_rule(url: str) -> str:
    """docs/list-formats.md's URL rule, read plainly, in Python (the trim is Arrow's, whose
    whitespace set is what the docs name)."""
    import re

    u = pc.utf8_trim_whitespace(pa.array([url]))[0].as_py()
    u = u.split("#", 1)[0]
    m = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*", u)
    if not m:
        return u
    auth = m.group(0).lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if auth.startswith(scheme) and auth.endswith(port):
            auth = auth[: -len(port)]
    return auth + u[m.end():]


@pytest.mark.parametrize("seed", [1, 2])
def test_the_rule_is_the_documented_one(seed: int) -> None:
    """The Arrow kernels that define the rule against an independent reading of the docs
    (they kept a fragment and an upper-case host when the URL held a line feed)."""
    urls = [u for u in _random_urls(3000, seed) if u is not None]
    got = normalize_urls(pa.array(urls)).to_pylist()
    want = [_documented_rule(u) for u in urls]
    bad = [(u, g, w) for u, g, w in zip(urls, got, want, strict=True) if g != w]
    assert not bad, bad[:3]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_url_normalisation_matches_the_arrow_rule(seed: int) -> None:
    """The compiled pass (printable-ASCII rows) and the Arrow kernels (the rest) give
    exactly the bytes of the rule as the Arrow kernels define it, row by row."""
    from datahygiene.signals.url import _normalized_bytes

    texts = _random_urls(4000, seed)
    for column in (pa.array(texts, pa.string()), pa.array(texts, pa.large_string()),
                   pa.array(["pad", *texts], pa.string()).slice(1)):
        want = normalize_urls(column).to_pylist()
        data, offsets, status = _normalized_bytes(column, "basic")
        slow = normalize_urls(column.take(pa.array(np.flatnonzero(status == 2)))).to_pylist()
        slow_iter = iter(slow)
        got: list[str | None] = []
        for i in range(len(column)):
            if status[i] == 1:
                got.append(None)
            elif status[i] == 2:
                got.append(next(slow_iter))
            else:
                got.append(bytes(data[offsets[i]: offsets[i + 1]]).decode())
        assert got == want
        assert (status == 0).sum() > 500 and (status == 2).sum() > 500  # both paths exercised


def test_url_digests_match_hashlib_for_every_row() -> None:

    texts = _random_urls(2000, 9)
    column = pa.array(texts, pa.string())
    want = normalize_urls(column).to_pylist()
    for name, alg in (("url-md5", "md5"), ("url-sha1", "sha1"), ("url-sha256", "sha256")):
        norm = core_registry().signal(name).normalize(column)
        for i, text in enumerate(want):
            if text:
                assert norm.valid[i]
                assert bytes(norm.values[i]) == hashlib.new(alg, text.encode()).digest()
            else:
                assert not norm.valid[i] and norm.reasons[i] == "null"


def test_compiled_digests_match_hashlib_on_every_length() -> None:
    """MD5, SHA-1 and SHA-256 of every length from 0 to 300 bytes (one, two and more
    blocks, and each padding case), and of messages around and past the 16 blocks the
    SHA-256 lanes take, from a buffer read at odd offsets."""
    from datahygiene.digests import digest_rows

    rng = np.random.default_rng(5)
    lengths = [*range(301), *range(301), 1015, 1016, 1024, 1100, 5000]  # and past 16 blocks
    msgs = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]
    data = np.frombuffer(b"x" + b"".join(msgs), dtype=np.uint8)
    offsets = np.concatenate([[1], 1 + np.cumsum([len(m) for m in msgs])]).astype(np.int64)
    rows = np.arange(len(msgs), dtype=np.int64)[::-1].copy()  # any order
    for code, name, width in ((0, "md5", 16), (1, "sha1", 20), (2, "sha256", 32)):
        out = np.zeros((rows.shape[0], width), dtype=np.uint8)
        digest_rows(code, data, offsets, rows, out)
        for i, r in enumerate(rows):
            assert bytes(out[i]) == hashlib.new(name, msgs[r]).digest(), (name, len(msgs[r]))


def test_a_url_column_that_is_not_text_is_malformed_row_by_row() -> None:
    """Bytes that are not UTF-8, numbers, lists and structs are not URLs: those rows are
    unverified (malformed), the others are digested; nothing stops the scan (a non-UTF-8
    value did, for the whole run) and no number is digested as its decimal text."""
    sig = REG.signal("url-sha256")
    url = b"https://example.invalid/a.jpg"
    want = hashlib.sha256(url).digest()
    for col in (pa.array([url, b"\xff\xfe", None], pa.binary()),
                pa.array([url, b"\xff\xfe", None], pa.large_binary()),
                pa.array([url, b"\xff\xfe", None], pa.binary_view()),
                pa.array([url.decode(), None, None], pa.string_view()),
                pa.array([url.decode(), None, None]).dictionary_encode()):
        n = sig.normalize(col)
        assert bytes(n.values[0]) == want and n.valid.tolist() == [True, False, False]
        assert n.reasons[2] == "null"
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type) \
                or pa.types.is_binary_view(col.type):
            assert n.reasons[1] == "malformed"
    for col in (pa.array([1, None], pa.int64()), pa.array([["a"], None]),
                pa.array([{"u": "https://example.invalid/"}, None])):
        n = sig.normalize(col)
        assert n.valid.tolist() == [False, False] and list(n.reasons) == ["malformed", "null"]


@pytest.mark.parametrize("raw_type,type", [(pa.binary(), pa.string()),
                                           (pa.large_binary(), pa.large_string())])
def test_a_string_column_that_is_not_utf8_is_malformed_row_by_row(raw_type: pa.DataType,
                                                                  type: pa.DataType) -> None:
    """A parquet string column may hold bytes that are not UTF-8 (writers do not check):
    those rows are malformed, as in a binary column, and the others are digested,
    non-ASCII ones too. The Arrow rule raised ArrowInvalid on them, and the scan
    stopped with 'row group 0 cannot be read; the file may be corrupt'."""
    sig = REG.signal("url-sha256")
    urls = [b"https://example.invalid/a.jpg", b"https://example.invalid/\xff.jpg",
            " HTTPS://Example.invalid/\u00e9.jpg ".encode(), b"\xfe", None]
    n = sig.normalize(pa.array(urls, raw_type).view(type))
    assert n.valid.tolist() == [True, False, True, False, False]
    assert list(n.reasons) == [None, "malformed", None, "malformed", "null"]
    assert bytes(n.values[0]) == hashlib.sha256(urls[0]).digest()
    assert bytes(n.values[2]) == hashlib.sha256("https://example.invalid/\u00e9.jpg".encode()).digest()


def test_none_normalisation_checks_that_a_string_column_is_utf8() -> None:
    """With normalization = "none" the bytes are digested as stored and no Arrow kernel
    reads them: a non-UTF-8 value in a string column was digested (the same bytes in a
    binary column are malformed, as documented)."""
    sig = REG.signal("url-sha256", options={"normalization": "none"})
    urls = [b" https://example.invalid/a.jpg", b"https://example.invalid/\xff.jpg", None]
    for raw_type, type in ((pa.binary(), pa.string()), (pa.large_binary(), pa.large_string()),
                           (pa.binary(), pa.binary())):
        n = sig.normalize(pa.array(urls, raw_type).view(type))
        assert n.valid.tolist() == [True, False, False]
        assert list(n.reasons) == [None, "malformed", "null"]
        assert bytes(n.values[0]) == hashlib.sha256(urls[0]).digest()
