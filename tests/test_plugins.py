"""The plugin registry: entry points, the allowlist, clashes, broken plugins.

Third-party plugins are simulated by a real distribution on ``sys.path``: a tiny
``*.dist-info`` with an ``entry_points.txt`` and a module in ``tmp_path``, which
``importlib.metadata`` discovers exactly as it would an installed wheel.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datahygiene import plugins
from datahygiene.errors import ConfigError, PluginError
from datahygiene.plugins import GROUPS, discover

BUILTIN_SIGNALS = {"md5", "sha1", "sha256", "url-md5", "url-sha1", "url-sha256"}

PLUGIN_MODULE = '''
from datahygiene.signals.exact import MD5

class Tiger(MD5):
    name = "tiger-test"

class OtherMD5(MD5):
    pass
'''


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``fake_dist(name, version, entry_points_txt, module_source=None)`` installs a
    distribution visible to importlib.metadata for the duration of the test."""
    counter = iter(range(100))

    def make(name: str, version: str, entry_points: str, module: str | None = None) -> None:
        root = tmp_path / f"site{next(counter)}"
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        if module is not None:
            (root / f"{name.replace('-', '_')}_mod.py").write_text(module)
        monkeypatch.syspath_prepend(str(root))
        importlib.invalidate_caches()

    # only the core and the fake distributions: other installed plugins are not under test
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "fake-dh-plugin,fake-clash,fake-broken")
    plugins._CACHE.clear()
    yield make
    plugins._CACHE.clear()
    for mod in [m for m in sys.modules if m.endswith("_mod") and m.startswith("fake_")]:
        del sys.modules[mod]


def test_builtins_register_through_entry_points() -> None:
    reg = discover(allow={"datahygiene"})
    assert set(reg.names("signals")) >= BUILTIN_SIGNALS
    assert "file" in reg.names("sources")
    assert "summary" in reg.names("reporters")
    assert set(reg.plugins) >= set(GROUPS)
    md5 = reg.get("signals", "md5")
    assert md5.distribution == "datahygiene" and md5.target == "datahygiene.signals.exact:MD5"


def test_registry_is_built_by_a_function_not_at_import() -> None:
    a, b = discover(allow={"datahygiene"}), discover(allow={"datahygiene"})
    assert a is not b and a.names("signals") == b.names("signals")


def test_third_party_plugin_is_discovered_with_its_version(fake_dist: Callable[..., None]) -> None:
    fake_dist("fake-dh-plugin", "1.2.3",
              "[datahygiene.signals]\ntiger-test = fake_dh_plugin_mod:Tiger\n", PLUGIN_MODULE)
    reg = discover()
    info = reg.get("signals", "tiger-test")
    assert (info.distribution, info.version) == ("fake-dh-plugin", "1.2.3")
    assert reg.signal("tiger-test").width == 16


def test_allowlist(fake_dist: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dist("fake-dh-plugin", "1.2.3",
              "[datahygiene.signals]\ntiger-test = fake_dh_plugin_mod:Tiger\n", PLUGIN_MODULE)
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "")
    reg = discover()
    assert "tiger-test" not in reg.names("signals")
    assert set(reg.names("signals")) >= BUILTIN_SIGNALS, "built-ins always load"
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "someone-else, fake-dh-plugin")
    assert "tiger-test" in discover().names("signals")
    # distribution names compare as pip does: case, '-', '_' and '.' are equivalent
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "Fake_DH.Plugin")
    assert "tiger-test" in discover().names("signals")


