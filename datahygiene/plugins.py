"""Plugin discovery through entry points, built by a function (never at import time).

Built-in signal types and list sources register through the same entry points as
third-party plugins (see pyproject.toml), so the core has no privileged path and a
plugin author can see exactly how the built-ins are wired.

``DATAHYGIENE_PLUGINS`` is an allowlist of distribution names (comma-separated). When
set, only plugins from those distributions load, plus the core ``datahygiene``
distribution itself. Set it to an empty string to load the built-ins alone.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from datahygiene.errors import ConfigError, PluginError

GROUPS: dict[str, str] = {
    "signals": "datahygiene.signals",
    "sources": "datahygiene.sources",
    "services": "datahygiene.services",
    "reporters": "datahygiene.reporters",
}
# the interface (module, class) each group's objects must subclass; imported when
# discovering, as sources/base.py imports this module
INTERFACES: dict[str, tuple[str, str]] = {
    "signals": ("datahygiene.signals.base", "SignalType"),
    "sources": ("datahygiene.sources.base", "ListSource"),
    "services": ("datahygiene.services.base", "MatchService"),
    "reporters": ("datahygiene.reporters.base", "Reporter"),
}
CORE_DISTRIBUTION = "datahygiene"
ALLOWLIST_ENV = "DATAHYGIENE_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    target: str
    distribution: str
    version: str
    obj: Any = field(compare=False, repr=False)


@dataclass
class Registry:
    """Plugins found, by kind then name."""

    plugins: dict[str, dict[str, PluginInfo]] = field(
        default_factory=lambda: {kind: {} for kind in GROUPS}
    )

    def add(self, info: PluginInfo) -> None:
        kind = self.plugins.setdefault(info.kind, {})
        other = kind.get(info.name)
        # the same entry point seen twice (a distribution found on two sys.path entries)
        # is one plugin; another distribution's is a clash even if it names the same object
        if other is not None and (other.target != info.target or canonical_name(
                other.distribution) != canonical_name(info.distribution)):
            raise PluginError(
                f"{info.kind} plugin name {info.name!r} is registered twice: by "
                f"{other.distribution} ({other.target}) and by {info.distribution} ({info.target}); "
                f"uninstall one or exclude it with {ALLOWLIST_ENV}"
            )
        kind[info.name] = info

    def names(self, kind: str) -> list[str]:
        return sorted(self.plugins.get(kind, {}))

    def get(self, kind: str, name: str) -> PluginInfo:
        try:
            return self.plugins[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none"
            singular = kind.rstrip("s")
            raise ConfigError(f"unknown {singular} {name!r}; known: {known}") from None

    def signal(self, name: str, **config: Any) -> Any:
        """A configured signal-type instance (``threshold=``, ``options=``)."""
        cls = self.get("signals", name).obj
        sig = cls(**config)
        check = getattr(sig, "check_options", None)
        if check is not None:
            check()
        return sig

    def all(self) -> Iterable[PluginInfo]:
        for kind in GROUPS:
            yield from (self.plugins[kind][n] for n in self.names(kind))


def canonical_name(name: str) -> str:
    """A distribution name as pip compares it (PEP 503): case and runs of ``-_.`` do not
    matter, so ``My_Plugin`` in the allowlist admits the ``my-plugin`` distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def allowlist() -> set[str] | None:
    raw = os.environ.get(ALLOWLIST_ENV)
    if raw is None:
        return None
    return {canonical_name(p.strip()) for p in raw.split(",") if p.strip()} | {CORE_DISTRIBUTION}


def discover(allow: set[str] | None = None) -> Registry:
    """Find every installed plugin in every group and load it."""
    allowed = {canonical_name(a) for a in allow} if allow is not None else allowlist()
    registry = Registry()
    # one pass over the installed distributions for every group, and each plugin
    # distribution's metadata parsed once (``Distribution.name`` and ``.version`` parse
    # it again on every access): 3 ms where a pass per group and two parses per entry
    # point took 11 ms, on every command
    found = metadata.entry_points()
    facts: dict[str, tuple[str, str]] = {}
    for kind, group in GROUPS.items():
        for ep in sorted(found.select(group=group), key=lambda e: (e.name, e.value)):
            dist, version = _distribution(ep, facts)
            if allowed is not None and canonical_name(dist) not in allowed:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must say which one
                raise PluginError(
                    f"{kind} plugin {ep.name!r} from {dist} failed to load ({ep.value}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            module, cls_name = INTERFACES[kind]
            base = getattr(importlib.import_module(module), cls_name)
            if not (isinstance(obj, type) and issubclass(obj, base)):
                raise PluginError(
                    f"{kind} plugin {ep.name!r} from {dist} ({ep.value}) is not a subclass of "
                    f"{module}.{cls_name}; uninstall it or exclude it with {ALLOWLIST_ENV}"
                )
            registry.add(PluginInfo(kind, ep.name, ep.value, dist, version, obj))
    return registry


def _distribution(ep: metadata.EntryPoint, facts: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """The name and version of the distribution an entry point comes from, from
    ``facts`` (by the distribution's location) when already read."""
    d = ep.dist
    if d is None:
        return "unknown", "unknown"
    where = str(getattr(d, "_path", id(d)))
    if where not in facts:
        meta = d.metadata
        facts[where] = (meta["Name"], meta["Version"])
    return facts[where]


_CACHE: dict[tuple[str | None], Registry] = {}


def default_registry() -> Registry:
    """The registry for the current allowlist, discovered on first use."""
    key = (os.environ.get(ALLOWLIST_ENV),)
    if key not in _CACHE:
        _CACHE[key] = discover()
    return _CACHE[key]
