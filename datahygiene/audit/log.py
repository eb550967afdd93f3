"""The exclusion log: one leaf per excluded or unverified row, appended per run.

A leaf is canonical JSON (sorted keys, no spaces, ASCII) on one line::

    {"commitment":"hmac-sha256:<hex>","decision":"excluded","lists":["p/n@v"],
     "run":"<run id>","signals":["md5"],"v":1}

The commitment is HMAC-SHA256 under the curator's secret key of a domain tag and the
row key, so the public log says *that* a row was excluded, why in outline (decision,
signal types, list identities and versions) and in which run, but lets nobody test a
guessed key or URL against it. It never holds a URL, a hash value or a list entry.

Leaves of one run are sorted by their bytes: the order depends only on the set of
flagged rows (not on engine, threads or batches) and says nothing about where in the
manifest a row was. The log lives in ``public/log/leaves-<first index>.jsonl``
segments, one per run that added leaves; earlier segments are never rewritten.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.audit import merkle

LEAF_VERSION = 1
COMMIT_DOMAIN = b"datahygiene-row-key-v1\x00"
LOG_DIR = "public/log"
CHECKPOINT = "public/checkpoint"
SEGMENT_RE = re.compile(r"^leaves-(\d{12})\.jsonl$")
DECISIONS = ("excluded", "unverified")


class LogError(ValueError):
    """A log that is malformed on disk (gaps, bad leaves)."""


# What the signed log records about the HMAC key: a MAC of this constant under the key.
# It reveals nothing of the key, and lets an auditor confirm that the key they were given
# is the one the commitments were made with (any other key would pass the released check
# vacuously). Not a prefix of COMMIT_DOMAIN: no row key can give the same MAC input.
KEY_CHECK_DOMAIN = b"datahygiene-commitment-key-check-v1\x00"


def key_check(key: bytes) -> str:
    return "hmac-sha256:" + hmac.digest(key, KEY_CHECK_DOMAIN, hashlib.sha256).hex()


def commitment(key: bytes, row_key: str) -> str:
    return "hmac-sha256:" + hmac.digest(key, COMMIT_DOMAIN + row_key.encode("utf-8"), hashlib.sha256).hex()


def commitments(key: bytes, row_keys: Iterable[str | None]) -> list[str | None]:
    """Commitments of many keys (the released-manifest check computes one per row)."""
    prefix, dom, sha = "hmac-sha256:", COMMIT_DOMAIN, hashlib.sha256
    return [None if k is None else prefix + hmac.digest(key, dom + k.encode("utf-8"), sha).hex()
            for k in row_keys]


def commitments_array(key: bytes, row_keys: pa.Array) -> pa.Array:
    """:func:`commitments` of a whole string column at once (null stays null), with
    the HMAC-SHA256 computed by compiled code (:mod:`datahygiene.digests`) from
    Arrow's buffers: no Python object per row. What checking a released manifest of
    billions of rows costs is this; tests compare it with :func:`commitment`."""
    from datahygiene.digests import hmac_sha256_rows, hmac_sha256_states
    from datahygiene.signals.hexcodec import hex_strings, string_buffers

    keys = row_keys if pa.types.is_large_string(row_keys.type) else row_keys.cast(pa.string())
    n = len(keys)
    if n == 0:
        return pa.array([], pa.string())
    istate, ostate = hmac_sha256_states(key)
    data, offsets, _ = string_buffers(keys)
    mac = np.empty((n, 32), dtype=np.uint8)
    hmac_sha256_rows(istate, ostate, np.frombuffer(COMMIT_DOMAIN, dtype=np.uint8), data,
                     offsets.astype(np.int64), mac)
    hexes = hex_strings(mac)
    out = pc.binary_join_element_wise("hmac-sha256:", hexes, "")
    return pc.if_else(keys.is_null(), pa.scalar(None, pa.string()), out) if keys.null_count else out


def encode_leaf(commit: str, decision: str, signals: Iterable[str], lists: Iterable[str],
                run_id: str) -> bytes:
    obj = {"commitment": commit, "decision": decision, "lists": sorted(set(lists)),
           "run": run_id, "signals": sorted(set(signals)), "v": LEAF_VERSION}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def parse_leaf(data: bytes) -> dict[str, Any]:
    """Parse a leaf, insisting on the canonical encoding (so one leaf has one spelling)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise LogError("leaf is not JSON") from None
    if not isinstance(obj, dict) or obj.get("v") != LEAF_VERSION:
        raise LogError("leaf has an unknown format version")
    try:
        again = encode_leaf(obj["commitment"], obj["decision"], obj["signals"], obj["lists"], obj["run"])
    except (KeyError, TypeError):
        raise LogError("leaf lacks a field") from None
    if again != data or set(obj) != {"commitment", "decision", "lists", "run", "signals", "v"}:
        raise LogError("leaf is not in canonical form")
    if obj["decision"] not in DECISIONS:
        raise LogError("leaf decision is neither excluded nor unverified")
    return obj


def leaves_for_run(exclusions: pa.Table, key: bytes, run_id: str) -> list[bytes]:
    """One leaf per flagged row, sorted by bytes (deterministic, position-free)."""
    if exclusions.num_rows == 0:
        return []
    cols = exclusions.select(["key", "decision", "matches", "reasons"]).to_pydict()
    out: list[bytes] = []
    commits = commitments(key, cols["key"])
    for commit, decision, matches, reasons in zip(commits, cols["decision"], cols["matches"],
                                                  cols["reasons"], strict=True):
        if commit is None:  # the step always sets a key (FILE:ROW when none is configured)
            raise LogError("a flagged row has no key")
        signals = {m["signal"] for m in matches or ()} | {r.split(":", 1)[0] for r in reasons or ()}
        lists = {m["list"] for m in matches or ()}
        out.append(encode_leaf(commit, decision, signals, lists, run_id))
    out.sort()
    return out


def segment_name(start: int) -> str:
    return f"leaves-{start:012d}.jsonl"


def read_log(log_dir: Path) -> list[bytes]:
    """All leaves in order; a gap, overlap or empty segment is an error."""
    if not log_dir.is_dir():
        return []
    segments = sorted((int(m.group(1)), p) for p in log_dir.iterdir()
                      if (m := SEGMENT_RE.match(p.name)))
    leaves: list[bytes] = []
    for start, path in segments:
        if start != len(leaves):
            raise LogError(f"{path.name}: starts at leaf {start} but the log before it holds "
                           f"{len(leaves)} leaves")
        data = path.read_bytes()
        if not data or not data.endswith(b"\n"):
            raise LogError(f"{path.name}: empty or not newline-terminated")
        leaves.extend(data[:-1].split(b"\n"))
    return leaves


def encode_segment(leaves: Sequence[bytes]) -> bytes:
    return b"".join(leaf + b"\n" for leaf in leaves)


def leaf_hashes(leaves: Sequence[bytes]) -> list[bytes]:
    return [merkle.leaf_hash(leaf) for leaf in leaves]
