"""``datahygiene verify``: what an auditor runs on a published run directory."""

from __future__ import annotations

import click

from datahygiene.commands.common import starting
from datahygiene.errors import ConfigError, VerificationError

# imported for `datahygiene verify --help` too: the checks' modules (pyarrow among them)
# are imported when they run


def register(group: click.Group) -> None:
    @group.command("verify")
    @click.argument("out", type=click.Path(exists=True, file_okay=False))
    @click.option("--released", type=click.Path(exists=True),
                  help="The released manifest (parquet file or directory): check none of its rows is "
                       "in the log and that released + withheld rows account for every scanned row. "
                       "Needs --hmac-key when the run has a key column (a run keyed FILE:ROW "
                       "is checked file by file, without it).")
    @click.option("--hmac-key", type=click.Path(exists=True, dir_okay=False),
                  help="The curator's KEYDIR/hmac.key (shared with the auditor in confidence).")
    @click.option("--public-key", type=click.Path(exists=True, dir_okay=False),
                  help="The curator's signing.pub, obtained independently [default: OUT/public/"
                       "signing.pub, which only proves the files agree with each other].")
    @click.option("--previous", type=click.Path(exists=True, dir_okay=False), metavar="CHECKPOINT",
                  help="A checkpoint you saved earlier: check the log only grew since.")
    @click.option("--inputs-root", type=click.Path(file_okay=False),
                  help="Directory the input paths in run.json are relative to [default: the current "
                       "directory].")
    def verify_cmd(out: str, released: str | None, hmac_key: str | None, public_key: str | None,
                   previous: str | None, inputs_root: str | None) -> None:
        """Check a run's evidence; print one line per check; exit 0 only if none fails.

        \b
        Checks: the checkpoint signature; the log recomputes to the signed root; this
        run's leaves match summary.json; archived checkpoints are prefixes of the log;
        --previous is consistent with the current checkpoint; the attestation's
        signature and subject digests; input coverage (digests, row counts); with
        --released and --hmac-key, no released row is in the log and released +
        withheld rows = scanned rows. Exit code 7 if any check fails.
        """
        if hmac_key and not released:  # it would be ignored, a wrong key with it
            raise ConfigError("--hmac-key is used with --released (give the released manifest)")
        with starting():
            from datahygiene.audit.verify import FAIL, PASS, SKIP, verify
        checks = verify(out, released=released, hmac_key=hmac_key, public_key=public_key,
                        previous=previous, inputs_root=inputs_root)
        for c in checks:
            click.echo(f"{c.status.upper():4}  {c.name}: {c.reason}")
        failed = [c.name for c in checks if c.status == FAIL]
        if failed:
            raise VerificationError(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
        skipped = [c.name for c in checks if c.status == SKIP]
        click.echo(f"ok: {sum(c.status == PASS for c in checks)} checks passed"
                   + (f"; not checked, so not proved: {', '.join(skipped)}" if skipped else ""))
