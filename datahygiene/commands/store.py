"""``datahygiene lists import|sync|stored|keygen``: the local list store from the CLI.

Added to the ``lists`` group defined in :mod:`datahygiene.commands.lists`. Like every
``lists`` command, none of these ever prints a list value: only names, versions,
counts and fingerprints.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datahygiene.commands.common import echo_table, imported, interactive, starting
from datahygiene.commands.scan import parse_list_option
from datahygiene.errors import ConfigError, ListError
from datahygiene.plugins import default_registry

if TYPE_CHECKING:
    from datahygiene.lists.model import HashList
    from datahygiene.lists.spec import ListSpec
    from datahygiene.plugins import Registry
    from datahygiene.store.snapshots import ListStore

# This module is imported for `datahygiene lists --help` too: the store's modules (numba,
# pyarrow, cryptography: half a second) are imported when a command runs (SNAPSHOTS).
# datahygiene.store.snapshots.DEFAULT_KEY_ENV, for the options' help (a test checks it)
DEFAULT_KEY_ENV = "DATAHYGIENE_STORE_KEY"


SNAPSHOTS = "datahygiene.store.snapshots"


STORE_HELP = "List store directory [default: $DATAHYGIENE_STORE, else ~/.local/share/datahygiene/store]."


def _key_ref(key_file: str | None, key_env: str | None) -> dict[str, str]:
    if key_file and key_env:
        raise ConfigError("give --key-file or --key-env, not both")
    if key_file:
        return {"file": str(Path(key_file).resolve())}
    return {"env": key_env or DEFAULT_KEY_ENV}


def _store_options(f: Any) -> Any:
    f = click.option("--key-env", metavar="NAME",
                     help=f"When creating the store: environment variable holding its key "
                          f"[default: {DEFAULT_KEY_ENV}].")(f)
    f = click.option("--key-file", type=click.Path(dir_okay=False), metavar="PATH",
                     help="When creating the store: key file (see `lists keygen`).")(f)
    return click.option("--store", "store_dir", type=click.Path(file_okay=False), help=STORE_HELP)(f)


def _open_store(store_dir: str | None, key_file: str | None, key_env: str | None) -> ListStore:
    """Open the store, creating it with the given key if there is none. An existing
    store's key is the one its store.toml names: say so rather than ignore the option."""
    ref = _key_ref(key_file, key_env)
    root = Path(store_dir) if store_dir is not None else imported(SNAPSHOTS).default_store_root()
    if (key_file or key_env) and (root / "store.toml").is_file():
        click.echo(f"note: {root} exists; its key is the one its store.toml names "
                   "(--key-file and --key-env are used only when creating a store)", err=True)
    return imported(SNAPSHOTS).ListStore.open(store_dir, create=True, key_ref=ref)


