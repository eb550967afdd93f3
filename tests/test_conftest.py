"""The suite's own machinery: the ``slow`` gate."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from dhtest import REPO


def _conftest() -> Any:
    spec = importlib.util.spec_from_file_location("dh_root_conftest", REPO / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class FakeItem:
    def __init__(self, slow: bool) -> None:
        self.keywords: dict[str, Any] = {"slow": True} if slow else {}
        self.markers: list[Any] = []

    def add_marker(self, marker: Any) -> None:
        self.markers.append(marker)


@pytest.mark.parametrize(("env", "skipped"), [(None, True), ("0", True), ("1", False)])
def test_slow_gate(monkeypatch: pytest.MonkeyPatch, env: str | None, skipped: bool) -> None:
    if env is None:
        monkeypatch.delenv("DATAHYGIENE_SLOW", raising=False)
    else:
        monkeypatch.setenv("DATAHYGIENE_SLOW", env)
    slow, fast = FakeItem(True), FakeItem(False)
    _conftest().pytest_collection_modifyitems(None, [slow, fast])
    assert fast.markers == []
    assert bool(slow.markers) == skipped
    if skipped:
        assert slow.markers[0].name == "skip" and "DATAHYGIENE_SLOW=1" in slow.markers[0].kwargs["reason"]


def test_slow_marker_is_registered(pytestconfig: pytest.Config) -> None:
    assert any(m.startswith("slow:") for m in pytestconfig.getini("markers"))
