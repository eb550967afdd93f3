"""``datahygiene log``: inclusion and consistency proofs from a run's public log."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import click

from datahygiene.audit import merkle
from datahygiene.audit.keys import load_hmac_key
from datahygiene.audit.note import Checkpoint, NoteError
from datahygiene.commands.common import imported
from datahygiene.errors import ConfigError, VerificationError

# imported for `datahygiene log --help` too: the exclusion log's module (numpy, pyarrow)
# is imported when a command runs
LOG_MODULE = "datahygiene.audit.log"


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def _load(out: str) -> tuple[list[bytes], Checkpoint]:
    log = imported(LOG_MODULE)
    try:
        leaves = log.read_log(Path(out) / log.LOG_DIR)
        note = (Path(out) / log.CHECKPOINT).read_text()
        cp = Checkpoint.parse(note[: note.rfind("\n\n") + 1])
    except (log.LogError, OSError, NoteError) as exc:
        raise VerificationError(f"{out}: no readable log and checkpoint ({exc})") from None
    if cp.size != len(leaves) or merkle.root(log.leaf_hashes(leaves)) != cp.root:
        raise VerificationError(f"{out}/{log.LOG_DIR}: does not recompute to {log.CHECKPOINT}")
    return leaves, cp


def _recorded_key_check(out: str) -> str | None:
    """The MAC of a constant under the log's HMAC key, as run.json records it (None
    when there is none to compare: an older run, or no readable run.json)."""
    try:
        value = json.loads((Path(out) / "run.json").read_text())["evidence"]["log"]["commitment_key_check"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def register(group: click.Group) -> None:
    @group.group("log")
    def log_grp() -> None:
        """Proofs from a run directory's exclusion log (OUT/public/log)."""

    @log_grp.command("prove")
    @click.argument("out", type=click.Path(exists=True, file_okay=False))
    @click.argument("key")
    @click.option("--hmac-key", required=True, type=click.Path(exists=True, dir_okay=False),
                  help="KEYDIR/hmac.key: needed to find the row's commitment.")
    def prove_cmd(out: str, key: str, hmac_key: str) -> None:
        """Print an RFC 9162 inclusion proof (JSON) for each leaf of row KEY.

        The proof lets someone holding the checkpoint check that this row is in the
        log without seeing the rest of it. Exit code 7 if the row is not in the log.
        """
        leaves, cp = _load(out)
        log = imported(LOG_MODULE)
        secret = load_hmac_key(hmac_key)
        c = log.commitment(secret, key)
        hashes = log.leaf_hashes(leaves)
        found = [i for i, leaf in enumerate(leaves) if log.parse_leaf(leaf)["commitment"] == c]
        if not found:
            # with another key every row would look absent: say which it is
            if _recorded_key_check(out) not in (None, log.key_check(secret)):
                raise VerificationError(f"{hmac_key} is not the HMAC key this run's log was built "
                                        "with (run.json's key check differs): no row can be found")
            raise VerificationError("that row key has no leaf in this log")
        for i in found:
            proof = merkle.inclusion_proof(i, hashes)
            if not merkle.verify_inclusion(i, cp.size, hashes[i], proof, cp.root):  # pragma: no cover
                raise VerificationError("internal error: a generated proof does not verify")
            click.echo(json.dumps({"origin": cp.origin, "tree_size": cp.size,
                                   "root": base64.b64encode(cp.root).decode(), "leaf_index": i,
                                   "leaf": leaves[i].decode(), "proof": _b64(proof),
                                   "verified": True}, sort_keys=True))  # as log consistency says

    @log_grp.command("consistency")
    @click.argument("out", type=click.Path(exists=True, file_okay=False))
    @click.option("--previous", required=True, type=click.Path(exists=True, dir_okay=False),
                  metavar="CHECKPOINT", help="An earlier checkpoint of the same log.")
    def consistency_cmd(out: str, previous: str) -> None:
        """Print an RFC 9162 consistency proof (JSON) from CHECKPOINT to the current one."""
        leaves, cp = _load(out)
        note = Path(previous).read_text()
        try:
            old = Checkpoint.parse(note[: note.rfind("\n\n") + 1])
        except NoteError as exc:
            raise ConfigError(f"{previous}: {exc}") from None
        if old.size > cp.size:
            raise VerificationError(f"{previous}: larger than the current log: leaves were removed")
        proof = merkle.consistency_proof(old.size, imported(LOG_MODULE).leaf_hashes(leaves))
        ok = merkle.verify_consistency(old.size, cp.size, proof, old.root, cp.root)
        click.echo(json.dumps({"origin": cp.origin, "size1": old.size, "size2": cp.size,
                               "root1": base64.b64encode(old.root).decode(),
                               "root2": base64.b64encode(cp.root).decode(), "proof": _b64(proof),
                               "verified": ok}, sort_keys=True))
        if not ok:
            raise VerificationError(f"{previous}: not consistent with the current log")
