"""Crash-safe runs: a persistent work area inside ``OUT`` and one completion marker
per input file, so ``--resume`` skips the files a crashed run had finished.

Layout (``OUT/.work/``, owner-only: the parts point at matched rows)::

    state.json          what the run depends on: tool version, configuration, list
                        fingerprints, each input's size and parquet footer digest
    stage/              the run directory being built (RunWriter's staging area)
    parts/NNNNNN.parquet  excluded/unverified rows of input NNNNNN (EXCLUSION_SCHEMA);
                        none for an input with no such row (its marker says 0)
    done.log            the markers: one JSON line per finished input, written after
                        its part and clean file are complete on disk (both fsynced;
                        the line itself is not: losing one only means scanning that
                        input again)

A marker is the only thing that makes a file count as finished: whatever a crash
leaves half-written without one (a clean file cut short, a part) is redone. The
final outputs are assembled from the parts in input order, so a resumed run writes
the same bytes as an uninterrupted one. ``run.json`` still lands last; until it
does ``OUT`` holds nothing that looks complete. The work area is removed once the
run commits.

Per file rather than per row group: a clean output is one parquet file per input,
and a parquet file cannot be appended to after a crash, so a row-group marker would
save scanning but not the rewrite. Curators with a few huge files can split them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datahygiene import __version__
from datahygiene.errors import ConfigError, InputError, OutputError
from datahygiene.lists.model import HashList
from datahygiene.manifest import DigestOf, Footer, InputFile
from datahygiene.outputs import (
    OWNER_DIR,
    OWNER_FILE,
    PUBLIC_DIR,
    RESTRICTED,
    RunWriter,
    write_parquet,
    writing,
)
from datahygiene.step import EMPTY_EXCLUSIONS, EXCLUSION_SCHEMA

_replace = os.replace  # bound once: markers are not part of RunWriter's commit
WORK_DIR = ".work"
WORK_FORMAT = "datahygiene-work/1"
# Settings that change how fast a run goes, never what it writes: a run may be
# resumed with different ones (even on the other engine).
_NOT_IDENTITY = ("engine", "threads", "batch_size")


def resume_identity(config_desc: dict[str, Any], signals: list[dict[str, Any]],
                    lists: list[HashList], files: list[InputFile],
                    footers: list[Footer]) -> dict[str, Any]:
    """Everything a run's outputs depend on, grouped so a refusal can say which part
    changed (without quoting a value). ``footers``: the files' footers as the scan
    read them (:func:`datahygiene.manifest.read_footer`: each file's size and the
    SHA-256 of its footer bytes with the 8-byte tail)."""
    inputs = [{"path": f.path, "bytes": ft.size, "footer": ft.digest}
              for f, ft in zip(files, footers, strict=True)]
    return {
        "format": WORK_FORMAT,
        "tool": __version__,
        "config": {k: v for k, v in config_desc.items() if k not in _NOT_IDENTITY},
        "signals": signals,
        "lists": [{"id": hl.id, "signal": hl.signal, "fingerprint": hl.fingerprint} for hl in lists],
        "inputs": inputs,
    }


def _why_different(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("format") != new["format"] or old.get("tool") != new["tool"]:
        return "it was started by a different datahygiene version"
    if old.get("lists") != new["lists"]:
        ids_old = [x.get("id") for x in old.get("lists", [])]
        if ids_old != [x["id"] for x in new["lists"]]:
            return "the lists differ from the interrupted run's"
        changed = [n["id"] for o, n in zip(old["lists"], new["lists"], strict=False) if o != n]
        which = changed[0] if changed else "?"
        return f"list {which} has a different fingerprint than in the interrupted run"
    if old.get("inputs") != new["inputs"]:
        paths_old = [x.get("path") for x in old.get("inputs", [])]
        if paths_old != [x["path"] for x in new["inputs"]]:
            return "the manifest files differ from the interrupted run's"
        changed = [n["path"] for o, n in zip(old["inputs"], new["inputs"], strict=False) if o != n]
        return f"input {changed[0]} changed since the interrupted run"
    if old.get("config") != new["config"]:
        keys = sorted(k for k in set(old.get("config", {})) | set(new["config"])
                      if old.get("config", {}).get(k) != new["config"].get(k))
        return f"the configuration differs from the interrupted run's ({', '.join(keys)})"
    return "the signals differ from the interrupted run's (column or threshold changed)"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with writing(tmp):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_FILE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _replace(tmp, path)


class InputChanged(InputError):
    """An input finished before the interruption has changed: its kept results cannot be
    used. Its message says to rerun without --resume; the generic "--resume skips the
    finished inputs" hint a scan adds to other errors would contradict it."""


