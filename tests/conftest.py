"""Shared fixtures for the whole suite.

* The ``slow`` marker: tests marked ``@pytest.mark.slow`` run only when
  ``DATAHYGIENE_SLOW=1``; the default suite has to stay fast on a shared 2-core box.
* Nothing here depends on the directory pytest is started from: paths into the
  repository are computed from this file (``REPO``), and every generated file lives in
  ``tmp_path``.
* Manifests and lists are synthetic: random bytes and ``example.invalid`` URLs.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from datahygiene.synth import SynthSpec, write_synthetic

# Test modules import helpers from tests/dhtest.py whatever the import mode or the
# directory pytest starts in.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from dhtest import Cli, hexes, rand_bytes, write_manifest, write_text_list

SLOW_ENV = "DATAHYGIENE_SLOW"


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too, so `--strict-markers` works when pytest runs from another
    # directory and does not pick up pyproject.toml.
    config.addinivalue_line("markers", "slow: long-running tests (skipped unless DATAHYGIENE_SLOW=1)")
    # The Ctrl-C tests start the command as a terminal would, with SIGINT's default
    # disposition. A suite run as a background job of a non-interactive shell (`make
    # test &` in a script) inherits SIGINT ignored, and so would every command it starts
    # (the command keeps an inherited ignore: tests/test_cli_errors.py): a Python handler
    # here is reset to the default in each child.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(SLOW_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"slow test: set {SLOW_ENV}=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def core_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load the core distribution's plugins alone (``DATAHYGIENE_PLUGINS=""``), so the
    foundation's tests do not depend on which other plugins happen to be installed."""
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "")


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture
def synth(tmp_path: Path) -> dict[str, Any]:
    """A small synthetic manifest (3 files, several row groups each) with planted
    MD5 and URL matches and null MD5s; returns the ground truth plus ``dir``."""
    out = tmp_path / "synth"
    truth = write_synthetic(out, SynthSpec(rows=3000, files=3, list_size=400, planted=13,
                                           malformed=5, row_group_size=350, url_list=True,
                                           seed=7))
    truth["dir"] = out
    truth["manifest"] = out / "manifest"
    return truth


@pytest.fixture
def make_synth(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Factory: ``make_synth(name, **SynthSpec fields)`` -> ground truth with ``dir``."""

    def make(name: str = "s", **kw: Any) -> dict[str, Any]:
        out = tmp_path / name
        truth = write_synthetic(out, SynthSpec(**kw))
        truth["dir"] = out
        truth["manifest"] = out / "manifest"
        return truth

    return make


@pytest.fixture
def small_manifest(tmp_path: Path) -> dict[str, Any]:
    """A hand-built 20-row manifest: rows 3 and 11 are in the md5 list (one written in
    upper case), row 5 is null, row 8 is malformed, row 14 has a wrong length."""
    rng = np.random.default_rng(11)
    md5 = rand_bytes(20, 16, seed=11)
    text = hexes(md5)
    col: list[str | None] = list(text)
    col[11] = col[11].upper()
    col[5] = None
    col[8] = "z" * 32
    col[14] = text[14][:30]
    keys = [f"k{i:03d}" for i in range(20)]
    urls = [f"https://example.invalid/img/{i}.jpg" for i in range(20)]
    path = write_manifest(tmp_path / "m" / "small.parquet",
                          {"key": keys, "url": urls, "caption": ["a synthetic caption"] * 20,
                           "md5": pa.array(col, pa.string()),
                           "width": pa.array(rng.integers(64, 1024, 20), pa.int32())},
                          row_group_size=6)
    noise = hexes(rand_bytes(30, 16, seed=12))
    lst = write_text_list(tmp_path / "lists" / "md5.txt", [text[3], *noise, text[11]])
    return {"path": path, "list": lst, "keys": keys, "excluded": {"k003", "k011"},
            "unverified": {"k005", "k008", "k014"}, "md5": text, "list_values": [text[3], text[11], *noise]}
