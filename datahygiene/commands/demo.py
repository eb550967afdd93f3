"""``datahygiene demo``: the whole job end to end on embedded synthetic data."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from datahygiene.commands.common import progress_bar, starting
from datahygiene.commands.scan import print_result
from datahygiene.errors import ConfigError, DatahygieneError


def _clear_previous_input(path: Path) -> None:
    """Remove the inputs a previous demo wrote here; refuse anything else of that name:
    ``demo --out .`` must not delete a user's own ``./input``."""
    if not path.exists() and not path.is_symlink():
        return
    names = {p.name for p in path.iterdir()} if path.is_dir() and not path.is_symlink() else set()
    if "planted.json" not in names or not names <= {"manifest", "lists", "planted.json"}:
        raise ConfigError(f"{path} exists and is not an earlier demo's input (the demo replaces "
                          "it on each run); give another --out")
    shutil.rmtree(path)


def register(group: click.Group) -> None:
    @group.command("demo")
    @click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False),
                  help="Directory for the synthetic inputs (input/, replaced on each run) and the "
                  "run (run/).")
    @click.option("--rows", type=click.IntRange(min=1), default=200_000, show_default=True,
                  help="Rows of the synthetic manifest to generate and scan.")
    @click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
    def demo_cmd(out: str, rows: int, quiet: bool) -> None:
        """Generate a synthetic manifest with planted matches, scan it, and check that
        exactly the planted rows were excluded and those with a null md5 held back."""
        if not out:  # an unset shell variable: it would replace ./input and ./run
            raise ConfigError("--out is empty; give a directory ('.' for the working directory)")
        with starting():
            import pyarrow.parquet as pq

            from datahygiene.config import ScanConfig
            from datahygiene.lists.spec import ListSpec
            from datahygiene.scan import EXCLUSIONS, run_scan
            from datahygiene.synth import SynthSpec, write_synthetic
        base = Path(out)
        _clear_previous_input(base / "input")
        click.echo(f"1. writing a synthetic manifest ({rows:,} rows) and placeholder lists "
                   f"to {base / 'input'}")
        truth = write_synthetic(base / "input", SynthSpec(rows=rows, files=4, list_size=50_000,
                                                          planted=40, malformed=7, url_list=True))
        cfg = ScanConfig(
            manifests=[str(base / "input" / "manifest")],
            lists=[ListSpec(path=truth["lists"]["md5"]),
                   ListSpec(path=truth["lists"]["url-sha256"])],
            out=str(base / "run"), write_clean=True)
        click.echo("2. scanning it against the md5 and url-sha256 lists")
        with progress_bar(quiet) as bar:
            result = run_scan(cfg, progress=bar.advance, on_start=bar.start)
        print_result(result)
        click.echo("3. checking the result against the planted ground truth")
        ex = pq.read_table(base / "run" / EXCLUSIONS).to_pydict()
        got_ex = {k for k, d in zip(ex["key"], ex["decision"], strict=True) if d == "excluded"}
        got_un = {k for k, d in zip(ex["key"], ex["decision"], strict=True) if d == "unverified"}
        want_ex, want_un = set(truth["planted_keys"]), set(truth["malformed_keys"])
        if got_ex != want_ex or got_un != want_un:
            raise DatahygieneError(
                f"demo mismatch: excluded {len(got_ex)} (want {len(want_ex)}), "
                f"unverified {len(got_un)} (want {len(want_un)})")
        clean_rows = sum(c["rows"] for c in result.run["outputs"]["clean"])
        click.echo(f"   ok: all {len(want_ex)} planted rows excluded, {len(want_un)} rows with a null "
                   f"md5 unverified, {clean_rows:,} rows in clean/")
        click.echo(f"   restricted/ is owner-only; look at {base / 'run' / 'summary.json'} first")