@dataclass
class FileRecord:
    """What a marker says about one finished input file."""

    index: int
    path: str
    rows: int
    flagged: int
    clean_rows: int
    digest: str  # ALGORITHM:HEX of the whole input
    clean: str | None


MARKER_LOG = "done.log"


def read_markers(path: Path) -> dict[int, FileRecord]:
    """The finished inputs a marker log records (the last line for an input wins;
    a line that does not parse -- one a crash cut short -- is ignored)."""
    out: dict[int, FileRecord] = {}
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            rec = FileRecord(**json.loads(line))
        except (ValueError, TypeError):
            continue
        out[rec.index] = rec
    return out


_EMPTY_PART = EMPTY_EXCLUSIONS  # tables are immutable: one serves every clean input


def _lock_dir(out: Path) -> int:
    """An exclusive lock on OUT itself (no file is left behind), held for the whole run:
    two scans into one OUT would share its work area, and one would remove it under the
    other."""
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"{out}: another scan is writing into this directory; wait for it "
                          "to finish, or give another --out") from None
    except OSError:
        pass  # a filesystem without locks: run unlocked, as before
    return fd


class WorkArea:
    """``OUT/.work``: see the module docstring. Opening it without ``resume``
    discards whatever an earlier, unfinished run left there."""

    def __init__(self, out: str | os.PathLike[str], identity: dict[str, Any], resume: bool) -> None:
        self.out = Path(out)
        try:
            self.out.mkdir(mode=PUBLIC_DIR, parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.out}: cannot create output directory ({exc.strerror})") from None
        if not os.access(self.out, os.W_OK):
            raise OutputError(f"{self.out}: output directory is not writable")
        self._lock_fd: int | None = _lock_dir(self.out)
        try:
            self._open(identity, resume)
        except BaseException:
            self.unlock()  # a refused --resume must not hold OUT while its error is kept
            raise

    def _open(self, identity: dict[str, Any], resume: bool) -> None:
        self.root = self.out / WORK_DIR
        self.identity = identity
        state = self.root / "state.json"
        self._fresh = not (resume and state.is_file())
        if not self._fresh:
            try:
                old = json.loads(state.read_text())
            except (OSError, ValueError):
                raise ConfigError(f"{state}: unreadable; rerun without --resume to start over") from None
            if old != identity:
                raise ConfigError(f"{self.out}: cannot resume: {_why_different(old, identity)}; "
                                  "rerun without --resume to start over")
        else:
            if self.root.exists():
                shutil.rmtree(self.root)
            self.root.mkdir(mode=OWNER_DIR)
            # compared as parsed JSON, never read by a person: one line, which Python's
            # compiled encoder writes (the indented one took 0.16 s for 20,000 inputs,
            # on the main thread before the scan starts)
            _atomic_bytes(state, json.dumps(identity, sort_keys=True, ensure_ascii=False,
                                            separators=(",", ":")).encode() + b"\n")
        os.chmod(self.root, OWNER_DIR)
        for sub in ("parts", "stage"):
            (self.root / sub).mkdir(mode=OWNER_DIR, exist_ok=True)
        self.stage = self.root / "stage"
        self._queue: deque[tuple[int, str, int, pa.Table, int, DigestOf,
                                 str | None]] = deque()
        self.records: dict[int, FileRecord] = {}
        # Markers are written (after fsyncing what they vouch for: ~1 ms each here, far
        # more on network storage) by a thread of their own, in input order, so the scan
        # never waits for them. They are lines of one log, not a file each: creating a
        # file per input cost more than scanning a 10,000-row input.
        self._marker = ThreadPoolExecutor(1, thread_name_prefix="datahygiene-marker")
        self._pending: deque[Future[None]] = deque()
        self.log_path = self.root / MARKER_LOG
        self._log: Any = None  # opened by the marker thread on its first marker

    def unlock(self) -> None:
        """Let another run into OUT start (after the commit, or once this run failed)."""
        fd = getattr(self, "_lock_fd", None)  # None too when __init__ failed before locking
        if fd is not None:
            os.close(fd)
            self._lock_fd = None

    def __del__(self) -> None:
        self.unlock()

    def _name(self, i: int) -> str:
        return f"{i:06d}"

    def finished(self, files: list[InputFile], clean_names: list[str] | None) -> dict[int, FileRecord]:
        """Files a previous run finished (marker present, outputs intact). Any staged
        clean output of an unfinished file is removed: it may be cut short."""
        done: dict[int, FileRecord] = {}
        if self._fresh:  # a new work area holds nothing (no need to look, per input)
            self.records = {}
            return done
        logged = read_markers(self.log_path)
        for i, f in enumerate(files):
            clean = self.stage / clean_names[i] if clean_names else None
            rec = logged.get(i)
            ok = (rec is not None and rec.path == f.path
                  and (rec.flagged == 0 or (self.root / "parts" / f"{self._name(i)}.parquet").is_file())
                  and (clean is None or clean.is_file()))
            if ok and rec is not None:
                done[i] = rec
                continue
            if clean is not None:
                clean.unlink(missing_ok=True)
        self.records = dict(done)
        return done

    def load_flagged(self, i: int) -> pa.Table:
        if self.records[i].flagged == 0:  # no part was written
            return _EMPTY_PART
        t = pq.read_table(self.root / "parts" / f"{self._name(i)}.parquet")
        return pa.Table.from_batches(t.to_batches(), schema=EXCLUSION_SCHEMA)

    def complete(self, i: int, path: str, rows: int, flagged: list[pa.Table], clean_rows: int,
                 digest: DigestOf, clean: str | None) -> None:
        """Record file ``i`` as finished once its input digest is known; the caller
        has closed its clean output. Never waits: markers whose digest is not ready
        yet are written by a later call or :meth:`flush`."""
        table = pa.concat_tables(flagged).combine_chunks() if flagged else _EMPTY_PART
        self._queue.append((i, path, rows, table, clean_rows, digest, clean))
        self._submit(wait=False)

    def _submit(self, wait: bool) -> None:
        """Hand queued markers to the marker thread (those whose digest is ready, or
        all with ``wait``) and raise the error of any marker that failed."""
        ready = []
        while self._queue and (wait or self._queue[0][5].done()):
            ready.append(self._queue.popleft())
        if ready:  # one job for all: each job wakes the marker thread (a GIL hand-over)
            self._pending.append(self._marker.submit(self._mark_all, ready))
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()  # raises what the marker raised

    def flush(self) -> None:
        """Wait until every finished input's marker is on disk."""
        self._submit(wait=True)
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Stop the marker thread once the markers handed to it are written: they are
        for inputs that are finished, which an interrupted run keeps for --resume."""
        self._marker.shutdown(wait=True)
        if self._log is not None:
            log, self._log = self._log, None
            with writing(self.log_path):  # what a failed flush left in its buffer
                log.close()

    def _mark_all(self, items: list[tuple[Any, ...]]) -> None:
        """Markers for these finished inputs, in order, with one write to the log (the
        lines of those before a failure are written, then the failure raised)."""
        lines: list[bytes] = []
        records: list[FileRecord] = []
        try:
            for item in items:
                records.append(self._vouch(*item))
                lines.append(json.dumps(vars(records[-1]), sort_keys=True).encode() + b"\n")
        finally:
            if lines:
                self._append(lines, records)

    def _vouch(self, i: int, path: str, rows: int, flagged: pa.Table, clean_rows: int,
               digest: DigestOf, clean: str | None) -> FileRecord:
        """Put on disk what input ``i``'s marker vouches for; return the marker."""
        if flagged.num_rows:  # most inputs flag nothing: their marker says so, no part file
            part = self.root / "parts" / f"{self._name(i)}.parquet"
            tmp = part.with_name(part.name + ".tmp")
            write_parquet(flagged, tmp)
            with writing(tmp):
                os.chmod(tmp, OWNER_FILE)
                _fsync_path(tmp)
                _replace(tmp, part)
        if clean is not None:
            with writing(self.stage / clean):  # fsync reports a write that failed late (NFS)
                _fsync_path(self.stage / clean)
        return FileRecord(i, path, rows, flagged.num_rows, clean_rows, digest.result()[0], clean)

    def _append(self, lines: list[bytes], records: list[FileRecord]) -> None:
        # The marker is not fsynced: what it vouches for (the part, the clean file) is on
        # disk before it is written, and a marker lost or cut short by a power failure
        # only makes --resume scan that input again (an unreadable line counts as
        # absent). A process that is killed loses nothing it wrote.
        with writing(self.log_path):
            if self._log is None:
                self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the run, closed by close()
                os.chmod(self.log_path, OWNER_FILE)
                if self._log.tell():  # a resumed run: never continue a line a crash cut short
                    self._log.write(b"\n")
            self._log.write(b"".join(lines))
            self._log.flush()
        for rec in records:
            self.records[rec.index] = rec

    def check_inputs(self, inputs: list[dict[str, Any]]) -> None:
        """An input whose full digest differs from the one recorded when it was
        finished changed under the run: its recorded results cannot be trusted."""
        for i, rec in self.records.items():
            if inputs[i]["digest"] != rec.digest:
                raise InputChanged(f"{rec.path}: changed since the interrupted run; "
                                   "rerun without --resume to start over")

    def writer(self) -> ResumableRunWriter:
        return ResumableRunWriter(self)


