"""Test helpers beside this file (the loopback server) import whatever the import mode,
and the environment every test of a sync runs in."""

import base64
import os
import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

# the loopback server's account (placeholders; the password is planted to prove it
# never reaches an output)
USER, PASSWORD = "placeholder-user", "pw-Planted-5ecret-0xC0FFEE"
KEY_ENV = "DH_NCMEC_TEST_KEY"  # the list store's key, for the tests' stores


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("DATAHYGIENE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("NCMEC_TEST_USER", USER)
    monkeypatch.setenv("NCMEC_TEST_PASSWORD", PASSWORD)
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "datahygiene-ncmec")  # independent of other plugins
    return tmp_path