def _load_sync_config(path: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: sync config not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return data


def _import(store: ListStore, name: str, lists: list[HashList], spec: ListSpec, registry: Registry,
            allow_signal_change: bool) -> tuple[dict[str, Any], bool]:
    """Store ``lists`` as NAME's next snapshot (under its write lock, held by the caller)."""
    from datahygiene.store.source import build_scan_index, hashlists_to_entries

    previous = store.index(name)["snapshots"]
    if previous:
        held = set(previous[-1]["signals"])
        dropped = sorted(held - {hl.signal for hl in lists if len(hl)})
        if dropped and not allow_signal_change:
            raise ConfigError(
                f"{name}: snapshot {previous[-1]['version']} holds {', '.join(sorted(held))}; "
                f"this list has no {', '.join(dropped)}, so a scan with --list store:{name} "
                "would stop checking it. Store it under another --name, or pass "
                "--allow-signal-change if the partner dropped that signal")
    first = lists[0].identity
    skipped = sum(int(hl.stats.get("skipped_bad_entries", 0)) for hl in lists)
    meta = {"source": spec.source, "partner": first.partner, "upstream_name": first.name,
            "upstream_version": first.version,
            "retrieved_at": first.retrieved_at,
            **({"skipped_bad_entries": skipped} if skipped else {})}
    if skipped:  # the store keeps what parsed; say what it does not hold
        click.echo(f"note: {skipped:,} bad entr{'y' if skipped == 1 else 'ies'} skipped "
                   "(on_bad_entry = skip) and not stored; scans of this snapshot record "
                   "the count", err=True)
    record, new = store.write_snapshot(name, hashlists_to_entries(lists), meta,
                                       scan_index=build_scan_index(registry))
    if not new:
        # "unchanged" must mean the snapshot is there and opens: scans read its index,
        # so a lost or damaged snapshot would otherwise go unnoticed until needed
        store.read_snapshot(name, int(record["version"]))
    return record, new


def register(group: click.Group) -> None:
    lists_group = group.commands["lists"]
    assert isinstance(lists_group, click.Group)

    @lists_group.command("import")
    @click.argument("source", metavar="[SIGNAL=]LISTFILE")
    @click.option("--name", required=True, help="Name to store the list under (letters, digits, . _ -).")
    @click.option("--allow-signal-change", is_flag=True,
                  help="Store the list even though it lacks a signal type the latest snapshot of "
                       "NAME holds (scans of store:NAME would stop checking that signal).")
    @_store_options
    def import_cmd(source: str, name: str, store_dir: str | None, key_file: str | None,
                   key_env: str | None, allow_signal_change: bool) -> None:
        """Import a list file into the encrypted local store as a new snapshot.

        The list is parsed and normalised exactly as a scan would (metadata from
        LISTFILE.meta.toml when present); the store keeps it encrypted, owner-only, and
        as a new numbered snapshot only if its content changed. Scan it with
        --list store:NAME or --list store:NAME@VERSION.
        """
        imported(SNAPSHOTS).check_name(name)
        spec = parse_list_option(source)
        registry = default_registry()
        lists = registry.get("sources", spec.source).obj().load(spec, registry)
        store = _open_store(store_dir, key_file, key_env)
        with store.writing(name):  # the signal check and the write see the same latest snapshot
            record, new = _import(store, name, lists, spec, registry, allow_signal_change)
        what = "stored as" if new else "unchanged; latest is"
        click.echo(f"{name}: {what} snapshot {record['version']} ({record['fingerprints']:,} "
                   f"entries; {', '.join(record['signals'])}; snapshot digest {record['fingerprint']})")
        # the digest run.json records for each list is the per-signal one (as `lists
        # inspect` prints it), not the snapshot's: show both, so the two can be matched
        for hl in lists:
            click.echo(f"  {hl.signal}: list fingerprint {hl.fingerprint} ({len(hl):,} unique)")

    @lists_group.command("sync")
    @click.argument("name")
    @click.option("--source", "source_name", metavar="PLUGIN",
                  help="List source plugin that syncs this list (e.g. ncmec); needed the first time.")
    @click.option("--config", "config_path", type=click.Path(dir_okay=False),
                  help="TOML with the source's settings (credentials by reference only); needed the "
                       "first time, remembered after.")
    @click.option("-q", "--quiet", is_flag=True, help="No per-window progress on a terminal.")
    @_store_options
    def sync_cmd(name: str, source_name: str | None, config_path: str | None, store_dir: str | None,
                 key_file: str | None, key_env: str | None, quiet: bool) -> None:
        """Bring a stored list up to date from its partner service.

        Fetches what changed since the last completed time window, applies updates and
        deletions, and stores a new snapshot when the content changed. An interrupted
        sync keeps every completed window; running it again resumes from there.
        """
        imported(SNAPSHOTS).check_name(name)
        registry = default_registry()
        store = _open_store(store_dir, key_file, key_env)
        if source_name or config_path:
            if not (source_name and config_path):
                raise ConfigError("give --source and --config together")
            registry.get("sources", source_name)
            store.set_sync_config(name, source_name, _load_sync_config(config_path))
        show = interactive(quiet)
        from datahygiene.store.sync import sync_list

        result = sync_list(store, name, registry,
                           progress=(lambda note: click.echo(f"{name}: {note}", err=True)) if show else None)
        state = "new snapshot" if result.new_snapshot else "no change; latest snapshot"
        click.echo(f"{name}: {result.windows} window(s) fetched, {result.updates:,} update(s), "
                   f"{result.deletions:,} deletion(s); {state} {result.version} holds "
                   f"{result.entries:,} entries")
        bad = {k: v for k, v in result.normalize_stats.items() if k.startswith("bad_values:")}
        if bad:
            click.echo("skipped fingerprints that did not parse: "
                       + ", ".join(f"{k.split(':', 1)[1]} ({v:,})" for k, v in sorted(bad.items())))

    @lists_group.command("stored")
    @click.argument("name", required=False)
    @click.option("--store", "store_dir", type=click.Path(file_okay=False), help=STORE_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def stored_cmd(name: str | None, store_dir: str | None, as_json: bool) -> None:
        """List stored lists and their snapshots: versions, counts, digests (never values).

        "hashes" counts the stored hash values per signal type; "snapshot digest" is
        the digest of the whole snapshot (the per-signal list fingerprints that run.json
        records are shown by `lists inspect store:NAME@N`). "scan index" says whether a
        snapshot has the index scans load quickly; re-import an unchanged list to add
        one to a snapshot written before indexes existed."""
        snapshots = imported(SNAPSHOTS)
        store = snapshots.ListStore.open(store_dir)
        names = [snapshots.check_name(name)] if name else store.names()
        if name and name not in store.names():
            known = ", ".join(store.names()) or "none"
            raise ListError(f"{store.root}: no stored list {name!r} (stored: {known})")
        data = {n: store.index(n) for n in names}
        if as_json:
            click.echo(json.dumps(data, indent=2, sort_keys=True))
            return
        rows = []
        for n, idx in data.items():
            sync = idx.get("sync", {}).get("source", "-")
            for s in idx["snapshots"]:
                if not (store.list_dir(n) / s["file"]).is_file():
                    raise ListError(f"{store.list_dir(n) / s['file']}: snapshot {s['version']} of "
                                    f"{n} is missing from the store")
                rows.append((n, s["version"], s["created_at"], f"{s['entries']:,}",
                             " ".join(f"{k}:{v:,}" for k, v in s["signals"].items()) or "-",
                             s["origin"].get("source", sync), "yes" if s.get("scan_index") else "no",
                             s["fingerprint"]))
        if not rows:
            click.echo(f"{store.root}: no stored lists")
            return
        echo_table(rows, ("list", "snapshot", "created", "entries", "hashes", "source",
                          "scan index", "snapshot digest"))

    @lists_group.command("keygen")
    @click.argument("path", type=click.Path(dir_okay=False))
    def keygen_cmd(path: str) -> None:
        """Write a new random store key to PATH (owner-only; never overwrites)."""
        with starting():
            from datahygiene.store.crypto import write_key_file
        write_key_file(Path(path))
        click.echo(f"wrote a new store key to {path} (mode 600); keep a copy somewhere safe: "
                   "snapshots cannot be opened without it")
