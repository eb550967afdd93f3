"""Without the ``ray`` extra, ``--engine ray`` fails at once with an install hint
(no traceback, nothing written)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("core_only")


def test_engine_ray_without_ray_gives_install_hint(cli: Any, small_manifest: dict[str, Any],
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import raises
    out = tmp_path / "o"
    res = cli("scan", "--manifest", small_manifest["path"], "--list", f"md5={small_manifest['list']}",
              "--out", out, "--engine", "ray", "-q", ok=False)
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'datahygiene[ray]'" in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_engine_option_in_config_file(tmp_path: Path) -> None:
    from datahygiene.config import load_config

    p = tmp_path / "scan.toml"
    p.write_text('[scan]\nengine = "ray"\nray_address = "auto"\n')
    cfg = load_config(str(p))
    assert cfg.engine == "ray" and cfg.ray_address == "auto"
    assert "ray_address" not in cfg.describe(), "where it ran is not part of the result"
