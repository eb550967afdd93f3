"""``datahygiene keys init``: the curator's evidence keys."""

from __future__ import annotations

import click

from datahygiene.audit.keys import HMAC_FILE, PUBLIC_FILE, SIGNING_FILE, init_keys


def register(group: click.Group) -> None:
    @group.group("keys")
    def keys_grp() -> None:
        """Keys that commit and sign a scan's evidence."""

    @keys_grp.command("init")
    @click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
                  help="Directory to create the keys in (never overwrites existing keys).")
    @click.option("--name", default=None,
                  help="Key name, also the log's origin line: a schema-less URL such as "
                       "example.org/hygiene-log [default: datahygiene.invalid/log/<random>].")
    def init_cmd(directory: str, name: str | None) -> None:
        """Create KEYDIR/hmac.key and KEYDIR/signing.key (owner-only) and KEYDIR/signing.pub.

        Keep hmac.key as secret as restricted/: anyone holding it can test a row key
        against the public log. Publish signing.pub so auditors can pin it.
        """
        verifier = init_keys(directory, name)
        click.echo(f"wrote {directory}/{HMAC_FILE} and {directory}/{SIGNING_FILE} (owner-only), "
                   f"{directory}/{PUBLIC_FILE}")
        click.echo(f"public key: {verifier.encode()}")
