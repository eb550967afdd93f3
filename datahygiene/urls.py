"""How a URL given as an input is named in outputs and messages."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def shown_url(url: str) -> str:
    """An HTTP(S) URL as outputs and messages name it: without a user name and password,
    query or fragment (a presigned URL's signature, an access token), which the scan
    reads through but which must not reach ``run.json`` (published) or a log. Other
    paths are returned as they are (an object's key may hold a ``?``)."""
    if not url.lower().startswith(("http://", "https://")):
        return url
    parts = urlsplit(url)
    if not (parts.query or parts.fragment or "@" in parts.netloc):
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))
