"""``datahygiene plugins``: what was discovered, from which distribution."""

from __future__ import annotations

import json

import click

from datahygiene.commands.common import echo_table
from datahygiene.plugins import ALLOWLIST_ENV, allowlist, canonical_name, discover


def register(group: click.Group) -> None:
    @group.command("plugins")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def plugins_cmd(as_json: bool) -> None:
        """List every discovered plugin: kind, name, distribution and version.

        When DATAHYGIENE_PLUGINS is set (comma-separated distribution names), only those
        distributions' plugins load; the built-ins always do."""
        reg = discover()
        rows = [(p.kind, p.name, p.distribution, p.version, p.target) for p in reg.all()]
        if as_json:
            click.echo(json.dumps([dict(zip(("kind", "name", "distribution", "version",
                                             "target"), r, strict=True)) for r in rows], indent=2))
            return
        echo_table(rows, ("kind", "name", "distribution", "version", "target"))
        allowed = allowlist()
        if allowed is not None:
            found = {canonical_name(p.distribution) for p in reg.all()}
            idle = sorted(allowed - found)
            if idle:  # most often a misspelt name, which silently leaves a plugin out
                click.echo(f"note: {ALLOWLIST_ENV} names {', '.join(idle)}, which provide(s) no "
                           "installed plugin", err=True)
