"""What ``datahygiene verify`` checks, each reported pass / fail / skip with a reason.

An auditor runs this on a published run directory (``OUT`` without ``restricted/``
is enough for everything but the exclusion-manifest digest). Each check says what it
proved; docs/auditor.md says what each one does *not* prove.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datahygiene.audit import dsse, merkle
from datahygiene.audit.evidence import ARCHIVE, ATTESTATION, CROISSANT, PUBLIC_KEY
from datahygiene.audit.keys import load_hmac_key, load_verifier
from datahygiene.audit.log import (
    CHECKPOINT,
    LOG_DIR,
    LogError,
    commitments_array,
    key_check,
    leaf_hashes,
    parse_leaf,
    read_log,
)
from datahygiene.audit.note import Checkpoint, NoteError, Verifier, open_note
from datahygiene.config import INPUT_DIGESTS
from datahygiene.errors import DatahygieneError
from datahygiene.manifest import in_order, input_digest, new_digest

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class Check:
    name: str
    status: str
    reason: str


def _is_parquet(path: Path) -> bool:
    """Whether a file is parquet by its content: ``PAR1`` at its start and end."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PAR1":
                return False
            fh.seek(-4, os.SEEK_END)
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def _sha256_path(path: str) -> tuple[str, int]:
    return _digest_path(path, "sha256")


def _digest_path(path: str, algorithm: str) -> tuple[str, int]:
    """Hex digest (``sha256`` or ``blake3``) of a file at a path or URL, and its size."""
    digest, size, _ = _read_input(path, algorithm, rows=False)
    return digest, size


# Bytes kept from a file's end while it is digested: its parquet footer, to count its
# rows without reading it again (a second request, for an input on object storage).
_TAIL = 1 << 20


def _read_input(path: str, algorithm: str, rows: bool = True) -> tuple[str, int, int]:
    """One read of a file at a path or URL: its hex digest (``sha256`` or ``blake3``),
    its size and (``rows``) its row count, from the parquet footer among the last bytes
    read (read again only if larger than :data:`_TAIL`)."""
    h = new_digest(algorithm)
    size = 0
    tail = b""
    with fsspec.open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            h.update(block)
            size += len(block)
            if rows:
                tail = (tail + block)[-_TAIL:] if len(block) < _TAIL else block[-_TAIL:]
    if not rows:
        return h.hexdigest(), size, 0
    footer = int.from_bytes(tail[-8:-4], "little") + 8 if len(tail) >= 12 else size + 1
    if tail[-4:] == b"PAR1" and footer <= len(tail):
        return h.hexdigest(), size, pq.read_metadata(pa.BufferReader(tail[-footer:])).num_rows
    with fsspec.open(path, "rb") as fh:  # a footer over 1 MiB, or not parquet: the reader says
        return h.hexdigest(), size, pq.ParquetFile(fh).metadata.num_rows


# Inputs read at once by the coverage check: each waits on its storage (a round trip,
# for one on object storage) or hashes on a core (the digests release the GIL).
COVERAGE_AT_ONCE = 8