def test_allowlist_naming_nothing_installed_is_noted(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt name leaves its plugin out without a word otherwise."""
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "datahygiene-photdna")
    res = cli("plugins")
    assert "note: DATAHYGIENE_PLUGINS names datahygiene-photdna, which provide(s) no installed " \
        "plugin" in res.stderr
    monkeypatch.setenv("DATAHYGIENE_PLUGINS", "datahygiene")
    assert "note:" not in cli("plugins").stderr


def test_name_clash_is_a_plugin_error(fake_dist: Callable[..., None]) -> None:
    fake_dist("fake-clash", "0.1", "[datahygiene.signals]\nmd5 = fake_clash_mod:OtherMD5\n",
              PLUGIN_MODULE.replace("Tiger", "Tiger2"))
    with pytest.raises(PluginError) as exc:
        discover()
    msg = str(exc.value)
    assert "md5" in msg and "fake-clash" in msg and "datahygiene" in msg
    assert "DATAHYGIENE_PLUGINS" in msg
    # the allowlist is the way out
    assert "md5" in discover(allow={"datahygiene"}).names("signals")


def test_broken_plugin_names_itself(fake_dist: Callable[..., None]) -> None:
    fake_dist("fake-broken", "0.1", "[datahygiene.reporters]\nbroken = fake_broken_mod:Nope\n",
              "raise ImportError('missing optional dependency')\n")
    with pytest.raises(PluginError, match=r"reporters plugin 'broken' from fake-broken"):
        discover()


@pytest.mark.parametrize("group, target", [
    ("signals", "fake_broken_mod:NOT_A_CLASS"),  # not a class: was "'int' object is not callable"
    ("signals", "fake_broken_mod:Plain"),        # a class of no interface: "takes no arguments"
    ("services", "fake_broken_mod:Plain"),
    ("sources", "fake_broken_mod:OtherMD5"),     # another group's interface
])
def test_plugin_of_the_wrong_type_names_itself(cli: Any, fake_dist: Callable[..., None],
                                               synth: dict[str, Any], tmp_path: Path,
                                               group: str, target: str) -> None:
    """An entry point whose object is not a subclass of its group's interface is refused
    when discovered, naming it, instead of a traceback where the scan first uses it."""
    fake_dist("fake-broken", "0.1", f"[datahygiene.{group}]\nwrongtype = {target}\n",
              PLUGIN_MODULE + "\nNOT_A_CLASS = 42\n\nclass Plain:\n    pass\n")
    with pytest.raises(PluginError, match=rf"{group} plugin 'wrongtype' from fake-broken .* is not a "
                       "subclass of datahygiene"):
        discover()
    flag = {"signals": ["--list", f"wrongtype={synth['lists']['md5']}"],
            "services": ["--list", f"md5={synth['lists']['md5']}", "--service", "wrongtype"],
            "sources": ["--list", f"md5={synth['lists']['md5']}"]}[group]
    res = cli("scan", "--manifest", synth["manifest"], *flag, "--out", tmp_path / "out", "-q",
              ok=False, env={"DATAHYGIENE_PLUGINS": "fake-broken"})
    assert res.exit_code == 5, res.output
    assert "'wrongtype' from fake-broken" in res.output and "Traceback" not in res.output


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as exc:
        discover(allow={"datahygiene"}).get("signals", "nope")
    msg = str(exc.value)
    assert "unknown signal 'nope'" in msg
    assert all(n in msg for n in BUILTIN_SIGNALS)


def test_plugins_command(cli, fake_dist: Callable[..., None]) -> None:
    fake_dist("fake-dh-plugin", "1.2.3",
              "[datahygiene.signals]\ntiger-test = fake_dh_plugin_mod:Tiger\n", PLUGIN_MODULE)
    res = cli("plugins", env={"DATAHYGIENE_PLUGINS": "fake-dh-plugin"})
    lines = res.output.splitlines()
    assert lines[0].split() == ["kind", "name", "distribution", "version", "target"]
    rows = {tuple(line.split()[:4]) for line in lines[2:]}
    from datahygiene import __version__
    for name in BUILTIN_SIGNALS:
        assert ("signals", name, "datahygiene", __version__) in rows
    assert ("signals", "tiger-test", "fake-dh-plugin", "1.2.3") in rows
    assert ("sources", "file", "datahygiene", __version__) in rows
    data = json.loads(cli("plugins", "--json", env={"DATAHYGIENE_PLUGINS": ""}).output)
    assert {d["name"] for d in data if d["kind"] == "signals"} >= BUILTIN_SIGNALS
    assert all(d["distribution"] == "datahygiene" for d in data
               if d["name"] == "tiger-test") and not any(d["name"] == "tiger-test" for d in data)


def test_a_clash_with_the_same_target_is_still_a_clash(fake_dist: Callable[..., None]) -> None:
    """Another distribution registering a taken name is a clash even where its entry point
    names the same object: it was accepted without a word, and `datahygiene plugins`
    showed the name as the first distribution's alone."""
    fake_dist("fake-clash", "0.1", "[datahygiene.signals]\nmd5 = datahygiene.signals.exact:MD5\n")
    with pytest.raises(PluginError) as exc:
        discover()
    msg = str(exc.value)
    assert "'md5' is registered twice" in msg and "fake-clash" in msg and "by datahygiene" in msg
