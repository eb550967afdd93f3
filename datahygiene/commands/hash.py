"""``datahygiene hash``: compute signals (PDQ, MD5...) of image files, as CSV.

For curators checking what the scan computes, and for partners' tooling that wants
the same decoding policy: the values come from the same code as a scan with an image
source (``datahygiene.content``), so a file hashes here exactly as its row would.
"""

from __future__ import annotations

import csv
import sys
from typing import TYPE_CHECKING

import click

from datahygiene.commands.common import starting
from datahygiene.errors import ConfigError, InputError
from datahygiene.plugins import default_registry

if TYPE_CHECKING:
    from datahygiene.signals.base import SignalType


def register(group: click.Group) -> None:
    @group.command("hash")
    @click.option("--signal", "signals", multiple=True, required=True, metavar="NAME",
                  help="Signal to compute (pdq, md5, sha1, sha256, or a plugin's that can hash "
                       "bytes). Repeatable: one row per file and signal.")
    @click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
    @click.pass_context
    def hash_cmd(ctx: click.Context, signals: tuple[str, ...], files: tuple[str, ...]) -> None:
        """Print CSV rows path,signal,value,quality for each FILE (paths or fsspec URLs).

        Values are lower-case hex; quality is empty for signals without one. A file
        that cannot be read or decoded gets a row with an empty value, a one-line
        reason on stderr, and the command exits with status 3 once every file is done.

        \b
        Example:
          datahygiene hash --signal pdq --signal md5 photos/*.jpg > hashes.csv
        """
        with starting():
            from datahygiene.content import hash_one
            from datahygiene.signals.base import BytesHasher
        registry = default_registry()
        sigs: list[SignalType] = []
        for name in dict.fromkeys(signals):
            sig: SignalType = registry.signal(name)
            if not isinstance(sig, BytesHasher):
                raise ConfigError(f"--signal {name}: this signal cannot be computed from file bytes")
            sigs.append(sig)
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["path", "signal", "value", "quality"])
        failed = 0
        for path in files:
            res = hash_one(("path", path), sigs, [False] * len(sigs))
            for i, sig in enumerate(sigs):
                one = res if isinstance(res, str) else res[i]
                if isinstance(one, str):
                    out.writerow([path, sig.name, "", ""])
                    click.echo(f"datahygiene: hash: {path}: {sig.name}: {one}", err=True)
                    failed += 1
                    continue
                (value,), quality = one
                out.writerow([path, sig.name, value.hex(), "" if quality is None else quality])
        sys.stdout.flush()
        if failed:
            click.echo(f"datahygiene: hash: {failed} value(s) could not be computed", err=True)
            ctx.exit(InputError.exit_code)