class Verification:
    def __init__(self, out: str | Path, released: str | None = None, hmac_key: str | None = None,
                 public_key: str | None = None, previous: str | None = None,
                 inputs_root: str | None = None) -> None:
        self.out = Path(out)
        self.released, self.hmac_key_path = released, hmac_key
        self.public_key, self.previous, self.inputs_root = public_key, previous, inputs_root
        self.checks: list[Check] = []
        self.run: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.verifier: Verifier | None = None
        self.checkpoint: Checkpoint | None = None
        self.leaves: list[bytes] | None = None
        self.parsed: list[dict[str, Any]] = []

    def add(self, name: str, ok: bool | None, reason: str) -> None:
        self.checks.append(Check(name, SKIP if ok is None else PASS if ok else FAIL, reason))

    def run_all(self) -> list[Check]:
        for name in ("run.json", "summary.json"):
            try:
                record = json.loads((self.out / name).read_bytes())
            except (OSError, ValueError) as exc:
                self.add("run-record", False, f"{name} missing or not JSON ({type(exc).__name__})")
                return self.checks
            if not isinstance(record, dict):
                self.add("run-record", False, f"{name} is not a JSON object")
                return self.checks
            if name == "run.json":
                self.run = record
            else:
                self.summary = record
        evidence = self.run.get("evidence", {})
        steps: list[tuple[str, Any]] = []
        if not isinstance(evidence, dict) or not evidence.get("signed"):
            if (self.out / CHECKPOINT).exists():  # signed evidence beside an unsigned record
                self.add("evidence", False, "run.json says this run was not signed, but OUT holds "
                         f"a signed {CHECKPOINT}: run.json does not describe the evidence beside it")
            else:
                self.add("evidence", False, "this run was not signed (scanned without --keys)")
        else:
            steps += [("public-key", self.check_key), ("checkpoint-signature", self.check_checkpoint),
                      ("log-run", self.check_log), ("log-history", self.check_history),
                      ("consistency", self.check_previous), ("attestation", self.check_attestation)]
        steps += [("coverage", self.check_coverage), ("released", self.check_released)]
        for name, step in steps:
            try:
                step()
            except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
                # an edited or truncated record: a failed check, never a traceback
                field = f" (field {exc.args[0]!r})" if isinstance(exc, KeyError) and exc.args else ""
                self.add(name, False, f"run.json / summary.json / evidence is malformed: "
                         f"{type(exc).__name__}{field}")
        return self.checks

    # -- signatures and the log -------------------------------------------------------
    def check_key(self) -> None:
        try:
            if self.public_key:
                self.verifier = load_verifier(self.public_key)
                how = f"pinned key {self.public_key}"
            else:
                self.verifier = load_verifier(self.out / PUBLIC_KEY)
                how = f"key published in {PUBLIC_KEY} (pin the curator's key with --public-key)"
        except DatahygieneError as exc:
            self.add("public-key", False, str(exc))
            return
        self.add("public-key", True, f"{self.verifier.name}+{self.verifier.id:08x} from {how}")

    def check_checkpoint(self) -> None:
        if self.verifier is None:
            self.add("checkpoint-signature", False, "no usable public key")
            return
        try:
            cp = Checkpoint.parse(open_note((self.out / CHECKPOINT).read_bytes(), self.verifier))
        except OSError:
            self.add("checkpoint-signature", False, f"{CHECKPOINT} is missing")
            return
        except NoteError as exc:
            self.add("checkpoint-signature", False, f"{CHECKPOINT}: {exc}")
            return
        if cp.origin != self.run["evidence"]["log"].get("origin"):
            self.add("checkpoint-signature", False, "checkpoint origin differs from run.json's log origin")
            return
        self.checkpoint = cp
        self.add("checkpoint-signature", True, f"{CHECKPOINT} signed by {self.verifier.name} "
                 f"(size {cp.size})")

    def check_log(self) -> None:
        cp = self.checkpoint
        if cp is None:
            self.add("log-root", False, "no verified checkpoint to compare the log with")
            return
        try:
            leaves = read_log(self.out / LOG_DIR)
            self.parsed = [parse_leaf(leaf) for leaf in leaves]
        except (LogError, OSError) as exc:
            self.add("log-root", False, f"{LOG_DIR}: {exc}")
            return
        head = merkle.root(leaf_hashes(leaves))
        if len(leaves) != cp.size or head != cp.root:
            self.add("log-root", False, f"{LOG_DIR} holds {len(leaves)} leaves whose root is not the "
                     f"signed root of size {cp.size}")
            return
        self.leaves = leaves
        self.add("log-root", True, f"{len(leaves)} leaves recompute to the signed root")
        run_id, log = self.run["run_id"], self.run["evidence"]["log"]
        idx = [i for i, p in enumerate(self.parsed) if p["run"] == run_id]
        counts = Counter(self.parsed[i]["decision"] for i in idx)
        rows = self.summary.get("rows", {})
        problems = []
        start, count = log.get("run_start", -1), log.get("run_leaves", -1)
        # compared as a range, never built from run.json's numbers (an edited count of
        # 10**12 must be a FAIL, not an exhausted memory)
        # (idx ascends: it is the range when it has the range's length and ends)
        if not (isinstance(start, int) and isinstance(count, int) and len(idx) == count
                and (not idx or (idx[0] == start and idx[-1] == start + count - 1))):
            problems.append("this run's leaves are not the range run.json names")
        for d in ("excluded", "unverified"):
            if counts.get(d, 0) != rows.get(d):
                problems.append(f"{counts.get(d, 0)} {d} leaves for this run, "
                                f"summary.json says {rows.get(d)!r}")
        if problems:
            self.add("log-run", False, "; ".join(problems))
        else:
            self.add("log-run", True, f"run {run_id}: {counts.get('excluded', 0)} excluded and "
                     f"{counts.get('unverified', 0)} unverified leaves, as summary.json counts")

    def _consistent(self, old: Checkpoint) -> str | None:
        """None if ``old`` is a prefix of the current log (checked with an RFC 9162
        consistency proof built from the log), else why not."""
        assert self.leaves is not None and self.checkpoint is not None
        if old.origin != self.checkpoint.origin:
            return f"belongs to log {old.origin}"
        if old.size > self.checkpoint.size:
            return f"size {old.size} is larger than the current {self.checkpoint.size}: leaves were removed"
        hashes = leaf_hashes(self.leaves)
        proof = merkle.consistency_proof(old.size, hashes)
        new = self.checkpoint
        if not merkle.verify_consistency(old.size, new.size, proof, old.root, new.root):
            return f"the first {old.size} leaves of the log do not have its root: the log was rewritten"
        return None

    def check_history(self) -> None:
        if self.leaves is None or self.verifier is None:
            self.add("log-history", None, "not checked: the log did not verify")
            return
        d = self.out / ARCHIVE
        files = sorted(d.iterdir()) if d.is_dir() else []
        bad = []
        for f in files:
            try:
                old = Checkpoint.parse(open_note(f.read_bytes(), self.verifier))
            except (NoteError, OSError) as exc:
                bad.append(f"{f.name}: {exc}")
                continue
            why = self._consistent(old)
            if why:
                bad.append(f"{f.name}: {why}")
        if bad:
            self.add("log-history", False, "; ".join(bad))
        else:
            self.add("log-history", True, f"{len(files)} archived checkpoint(s) are prefixes of the log")

    def check_previous(self) -> None:
        if not self.previous:
            self.add("consistency", None, "no --previous checkpoint given")
            return
        if self.leaves is None or self.verifier is None:
            self.add("consistency", False, "the current log did not verify")
            return
        try:
            old = Checkpoint.parse(open_note(Path(self.previous).read_bytes(), self.verifier))
        except (NoteError, OSError) as exc:
            self.add("consistency", False, f"{self.previous}: {exc}")
            return
        why = self._consistent(old)
        assert self.checkpoint is not None
        self.add("consistency", why is None, why or f"checkpoint of size {old.size} is consistent with "
                 f"size {self.checkpoint.size}: nothing was removed or changed")

    # -- attestation --------------------------------------------------------------------
    def check_attestation(self) -> None:
        if self.verifier is None:
            self.add("attestation", False, "no usable public key")
            return
        try:
            stmt = dsse.open_envelope(json.loads((self.out / ATTESTATION).read_bytes()), self.verifier)
        except (OSError, ValueError) as exc:  # EnvelopeError is a ValueError
            self.add("attestation", False, f"{ATTESTATION}: {exc}")
            return
        problems, skipped, skipped_clean = [], [], 0
        inputs = {i["path"]: input_digest(i) for i in self.run.get("inputs", [])}
        attested_inputs = {}
        for s in stmt.get("subject", []):
            role = s.get("annotations", {}).get("role")
            want = s.get("digest", {}).get("sha256")
            if role == "input":  # one algorithm: the input digest run.json names
                attested_inputs[s["name"]] = ":".join(next(iter(s.get("digest", {}).items()), ("", "")))
                continue
            path = self.out / s["name"]
            if role == "exclusions" and not os.access(path, os.R_OK):  # restricted: often withheld
                skipped.append(s["name"])
                continue
            if role == "clean" and not (self.out / "clean").exists():
                # the release published apart from the run directory: --released compares it
                skipped_clean += 1
                continue
            try:
                got = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                problems.append(f"{s['name']} missing or unreadable")
                continue
            if got != want:
                problems.append(f"{s['name']} differs from the attested digest")
        if attested_inputs != inputs:
            problems.append("run.json inputs differ from the attested inputs")
        pred = stmt.get("predicate", {})
        if pred.get("runId") != self.run.get("run_id"):
            problems.append("attested run id differs from run.json")
        if pred.get("counts") != self.summary.get("rows"):
            problems.append("attested counts differ from summary.json")
        if pred.get("log") != self.run["evidence"].get("log"):
            problems.append("attested log differs from run.json")
        if problems:
            self.add("attestation", False, "; ".join(problems))
        else:
            extra = f" ({', '.join(skipped)} not readable here, not checked)" if skipped else ""
            if skipped_clean:
                extra += (f" ({skipped_clean} clean output(s): no clean/ here, not checked; "
                          "--released compares a release with them)")
            self.add("attestation", True, f"signed statement; every present subject matches{extra}")

    # -- coverage and the released manifest ---------------------------------------------
    def _input_path(self, path: str) -> str:
        """Where to read input ``path`` (as run.json names it). Under ``--inputs-root``, a
        relative path is taken relative to it; an absolute one (the curator scanned
        ``/their/dir/...``) is looked for under it by its trailing components, longest
        first -- the digest check decides whether the file found is the one scanned."""
        if path.startswith("file://") and self.inputs_root:
            path = path[len("file://"):]
        if "://" in path or not self.inputs_root:
            return path
        root = Path(self.inputs_root)
        if not Path(path).is_absolute() and ".." not in Path(path).parts:
            return str(root / path)
        # absolute, or climbing out with "..": never looked for outside the root
        parts = tuple(p for p in Path(path).parts if p not in ("/", ".."))
        for k in range(len(parts)):
            candidate = root.joinpath(*parts[k:])
            if candidate.is_file():
                return str(candidate)
        return str(root.joinpath(*parts))

    def _read_recorded(self, entry: dict[str, Any]) -> tuple[str, int, int] | Exception | None:
        """An input's digest, size and rows as read now (None: run.json names an
        unknown digest algorithm; an exception: it did not read). A malformed entry
        raises (run_all says the record is malformed)."""
        algorithm = input_digest(entry).split(":", 1)[0]
        if algorithm not in INPUT_DIGESTS:
            return None
        where = self._input_path(entry["path"])
        try:
            digest, size, rows = _read_input(where, algorithm)
        except Exception as exc:  # unreadable is a failed check, never a traceback
            return exc
        return f"{algorithm}:{digest}", size, rows

    def check_coverage(self) -> None:
        inputs = self.run.get("inputs", [])
        problems, total, missing = [], 0, 0
        # several inputs at once, each read once (its digest, size and footer); the
        # findings in run.json's order
        with (ThreadPoolExecutor(COVERAGE_AT_ONCE, thread_name_prefix="datahygiene-coverage") as pool,
              contextlib.closing(in_order(pool, self._read_recorded, inputs,
                                          2 * COVERAGE_AT_ONCE)) as reads):
            found = list(reads)
        for i, got in zip(inputs, found, strict=True):
            if got is None:
                problems.append(f"{i['path']}: run.json names an unknown digest algorithm")
                continue
            if isinstance(got, Exception):
                missing += isinstance(got, FileNotFoundError)
                problems.append(f"{i['path']}: cannot read ({type(got).__name__})")
                continue
            digest, size, rows = got
            total += rows
            if digest != input_digest(i) or size != i["bytes"]:
                problems.append(f"{i['path']}: digest or size differs from run.json")
            elif rows != i["rows"]:
                problems.append(f"{i['path']}: {rows} rows, run.json says {i['rows']}")
        cov = self.run.get("coverage", {})
        scanned = self.summary.get("rows", {}).get("scanned")
        if not inputs:
            problems.append("run.json lists no inputs")
        elif missing == len(inputs) and not self.inputs_root:
            self.add("coverage", None, f"none of the {len(inputs)} input file(s) is at the path run.json "
                     "names: not checked (give --inputs-root DIR where you keep copies of the inputs)")
            return
        if not problems and not (total == cov.get("rows") == cov.get("rows_scanned") == scanned):
            problems.append(f"inputs hold {total} rows but run.json/summary.json say {cov.get('rows')}/"
                            f"{cov.get('rows_scanned')}/{scanned} were scanned")
        if problems:
            self.add("coverage", False, "; ".join(problems))
        else:
            where = f" (read under {self.inputs_root})" if self.inputs_root else ""
            self.add("coverage", True, f"{len(inputs)} input file(s){where}, {total} rows: digests and "
                     "row counts match run.json, and every row was scanned")

    def check_released(self) -> None:
        if not self.released:
            self.add("released", None, "no --released manifest given")
            return
        key_col = self.run.get("config", {}).get("key")
        if not key_col:
            self._check_released_files()
            return
        if not self.hmac_key_path:
            self.add("released", False, "--released needs --hmac-key to compute row commitments")
            return
        if self.leaves is None:
            self.add("released", False, "the log did not verify, so there is nothing to check against")
            return
        try:
            key = load_hmac_key(self.hmac_key_path)
        except DatahygieneError as exc:
            self.add("released", False, str(exc))
            return
        recorded = self.run["evidence"]["log"].get("commitment_key_check")
        if recorded is not None and recorded != key_check(key):
            self.add("released", False, f"{self.hmac_key_path} is not the HMAC key this run's log was "
                     "built with (its key check differs): with another key every row would pass")
            return
        run_id = self.run["run_id"]
        keep_unverified = self._keeps_unverified()
        earlier = {p["commitment"] for p in self.parsed if p["run"] != run_id and p["decision"] == "excluded"}
        # the rows this run withheld from a release, and those earlier runs excluded. A
        # commitment is withheld if any of this run's leaves with it is: an excluded row
        # and a kept unverified one that share a key give two leaves of one commitment,
        # and a released row with that key may be either (the last leaf used to decide)
        withheld_set = pa.array(sorted({p["commitment"] for p in self.parsed if p["run"] == run_id and (
            p["decision"] == "excluded" or (p["decision"] == "unverified" and not keep_unverified))}),
            pa.string())
        earlier_set = pa.array(sorted(earlier), pa.string())
        files = self._released_files()

        clean = self._clean_digests()
        identical = 0

        def count(keys: pa.Array, whole_file_checked: bool) -> tuple[int, int, int, int, int]:
            """(rows, rows withheld by this run, rows excluded by an earlier run, rows
            without a key that no file digest vouches for, rows of the second kind in a
            file byte-identical to a clean output)."""
            commits = commitments_array(key, keys.cast("string"))
            now = pc.is_in(commits, value_set=withheld_set)
            before = pc.and_(pc.is_in(commits, value_set=earlier_set), pc.invert(now))
            keyless = 0 if whole_file_checked else commits.null_count
            hits = int(pc.sum(now).as_py() or 0)
            return (len(commits), hits, int(pc.sum(before).as_py() or 0), keyless,
                    hits if whole_file_checked else 0)

        n, hit_now, hit_before, no_key, hit_in_clean = 0, 0, 0, 0, 0
        try:
            # batches on every core (the HMACs run without the GIL), a few in flight
            workers = os.cpu_count() or 1
            with ThreadPoolExecutor(workers) as pool:
                pending: deque[Future[tuple[int, int, int, int, int]]] = deque()

                def take(res: tuple[int, int, int, int, int]) -> None:
                    nonlocal n, hit_now, hit_before, no_key, hit_in_clean
                    n, hit_now, hit_before, no_key, hit_in_clean = (
                        n + res[0], hit_now + res[1], hit_before + res[2], no_key + res[3],
                        hit_in_clean + res[4])

                for f in files:
                    # a file byte-identical to an attested clean output is vouched for
                    # whole: its rows' contents, not only their keys
                    same = _sha256_path(str(f))[0] in clean
                    identical += same
                    pf = pq.ParquetFile(f)
                    if key_col not in pf.schema_arrow.names:
                        self.add("released", False, f"{f}: no key column {key_col!r}")
                        return
                    for batch in pf.iter_batches(columns=[key_col], batch_size=65536):
                        pending.append(pool.submit(count, batch.column(0), same))
                        while len(pending) > 2 * workers or (
                                pending and pending[0].done()):
                            take(pending.popleft().result())
                while pending:
                    take(pending.popleft().result())
        except Exception as exc:
            self.add("released", False, f"{self.released}: cannot read ({type(exc).__name__})")
            return
        rows = self.summary.get("rows", {})
        withheld = self._withheld()
        problems = []
        if hit_now:
            problems.append(f"{hit_now} released row(s) are excluded or unverified in this run's log")
        if hit_in_clean:
            # the scan wrote those files and withheld the flagged rows from them: a clean
            # row carries a flagged row's key, so the log cannot tell the two apart
            problems.append(f"{hit_in_clean} of them are in files byte-identical to this run's "
                            "clean outputs: the run's key column is not unique across its inputs "
                            "(a scan with --check-keys refuses such a key)")
        if hit_now > hit_in_clean and (self.run.get("key") or {}).get("flagged_keys_unique") is not True:
            problems.append("this run did not check that its flagged rows' keys name no other row "
                            "(run.json key.flagged_keys_unique is not true): if the key column is "
                            "not unique, a released row may only share an excluded row's key")
        if hit_before:
            problems.append(f"{hit_before} released row(s) were excluded by an earlier run in this log")
        if no_key:
            problems.append(f"{no_key} released row(s) have no key and are in files that are not "
                            "byte-identical to a clean output: they cannot be checked against the log")
        if n + withheld != rows.get("scanned"):
            problems.append(f"released {n} + withheld {withheld} rows != {rows.get('scanned')} scanned")
        if problems:
            self.add("released", False, "; ".join(problems))
            return
        if identical == len(files):
            how = (f"all {len(files)} released file(s) are byte-identical to this run's attested "
                   "clean outputs")
        else:
            how = (f"{identical} of {len(files)} released file(s) are byte-identical to this run's "
                   f"attested clean outputs; the rows of the other {len(files) - identical} were "
                   "checked by key only (a row whose key was changed is not detected there)")
        key_note = ("" if recorded is not None
                    else "; this run's log predates key checks, so the HMAC key itself is not confirmed")
        none_in = ("none excluded in the log (this run kept its unverified rows, which may be "
                   "released)" if keep_unverified else "none in the log")
        self.add("released", True, f"{n} released rows, {none_in}; released + {withheld} "
                 f"withheld = {rows.get('scanned')} scanned rows; {how}{key_note}"
                 + self._unchecked_files())


    @functools.cached_property
    def _release(self) -> tuple[list[Path], list[str]]:
        """The release's parquet files, by content (``PAR1`` at both ends) whatever their
        names -- a parquet file named ``x.bak`` is checked too -- and the names of its
        other files (a README, a dataset card). The directory is walked once."""
        path = Path(self.released or "")
        if not path.is_dir():
            return [path], []
        parquet: list[Path] = []
        other: list[str] = []
        for p in sorted(p for p in path.rglob("*") if p.is_file()):
            if _is_parquet(p):
                parquet.append(p)
            else:
                other.append(str(p.relative_to(path)))
        return parquet, other

    def _released_files(self) -> list[Path]:
        return self._release[0]

    def _unchecked_files(self) -> str:
        """The release's files that are not parquet: the check cannot read rows from
        them, so the reason names them."""
        other = self._release[1]
        if not other:
            return ""
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        return f"; {len(other)} file(s) that are not parquet were not read: {shown}"

    def _clean_digests(self) -> dict[str, dict[str, Any]]:
        """This run's clean outputs by SHA-256 (run.json's, which the attestation signs)."""
        return {c["sha256"].split(":", 1)[-1]: c for c in self.run.get("outputs", {}).get("clean", [])}

    def _keeps_unverified(self) -> bool:
        return bool(self.run.get("config", {}).get("keep_unverified"))

    def _withheld(self) -> int:
        """Rows the run kept out of its clean output: excluded, and unverified unless kept."""
        rows = self.summary.get("rows", {})
        return int(rows.get("excluded", 0) + (0 if self._keeps_unverified() else rows.get("unverified", 0)))

    def _check_released_files(self) -> None:
        """A run keyed ``FILE:ROW``: released rows carry no key to commit to, so the
        release is checked file by file instead -- each released file must be
        byte-identical to one of the run's clean outputs (whose digests the attestation
        signs), and released + withheld rows must equal the scanned rows."""
        clean = self._clean_digests()
        if not clean:
            self.add("released", False, "rows were keyed FILE:ROW and the run wrote no clean output to "
                     "compare the release with (scan with --key COLUMN, or with --write-clean)")
            return
        files = self._released_files()
        problems, n, seen = [], 0, set()
        for f in files:
            try:
                digest, _ = _sha256_path(str(f))
            except Exception as exc:  # unreadable is a failed check, never a traceback
                problems.append(f"{f}: cannot read ({type(exc).__name__})")
                continue
            match = clean.get(digest)
            if match is None:
                problems.append(f"{f}: not byte-identical to any clean output of this run")
            elif digest in seen:
                problems.append(f"{f}: the same clean output released twice")
            else:
                seen.add(digest)
                n += int(match["rows"])
        rows = self.summary.get("rows", {})
        withheld = self._withheld()
        if not problems and n + withheld != rows.get("scanned"):
            problems.append(f"released {n} + withheld {withheld} rows != {rows.get('scanned')} scanned "
                            "(a clean output is missing from the release)")
        if problems:
            self.add("released", False, "; ".join(problems))
        else:
            self.add("released", True, f"rows keyed FILE:ROW: the {len(files)} released file(s) are "
                     f"byte-identical to this run's clean outputs; released {n} + {withheld} withheld = "
                     f"{rows.get('scanned')} scanned rows (row commitments need a keyed run)"
                     + self._unchecked_files())


def verify(out: str | Path, **options: Any) -> list[Check]:
    return Verification(out, **options).run_all()


__all__ = ["CROISSANT", "FAIL", "PASS", "SKIP", "Check", "verify"]