class ResumableRunWriter(RunWriter):
    """RunWriter whose staging directory is ``OUT/.work/stage``: it outlives a crash
    or an error (so ``--resume`` can pick it up), and the whole work area goes once
    the run commits."""

    def __init__(self, work: WorkArea) -> None:
        # not RunWriter.__init__: its staging directory is random and short-lived
        self.out = work.out
        self.work = work
        self.stage = work.stage
        self._restricted = self.stage / RESTRICTED
        self._restricted.mkdir(mode=OWNER_DIR, exist_ok=True)
        os.chmod(self._restricted, OWNER_DIR)

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        # Kept for --resume after an interruption (Ctrl-C; a kill never gets here), and
        # after an error once some inputs are finished: a storage error or a full disk
        # late in a long run must not throw away hours of finished work. A run that
        # stops with an error before finishing any input leaves OUT as it was, like
        # RunWriter.
        try:
            self.work.close()
        except OutputError:
            if et is None:
                raise
            # the error already on its way is the one to report (the marker log's
            # close fails too when the disk that failed the run is full)
        if et is not None:
            # a run.json a failure cut short in the stage (it is written last) must not
            # lie about, even in the work area: the staged files are not a run
            (self.stage / "run.json").unlink(missing_ok=True)
        try:
            if et is not None and (issubclass(et, KeyboardInterrupt | SystemExit) or self.work.records):
                return
            if self.work.root.exists():
                shutil.rmtree(self.work.root, ignore_errors=True)
        finally:
            self.work.unlock()

    def commit(self, marker: str = "run.json", late: tuple[str, ...] = ("public/checkpoint",)
               ) -> None:
        self.work.close()
        # The parts (matched rows' keys and references) and markers go first: the staged
        # outputs hold all they say, and a kill between run.json landing and the work
        # area's removal must not leave them beside a complete run.
        for name in ("parts", MARKER_LOG, "state.json"):
            p = self.work.root / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        super().commit(marker, late)
        shutil.rmtree(self.work.root, ignore_errors=True)
        self.work.unlock()
