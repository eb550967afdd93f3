"""``datahygiene scan``: check manifests against lists and write the run directory."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datahygiene.allocator import freeze_startup_objects
from datahygiene.commands.common import echo_table, progress_bar, split_pair, starting
from datahygiene.errors import ConfigError, InterruptedAfterCommit, note_committed

if TYPE_CHECKING:
    from datahygiene.config import ScanConfig
    from datahygiene.lists.spec import ListSpec
    from datahygiene.scan import ScanResult

# This module is imported for `datahygiene scan --help` too: what a scan needs (pyarrow,
# numba, the engine: most of a second) is imported when the scan starts.


def parse_list_option(text: str) -> ListSpec:
    """``SIGNAL=PATH`` or just ``PATH`` (signal from the sidecar or a signal column).
    A path ``store:NAME[@VERSION]`` names a snapshot in the local list store."""
    from datahygiene.lists.spec import ListSpec

    name, sep, value = text.partition("=")
    if not text.strip() or (sep and name and not value.strip()):
        raise ConfigError(f"--list {text}: no list file named (give --list SIGNAL=PATH)")
    if sep and name and "/" not in name and "\\" not in name:
        if value.startswith("store:"):
            return ListSpec(path=value[len("store:"):], signal=name.strip(), source="store")
        return ListSpec(path=value, signal=name.strip())
    if text.startswith("store:"):
        return ListSpec(path=text[len("store:"):], source="store")
    return ListSpec(path=text)


def build_config(config_path: str | None, overrides: dict[str, Any]) -> ScanConfig:
    from datahygiene.config import ScanConfig, load_config

    cfg = load_config(config_path) if config_path else ScanConfig()
    if overrides["manifest"]:
        cfg.manifests = list(overrides["manifest"])
    if overrides["lists"]:
        cfg.lists = [parse_list_option(t) for t in overrides["lists"]]
    for key in ("out", "key", "batch_size", "threads", "engine", "keys", "ray_address",
                "input_digest"):
        if overrides.get(key) is not None:
            setattr(cfg, key, overrides[key])
    if overrides.get("resume"):
        cfg.resume = True
    for flag in ("write_clean", "keep_unverified", "check_keys"):  # --x / --no-x, unset: config's
        if overrides.get(flag) is not None:
            setattr(cfg, flag, overrides[flag])
    for text in overrides["column"]:
        sig, col = split_pair(text, "--column")
        cfg.columns[sig] = col
        cfg.file_columns.discard(sig)
    if overrides.get("service"):
        cfg.services = list(overrides["service"])
    for key in ("image_column", "image_path_column", "hash_workers"):
        if overrides.get(key) is not None:
            setattr(cfg, key, overrides[key])
    for key in ("webdataset", "compute"):
        if overrides.get(key):
            setattr(cfg, key, list(overrides[key]))
    if overrides.get("dihedral"):
        cfg.dihedral = True
    cfg.expand_user()
    if cfg.webdataset and not cfg.manifests:
        from datahygiene.content import shard_manifests

        cfg.manifests = shard_manifests(cfg.webdataset)
    for text in overrides.get("on_bad_entry") or ():
        cfg.lists = [replace(s, on_bad_entry=text, explicit=s.explicit | {"on_bad_entry"})
                     for s in cfg.lists]
    return cfg


def print_result(result: ScanResult) -> None:
    s = result.summary
    rows = s["rows"]
    click.echo(f"scanned {rows['scanned']:,} rows in {s['files']} file(s): "
               f"{rows['clean']:,} clean, {rows['excluded']:,} excluded, "
               f"{rows['unverified']:,} unverified")
    if s["lists"]:
        echo_table([(lid, v.get("signal", ""), f"{v.get('entries', 0):,}", f"{v['matches']:,}",
                     f"{v['rows']:,}") for lid, v in s["lists"].items()],
                   ("list", "signal", "entries", "matches", "rows"))
    for hl in result.run.get("lists", []):
        skipped = hl.get("stats", {}).get("skipped_bad_entries", 0)
        if skipped:
            click.echo(f"note: list {hl['id']} ({hl['signal']}): {skipped:,} bad "
                       f"entr{'y' if skipped == 1 else 'ies'} skipped (on_bad_entry = skip; "
                       "run.json's list stats say which lines)", err=True)
        elif not hl.get("entries"):
            click.echo(f"note: list {hl['id']} ({hl['signal']}) has no entries: nothing can match it",
                       err=True)
    key = result.run.get("key") or {}
    if key.get("null_rows"):
        click.echo(f"note: {key['null_rows']:,} row(s) have no key (column {key['column']!r} is "
                   "null there): the outputs name them FILE:ROW", err=True)
    elif key.get("column") and key.get("null_rows", 0) is None:
        click.echo(f"note: rows without a key (column {key['column']!r} null) were not counted: "
                   "the inputs' footers have no statistics; any are named FILE:ROW", err=True)
    if rows["unverified"]:
        # the reasons of the unverified rows alone (summary.json counts them over every
        # flagged row: an excluded row may have a null URL too)
        import pyarrow.compute as pc

        ex = result.exclusions
        unv = ex.filter(pc.equal(ex.column("decision"), "unverified")).column("reasons")
        counts = pc.value_counts(pc.list_flatten(unv.combine_chunks())).to_pylist() if len(unv) else []
        reasons = ", ".join(f"{c['values']} ({c['counts']:,})"
                            for c in sorted(counts, key=lambda c: c["values"]))
        where = ("are kept in the clean output (--keep-unverified)"
                 if result.run["config"].get("keep_unverified") else "are not in the clean output")
        click.echo(f"unverified rows were not checked and {where}: {reasons}")
    out = result.out
    click.echo(f"outputs in {out}/: run.json, summary.json, restricted/exclusions.parquet"
               + (", clean/" if result.run["outputs"]["clean"] else ""))


def register(group: click.Group) -> None:
    @group.command("scan")
    @click.option("--config", "config_path", type=click.Path(dir_okay=False),
                  help="TOML file describing the scan (see configs/); options below override it.")
    @click.option("--manifest", multiple=True, metavar="PATH",
                  help="Parquet file, directory (searched recursively) or glob; local or fsspec URL. "
                       "Repeatable.")
    @click.option("--list", "lists", multiple=True, metavar="SIGNAL=LISTFILE",
                  help="A hash list and the signal it holds (md5, sha1, sha256, url-md5, url-sha1, "
                       "url-sha256, or a plugin's). Repeatable. Metadata (partner, name, version) "
                       "comes from LISTFILE.meta.toml if present.")
    @click.option("--out", type=click.Path(file_okay=False), help="Run directory to write.")
    @click.option("--key", metavar="COLUMN",
                  help="Column that identifies a row [default: 'key' if present, else FILE:ROW; "
                       "--key '' for FILE:ROW even so].")
    @click.option("--column", multiple=True, metavar="SIGNAL=COLUMN",
                  help="Column holding a signal [default: the signal's own name; 'url' for URL "
                       "digests]. Repeatable.")
    @click.option("--service", multiple=True, metavar="NAME",
                  help="Also ask a matching service (e.g. photodna) about each row's image; "
                       "credentials from the environment. Repeatable.")
    @click.option("--image-column", metavar="COLUMN",
                  help="Column holding image bytes (binary, or a struct with 'bytes'): sent to "
                       "--service [default there: image], and hashed for perceptual lists (pdq) "
                       "when given.")
    @click.option("--image-path-column", metavar="COLUMN",
                  help="Column of image paths or fsspec URLs to hash (e.g. for --list pdq=...).")
    @click.option("--webdataset", multiple=True, metavar="GLOB",
                  help="Tar shards of img2dataset's webdataset output; rows of the sidecar parquet "
                       "(the manifest, found beside each shard if --manifest is not given) are "
                       "joined to images by key. Repeatable.")
    @click.option("--compute", multiple=True, metavar="SIGNAL",
                  help="Compute this signal from the images [default: perceptual signals (pdq) "
                       "with a list and no --column]. Repeatable.")
    @click.option("--dihedral", is_flag=True,
                  help="Also match rotated and flipped copies (all 8 PDQ dihedral hashes).")
    @click.option("--hash-workers", type=click.IntRange(min=0), default=None,
                  help="Processes hashing images, 0 for one per core [default: 0]. Does not "
                       "change results.")
    @click.option("--write-clean/--no-write-clean", default=None,
                  help="Also write clean/: each input minus excluded and unverified rows.")
    @click.option("--keep-unverified/--no-keep-unverified", default=None,
                  help="Keep unverified rows in clean/ (not recommended: they were not checked).")
    @click.option("--check-keys/--no-check-keys", default=None,
                  help="After the scan, read the key column again and refuse the run if a flagged "
                       "row's key also names another row (then the exclusion log could not tell "
                       "them apart) [default: on with --keys].")
    @click.option("--on-bad-entry", type=click.Choice(["fail", "skip"]), multiple=False,
                  default=None, help="What to do with a list entry that does not parse "
                                     "[default: fail, naming the line].")
    @click.option("--batch-size", type=click.IntRange(min=1), default=None,
                  help="Rows per batch [default: 262144]. Does not change results.")
    @click.option("--threads", type=click.IntRange(min=0), default=None,
                  help="Worker threads, 0 for one per core [default: 0; 8 at least when every "
                       "input is remote and there is no --write-clean]. Does not change results.")
    @click.option("--engine", type=click.Choice(["local", "ray"]), default=None,
                  help="Execution engine [default: local]. 'ray' needs the ray extra: "
                       "pip install 'datahygiene[ray]'. Does not change results.")
    @click.option("--ray-address", metavar="ADDR", default=None,
                  help="Ray cluster to run on with --engine ray (e.g. ray://head:10001, or 'auto') "
                       "[default: start a local Ray].")
    @click.option("--input-digest", type=click.Choice(["sha256", "blake3"]), default=None,
                  help="Digest of each input file, recorded in run.json as coverage evidence "
                       "[default: sha256, which sources publish (Hugging Face LFS ids), so an "
                       "auditor can compare without downloading]. blake3: a third of the CPU.")
    @click.option("--resume", is_flag=True,
                  help="Continue the run a crash or Ctrl-C interrupted in --out, skipping inputs it "
                       "finished; refused if the lists, inputs or configuration changed.")
    @click.option("--keys", type=click.Path(file_okay=False), default=None, metavar="KEYDIR",
                  help="Keys from `datahygiene keys init`: commit excluded rows to the signed log "
                       "(OUT/public/) and sign the checkpoint and attestation.")
    @click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
    def scan_cmd(config_path: str | None, quiet: bool, **opts: Any) -> None:
        """Scan parquet manifests against hash lists.

        Writes OUT/run.json (configuration, list identities and fingerprints, input
        digests), OUT/summary.json (counts), OUT/restricted/exclusions.parquet (one row per
        excluded or unverified row; owner-only) and, with --write-clean, OUT/clean/.

        A row whose hash is missing or malformed is 'unverified', never clean.

        \b
        Example:
          datahygiene scan --manifest data/ --list md5=lists/partner-md5.txt \\
              --out runs/2026-11 --write-clean
        """
        with starting():
            from datahygiene.scan import COMMITTED_NOTE, run_scan
        opts["on_bad_entry"] = [opts["on_bad_entry"]] if opts.get("on_bad_entry") else []
        opts["manifest"] = opts.pop("manifest")
        cfg = build_config(config_path, opts)
        if cfg.keys:  # fail before scanning, not after
            from datahygiene.audit.keys import load_keydir

            load_keydir(cfg.keys)
        before = _list_versions(Path(cfg.out or "") / "run.json")
        freeze_startup_objects()
        result: ScanResult | None = None
        try:
            with progress_bar(quiet) as bar:
                result = run_scan(cfg, progress=bar.advance, on_start=bar.start,
                                  on_footers=bar.footers)
                note_committed(COMMITTED_NOTE.format(out=result.out))
            _report(result, before)
        except KeyboardInterrupt:
            if result is None:  # (run_scan says itself when it had committed)
                raise
            # the run is committed: a Ctrl-C while the progress bar closes or the
            # result is printed must not say otherwise
            raise InterruptedAfterCommit(COMMITTED_NOTE.format(out=result.out)) from None

    def _report(result: ScanResult, before: dict[str, str]) -> None:
        print_result(result)
        after = _list_versions(Path(result.out) / "run.json")
        for name, version in sorted(after.items()):
            if name in before and before[name] != version:
                click.echo(f"note: list {name} is version {version}; the previous run in OUT used "
                           f"version {before[name]} (its outputs are replaced)", err=True)
        if not result.run.get("evidence", {}).get("signed"):
            public = Path(result.out) / "public"
            earlier = [p for p in ("log", "checkpoint", "attestation.dsse.json") if (public / p).exists()]
            if earlier:
                click.echo(f"note: no evidence was signed for this run (no --keys); OUT/public/ still "
                           f"holds an earlier run's {', '.join(earlier)}, which do not describe this "
                           "run (verify reports this run as unsigned)", err=True)
            else:
                click.echo("note: no evidence was signed (no --keys): OUT/public/ has no log, "
                           "checkpoint or attestation", err=True)


def _list_versions(run_json: Path) -> dict[str, str]:
    """``partner/name (signal)`` -> version of each list a run.json names; empty when
    there is no readable run.json (a first run)."""
    try:
        run = json.loads(run_json.read_text())
        return {f"{hl['partner']}/{hl['name']} ({hl['signal']})": str(hl["version"])
                for hl in run["lists"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
