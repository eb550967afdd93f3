"""Writing a run's evidence: exclusion log, signed checkpoint, attestation, card.

Called once by :func:`datahygiene.scan.run_scan` after every other output is staged
and before ``run.json`` is written, so that the attestation can name the exact bytes
of ``run.json`` (the caller must not change ``run`` afterwards). Without keys the
dataset-card fragment is still written and ``run["evidence"]`` says nothing was
signed; nothing else here runs, because an unkeyed commitment would let anyone test
guessed keys against the log.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa

from datahygiene.audit import croissant, dsse, merkle
from datahygiene.audit.keys import load_keydir
from datahygiene.audit.log import (
    CHECKPOINT,
    LOG_DIR,
    SEGMENT_RE,
    LogError,
    encode_segment,
    key_check,
    leaf_hashes,
    leaves_for_run,
    parse_leaf,
    read_log,
    segment_name,
)
from datahygiene.audit.note import Checkpoint, NoteError, Signer, open_note, sign_note
from datahygiene.config import ScanConfig
from datahygiene.errors import OutputError
from datahygiene.manifest import input_digest
from datahygiene.outputs import RunWriter, dumps

ATTESTATION = "public/attestation.dsse.json"
CROISSANT = "public/croissant-rai.json"
PUBLIC_KEY = "public/signing.pub"
ARCHIVE = f"{LOG_DIR}/checkpoints"


def archive_name(size: int) -> str:
    return f"{ARCHIVE}/{size:012d}"


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _previous_log(out: Path, signer: Signer, remove: bool = True
                  ) -> tuple[list[bytes], Checkpoint | None]:
    """The log already in OUT, checked against its own signed checkpoint before we
    append to it: we never extend a log that has been altered. ``remove``: delete what a
    commit cut short left (else only leave it out of the leaves returned)."""
    try:
        leaves = read_log(out / LOG_DIR)
    except LogError as exc:
        raise OutputError(f"{out / LOG_DIR}: {exc}; refusing to append to it") from None
    cp_path = out / CHECKPOINT
    if not cp_path.exists():
        if leaves and not (out / "run.json").exists():
            # the first signed run into OUT, cut short while committing: nothing of its
            # log was ever signed
            leaves = _drop_uncommitted(out, leaves, None, remove)
        if leaves:
            raise OutputError(f"{out / LOG_DIR}: log has no checkpoint; refusing to append to it")
        return [], None
    try:
        cp = Checkpoint.parse(open_note(cp_path.read_bytes(), signer.verifier))
    except NoteError as exc:
        raise OutputError(f"{cp_path}: not signed by these keys ({exc}); use the keys that "
                          "signed it or a new output directory") from None
    if cp.origin != signer.name:
        raise OutputError(f"{cp_path}: belongs to log {cp.origin}, not {signer.name}")
    if not (out / "run.json").exists():
        leaves = _drop_uncommitted(out, leaves, cp, remove)
    if cp.size != len(leaves) or merkle.root(leaf_hashes(leaves)) != cp.root:
        raise OutputError(f"{out / LOG_DIR}: does not match {cp_path}; refusing to append to it")
    return leaves, cp


def _drop_uncommitted(out: Path, leaves: list[bytes], cp: Checkpoint | None,
                      remove: bool = True) -> list[bytes]:
    """After a commit cut short (a kill or power loss while a run's files were being
    moved into OUT: there is no run.json then), OUT may hold that run's log segments
    and archived checkpoint without the signed checkpoint that covers them. They were
    never committed: remove what lies beyond the checkpoint, provided the leaves up to
    it are exactly the signed tree and a segment starts right at its end. Anything else
    is left for the caller to refuse."""
    size = cp.size if cp is not None else 0
    if len(leaves) > size:
        log_dir = out / LOG_DIR
        starts = {int(m.group(1)): p for p in log_dir.iterdir() if (m := SEGMENT_RE.match(p.name))}
        if size not in starts or (cp is not None and
                                  merkle.root(leaf_hashes(leaves[:size])) != cp.root):
            return leaves
        for start, path in starts.items():
            if start >= size and remove:
                path.unlink()
        leaves = leaves[:size]
    archive = out / ARCHIVE
    if archive.is_dir() and remove:
        for p in archive.iterdir():
            if p.name.isdigit() and int(p.name) > size:
                p.unlink()
    return leaves


def check_log_extendable(out: Path, keys: str) -> None:
    """Refuse, before any input is read, a signed run whose log could not be extended at
    the end (other keys, a log that does not match its checkpoint): found only at the
    commit, it cost a whole scan."""
    if (out / LOG_DIR).exists() or (out / CHECKPOINT).exists():
        # only reading: OUT is not locked yet, and what looks like a commit cut short may
        # be one under way (the scan holding the lock drops uncommitted files itself)
        _previous_log(out, load_keydir(keys)[1], remove=False)


def write_evidence(writer: RunWriter, config: ScanConfig, run: dict[str, Any], summary: dict[str, Any],
                   exclusions: pa.Table) -> None:
    if not config.keys:
        run["evidence"] = {"signed": False,
                           "reason": "no keys given (scan --keys KEYDIR; see `datahygiene keys init`)"}
        writer.write_json(CROISSANT, croissant.fragment(run, summary))
        return
    hmac_key, signer = load_keydir(config.keys)
    out = Path(writer.out)
    old, old_cp = _previous_log(out, signer)
    run_id = run["run_id"]
    mine = leaves_for_run(exclusions, hmac_key, run_id)
    already = [leaf for leaf in old if parse_leaf(leaf)["run"] == run_id]
    if already:
        # The same inputs, lists and configuration were logged before: the run id
        # fixes the leaves, so the log already holds exactly these; do not repeat them.
        if sorted(already) != mine:
            raise OutputError(f"{out / LOG_DIR}: holds different leaves for run {run_id}")
        start, added = old.index(already[0]), []
    else:
        start, added = len(old), mine
    leaves = old + added
    if added:
        writer.write_bytes(f"{LOG_DIR}/{segment_name(start)}", encode_segment(added))
    head = merkle.root(leaf_hashes(leaves))
    cp = Checkpoint(signer.name, len(leaves), head)
    note = sign_note(cp.text(), signer)
    writer.write_bytes(CHECKPOINT, note)
    writer.write_bytes(archive_name(cp.size), note)
    writer.write_bytes(PUBLIC_KEY, (signer.verifier.encode() + "\n").encode())
    counts = {d: sum(1 for leaf in mine if b'"decision":"%s"' % d.encode() in leaf)
              for d in ("excluded", "unverified")}
    run["evidence"] = {
        "signed": True,
        "public_key": PUBLIC_KEY,
        "checkpoint": CHECKPOINT,
        "attestation": ATTESTATION,
        "log": {"origin": signer.name, "size": cp.size, "root": base64.b64encode(head).decode(),
                "previous_size": old_cp.size if old_cp else 0, "run_start": start,
                "run_leaves": len(mine), "run_counts": counts, "leaf_format": "datahygiene-leaf/1",
                "commitment_key_check": key_check(hmac_key)},
    }
    card = croissant.fragment(run, summary)
    writer.write_json(CROISSANT, card)
    writer.write_json(ATTESTATION, dsse.sign_envelope(_statement(run, summary, note, card), signer))


def _statement(run: dict[str, Any], summary: dict[str, Any], checkpoint: bytes,
               card: dict[str, Any]) -> dict[str, Any]:
    subjects: list[dict[str, Any]] = []
    for i in run["inputs"]:
        algorithm, value = input_digest(i).split(":", 1)
        subjects.append({"name": i["path"], "digest": {algorithm: value},
                         "annotations": {"role": "input", "rows": i["rows"], "bytes": i["bytes"]}})
    for c in run["outputs"]["clean"]:
        subjects.append({"name": c["path"], "digest": {"sha256": _hex(c["sha256"])},
                         "annotations": {"role": "clean", "rows": c["rows"], "source": c["source"]}})
    ex = run["outputs"]["exclusions"]
    subjects.append({"name": ex["path"], "digest": {"sha256": _hex(ex["sha256"])},
                     "annotations": {"role": "exclusions", "rows": ex["rows"]}})
    records = ((CHECKPOINT, checkpoint, "checkpoint"), ("summary.json", dumps(summary), "record"),
               ("run.json", dumps(run), "record"), (CROISSANT, dumps(card), "record"))
    for name, data, role in records:
        subjects.append({"name": name, "digest": {"sha256": _sha256(data)}, "annotations": {"role": role}})
    keep = ("id", "partner", "name", "version", "signal", "entries", "fingerprint", "threshold")
    predicate = {
        "runId": run["run_id"],
        "tool": run["tool"],
        "lists": [{k: hl[k] for k in keep if k in hl} for hl in run["lists"]],
        "signals": run["signals"],
        "counts": summary["rows"],
        "perList": {lid: {"matches": v["matches"], "rows": v["rows"]} for lid, v in summary["lists"].items()},
        "coverage": run["coverage"],
        "config": {"key": run["config"].get("key"), "keepUnverified": run["config"].get("keep_unverified"),
                   "writeClean": run["config"].get("write_clean")},
        "log": run["evidence"]["log"],
    }
    return dsse.statement(subjects, predicate)
