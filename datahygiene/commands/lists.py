"""``datahygiene lists ...``: inspect list files without ever printing a value."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from datahygiene.commands.common import starting
from datahygiene.commands.scan import parse_list_option
from datahygiene.errors import ConfigError
from datahygiene.plugins import default_registry

if TYPE_CHECKING:
    from datahygiene.lists.model import HashList


def describe_for_humans(hl: HashList) -> list[tuple[str, str]]:
    st = hl.stats
    rows = [
        ("list", hl.id),
        ("source", hl.source),
        ("signal", hl.signal),
        ("entries", f"{len(hl):,} unique"),
        ("duplicates", f"{st.get('duplicates', 0):,} (counted once)"),
        ("fingerprint", hl.fingerprint),
    ]
    if "lines" in st:
        rows.append(("lines", f"{st['lines']:,} ({st.get('comment_or_blank_lines', 0):,} "
                              "comments or blank)"))
    if hl.threshold is not None:
        rows.append(("threshold", str(hl.threshold)))
    bad = st.get("skipped_bad_entries", 0)
    if bad:
        where = st.get("bad_entry_lines") or st.get("bad_entry_rows") or []
        unit = "line" if "bad_entry_lines" in st else "row"
        reasons = ", ".join(f"{k} {v:,}" for k, v in st.get("bad_entry_reasons", {}).items())
        noun = "entry" if bad == 1 else "entries"
        rows.append(("problems", f"{bad:,} bad {noun} ({reasons}); first at {unit}(s) "
                                 + ", ".join(map(str, where))))
    else:
        rows.append(("problems", "none"))
    return rows


def register(group: click.Group) -> None:
    @group.group("lists")
    def lists_group() -> None:
        """Work with hash lists. No command here ever prints a list value."""

    @lists_group.command("inspect")
    @click.argument("listfile", metavar="[SIGNAL=]LISTFILE")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("--store", "store_dir", type=click.Path(file_okay=False),
                  help="For store:NAME[@N]: the list store directory [default: "
                       "$DATAHYGIENE_STORE, else ~/.local/share/datahygiene/store].")
    def inspect_cmd(listfile: str, as_json: bool, store_dir: str | None) -> None:
        """Show a list's identity, signal types, entry count, fingerprint and problems.

        LISTFILE is a list file, or store:NAME[@N] for a snapshot in the list store.
        The fingerprint is the one run.json records for the list (per signal type).
        Bad entries are counted and located by line number; the command exits 4 when
        there are any, so it can gate a pipeline. Values are never printed.
        """
        with starting():  # what loading a list needs (numba, pyarrow: half a second)
            import datahygiene.lists.files  # noqa: F401
        spec = replace(parse_list_option(listfile), on_bad_entry="skip")
        if store_dir is not None:
            if spec.source != "store":
                raise ConfigError(f"--store applies to store:NAME lists, not to {listfile}")
            spec = replace(spec, options={**dict(spec.options), "store": store_dir})
        registry = default_registry()
        source = registry.get("sources", spec.source).obj()
        lists = source.load(spec, registry)
        problems = sum(hl.stats.get("skipped_bad_entries", 0) for hl in lists)
        if as_json:
            out: list[dict[str, Any]] = [hl.describe() for hl in lists]
            click.echo(json.dumps(out, indent=2, sort_keys=True))
        else:
            for i, hl in enumerate(lists):
                if i:
                    click.echo()
                rows = describe_for_humans(hl)
                w = max(len(k) for k, _ in rows)
                for k, v in rows:
                    click.echo(f"{k.ljust(w)}  {v}")
        if problems:
            raise SystemExit(4)
