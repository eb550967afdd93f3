"""Writing a run directory so that a crash never leaves files that look complete.

Everything is first written into a staging directory inside ``OUT`` (same
filesystem, so the final moves are atomic renames). On success the previous
``run.json`` is removed, each output is renamed into place, and ``run.json`` is
renamed last: its presence is what marks a run directory complete. On failure the
staging directory is removed and ``OUT`` is left as it was.

``restricted/`` is created owner-only (0700) and every file in it 0600, because it
points at matched items.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datahygiene.errors import OutputError

RESTRICTED = "restricted"
OWNER_DIR = 0o700
# Directories a run creates in OUT: never writable by others, whatever the umask (0777
# under umask 000 would let anyone replace the evidence before it is published).
PUBLIC_DIR = 0o755
OWNER_FILE = 0o600


def dumps(data: Any) -> bytes:
    """Canonical JSON for outputs: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """An OSError while writing ``path`` becomes an :class:`OutputError` naming the
    file. A failed ``write()`` -- a full disk (ENOSPC), a quota, a file-size limit, an
    I/O error -- carries no file name of its own, and neither does pyarrow's "Error
    writing bytes to file": the user was left with "No space left on device" and no
    way to tell which filesystem filled up. An error that names its own file (a
    rename, a directory that could not be made) keeps that name."""
    try:
        yield
    except OSError as exc:
        where = exc.filename if getattr(exc, "filename", None) else path
        why = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc) or type(exc).__name__)
        raise OutputError(f"{where}: cannot write ({why})") from exc


def write_parquet(table: pa.Table, path: Path) -> None:
    """Deterministic parquet: same table -> same bytes (no timestamps, fixed options)."""
    with writing(path):
        pq.write_table(table, path, compression="zstd", compression_level=3,
                       row_group_size=1 << 20, write_statistics=True, store_schema=True)


class RunWriter:
    """Context manager around a staging directory; see the module docstring."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        try:
            self.out.mkdir(mode=PUBLIC_DIR, parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.out}: cannot create output directory ({exc.strerror})") from None
        if not os.access(self.out, os.W_OK):
            raise OutputError(f"{self.out}: output directory is not writable")
        self.stage = self.out / f".staging-{uuid.uuid4().hex[:12]}"
        self.stage.mkdir()
        self._restricted = self.stage / RESTRICTED
        self._restricted.mkdir(mode=OWNER_DIR)
        os.chmod(self._restricted, OWNER_DIR)

    committed = False  # True once commit() has put the marker (run.json) in place

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.stage.exists():
            shutil.rmtree(self.stage, ignore_errors=True)

    def path(self, rel: str) -> Path:
        """Staging path for an output (parents created; restricted ones owner-only)."""
        p = self.stage / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.startswith(RESTRICTED + "/"):
            d = p.parent
            while d != self.stage:
                os.chmod(d, OWNER_DIR)
                d = d.parent
        return p

    def write_bytes(self, rel: str, data: bytes) -> Path:
        p = self.path(rel)
        mode = OWNER_FILE if rel.startswith(RESTRICTED + "/") else 0o644
        with writing(p):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        return p

    def write_json(self, rel: str, data: Any) -> Path:
        return self.write_bytes(rel, dumps(data))

    def seal(self, rel: str) -> None:
        """Fix permissions of a file written by a library into ``path(rel)``: owner-only
        under ``restricted/``, elsewhere as the umask made it but never writable by group
        or others (pyarrow creates files 0666 less the umask: under umask 000 a clean
        file was world-writable)."""
        p = self.stage / rel
        if rel.startswith(RESTRICTED + "/"):
            os.chmod(p, OWNER_FILE)
        else:
            os.chmod(p, stat.S_IMODE(os.stat(p).st_mode) & ~0o022)

    def commit(self, marker: str = "run.json", late: tuple[str, ...] = ("public/checkpoint",)
               ) -> None:
        """Move every staged output into place: ``late`` files (what commits to the
        others, e.g. the signed checkpoint over the log) after the rest, ``marker``
        last of all."""
        old_marker = self.out / marker
        if old_marker.exists():
            old_marker.unlink()
        for sub in ("clean", f"{RESTRICTED}/reports"):
            # a directory of per-run outputs is replaced whole, so no stale file survives;
            # a run without one removes the previous run's, which its run.json would not
            # describe (clean files may hold rows that newer lists exclude; a report stub
            # left from another run could be filed by mistake)
            if (self.out / sub).exists():
                shutil.rmtree(self.out / sub)
        files = sorted((p for p in self.stage.rglob("*") if p.is_file()),
                       key=lambda p: (str(p.relative_to(self.stage)) in late, str(p)))
        for src in files:
            rel = src.relative_to(self.stage)
            if str(rel) == marker:
                continue
            dst = self.out / rel
            for parent in reversed(rel.parents[:-1]):
                d = self.out / parent
                owner_only = str(parent).split("/")[0] == RESTRICTED
                if not d.exists():  # created owner-only: never open to others, even briefly
                    d.mkdir(mode=OWNER_DIR if owner_only else PUBLIC_DIR)
                if owner_only:
                    os.chmod(d, OWNER_DIR)
            os.replace(src, dst)
        if (self.stage / marker).exists():
            os.replace(self.stage / marker, old_marker)
        self.committed = True  # OUT holds a complete run from here on, whatever stops us
        shutil.rmtree(self.stage, ignore_errors=True)
