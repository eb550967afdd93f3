"""``datahygiene synth``: synthetic manifests and placeholder lists for tests and benchmarks."""

from __future__ import annotations

import click

from datahygiene.commands.common import starting
from datahygiene.errors import ConfigError


def register(group: click.Group) -> None:
    @group.command("synth")
    @click.option("--out", required=True, type=click.Path(file_okay=False),
                  help="Directory to write manifest/, lists/ and planted.json into.")
    @click.option("--rows", type=click.IntRange(min=0), default=100_000, show_default=True,
                  help="Manifest rows, all files together.")
    @click.option("--files", type=click.IntRange(min=1), default=4, show_default=True,
                  help="Parquet files the rows are split into.")
    @click.option("--list-size", type=click.IntRange(min=0), default=10_000, show_default=True,
                  help="Entries in the placeholder MD5 list, planted ones included.")
    @click.option("--planted", type=click.IntRange(min=0), default=25, show_default=True,
                  help="Manifest rows whose MD5 is put in the list (at most --list-size).")
    @click.option("--malformed", type=click.IntRange(min=0), default=5, show_default=True,
                  help="Rows whose MD5 is null (must come out unverified).")
    @click.option("--seed", type=int, default=0, show_default=True,
                  help="Random seed: the same options and seed write the same files; with "
                       "another seed or --rows the hashes and URLs are independent (keys are "
                       "row numbers in every run).")
    @click.option("--row-group-size", type=click.IntRange(min=1), default=131_072,
                  show_default=True, help="Rows per parquet row group.")
    @click.option("--binary", is_flag=True, help="Write md5 as 16-byte binary, not hex.")
    @click.option("--sha256", is_flag=True, help="Add a random sha256 column.")
    @click.option("--url-list", is_flag=True,
                  help="Also write a url-sha256 CSV list planted with the same rows' URLs.")
    def synth_cmd(out: str, rows: int, list_size: int, planted: int, **opts: object) -> None:
        """Write a synthetic manifest and placeholder lists with known planted matches.

        All values are random; URLs use the reserved example.invalid domain. The ground
        truth (planted and malformed row keys) is written to OUT/planted.json.
        """
        if not out:  # an unset shell variable: it wrote into the working directory, saying "/"
            raise ConfigError("--out is empty; give a directory ('.' for the working directory)")
        if min(planted, rows) > list_size:  # the list grew past --list-size, unasked
            raise ConfigError(f"--planted ({min(planted, rows)}) is larger than --list-size "
                              f"({list_size}): the list holds every planted row's MD5; raise "
                              "--list-size or lower --planted")
        with starting():
            from datahygiene.synth import SynthSpec, write_synthetic
        truth = write_synthetic(out, SynthSpec(rows=rows, list_size=list_size, planted=planted,
                                               **opts))  # type: ignore[arg-type]
        base = out.rstrip("/") or "/"
        click.echo(f"wrote {truth['rows']:,} rows in {len(truth['files'])} file(s) to {base}/manifest, "
                   f"lists in {base}/lists ({len(truth['planted_keys'])} planted, "
                   f"{len(truth['malformed_keys'])} with a null md5)")
