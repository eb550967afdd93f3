"""Finding manifest files and describing them for coverage.

A manifest argument is a parquet file, a directory (its ``*.parquet`` files,
recursively, other files ignored) or a glob; local paths or any fsspec URL. Files are
listed in sorted order so that every run sees them in the same order.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import posixpath
import shutil
import stat
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import blake3
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

try:
    from pyarrow._parquet import ParquetReader as _ParquetReader
except ImportError:  # pragma: no cover - a pyarrow that moved it
    _ParquetReader = None

from datahygiene.config import INPUT_DIGESTS
from datahygiene.errors import DatahygieneError, InputError, OutputError
from datahygiene.urls import shown_url

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    """One manifest file: where it is and how to open it."""

    path: str  # as shown in outputs (the user's spelling, fsspec protocol kept)
    fs: Any
    fs_path: str  # the path the filesystem understands
    # Where the file is, for naming its clean output: for a local file the absolute path
    # with its directories resolved (symlinks, "..") and its own name kept; elsewhere
    # the filesystem's path. Never holds "..".
    where: str = ""
    # a remote file's size and version as the listing that found it told them (see
    # remote_state); None for a local file, or where the listing told none
    listed: FileState | None = field(default=None, compare=False, repr=False)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def open(self, size: int | None = None, exact: bool = False) -> Any:
        """A binary file object. Local files open as Arrow native files, whose reads run
        without the GIL (an fsspec file object's reads hold it, which serialises the
        engine's threads on I/O); other filesystems go through fsspec. ``size``: the
        file's size if known (from its footer's reading), which spares fsspec's
        buffered files the round trip that asks for it. ``exact``: each read fetches
        what it asks for and no more (a task's reads of its column chunks): fsspec's
        buffered files otherwise read ahead a block of several MB, which a task whose
        row group is small fetched for each of its few reads (a file of 2,000-row row
        groups downloaded 53 times over)."""
        if self.is_local:
            return pa.OSFile(self.fs_path, "rb")
        kw: dict[str, Any] = {"size": size} if size is not None else {}
        if exact:
            kw["cache_type"] = "none"
        if kw:
            try:
                return self.fs.open(self.fs_path, "rb", **kw)
            except TypeError:  # a filesystem whose files take no size or cache type
                pass
        return self.fs.open(self.fs_path, "rb")


# Remote files (fsspec URLs other than file://) looked up, footers read and digests
# computed at once: each is a round trip or more, so one at a time leaves the network
# idle (object storage answers in tens of milliseconds).
REMOTE_AT_ONCE = 8


def remote_at_once(threads: int | None) -> int:
    """How many remote lookups, footers and digests a scan keeps in flight:
    :data:`REMOTE_AT_ONCE`, or more where the scan was given more threads (``--threads``:
    a curator raising it for a bucket of many shards wants more requests in flight
    before the scan starts too, where the footers are read)."""
    return max(REMOTE_AT_ONCE, threads or 0)


def _is_remote(spec: str) -> bool:
    return "://" in spec and not spec.startswith("file://")


def _said(exc: BaseException, raw: str) -> str:
    """:func:`_short` of a remote filesystem's error, with the URL ``raw`` it may quote
    (and its query, a signature) named as :func:`shown_url` names it."""
    text, shown = _short(exc), shown_url(raw)
    return text.replace(raw, shown) if raw != shown else text


def in_order(pool: ThreadPoolExecutor, fn: Any, items: Iterable[Any],
             ahead: int) -> Generator[Any, None, None]:
    """``fn`` over ``items`` on ``pool``, the results in the items' order (an error
    raised where its item comes), with at most ``ahead`` of them submitted and not yet
    taken: a future for each of hundreds of thousands of inputs would hold ~1 KB each.
    Closing the iterator early cancels those not started."""
    todo = iter(items)
    pending: deque[Future[Any]] = deque(pool.submit(fn, x) for x in itertools.islice(todo, ahead))
    try:
        while pending:
            got = pending.popleft().result()
            pending.extend(pool.submit(fn, x) for x in itertools.islice(todo, 1))
            yield got
    finally:
        for fut in pending:
            fut.cancel()


def _is_parquet_name(p: str) -> bool:
    return p.lower().endswith(PARQUET_SUFFIXES)


def resolve_manifests(specs: Iterable[str], at_once: int = REMOTE_AT_ONCE) -> list[InputFile]:
    """Expand manifest arguments into a sorted, de-duplicated list of parquet files.

    A local file is one input however it is named -- ``data//x.parquet``,
    ``./data/x.parquet``, ``file:///abs/data/x.parquet``, a symlink or a hard link to it:
    it is keyed by its device and inode. Scanned twice, its rows would be counted twice
    and its clean file written twice over. It is shown by its shortest spelling (the
    smallest of equally short ones), whatever the order the arguments came in.

    Arguments naming remote files are looked up ``at_once`` at a time: each costs a
    round trip or two, and a manifest given as thousands of URLs took minutes one
    after another. An error is the first argument's, in the order given."""
    specs = list(specs)
    out: dict[tuple[Any, ...], InputFile] = {}
    if len(specs) > 1 and any(_is_remote(s) for s in specs):
        with ThreadPoolExecutor(at_once, thread_name_prefix="datahygiene-list") as pool:
            listed = list(in_order(pool, _list_spec, specs, 2 * at_once))
    else:
        listed = [_list_spec(s) for s in specs]
    for spec, (fs, fs_path, found, is_glob, infos) in zip(specs, listed, strict=True):
        protocol = spec.split("://", 1)[0] + "://" if "://" in spec else ""
        local = isinstance(fs, LocalFileSystem)
        for p in found:
            if local:
                where = _located(p)
                if protocol:
                    shown = protocol + where
                elif ".." in p.split("/"):  # shown by where it really is, not as typed
                    shown = where if spec.startswith("/") else posixpath.relpath(
                        where, os.path.realpath(os.getcwd()))
                else:
                    shown = posixpath.normpath(_local_display(spec, fs_path, p, is_glob))
                try:
                    st = os.stat(p)
                except OSError as exc:
                    raise InputError(f"{shown}: cannot read ({exc.strerror})") from None
                if not stat.S_ISREG(st.st_mode):  # a FIFO would block the scan for ever
                    raise InputError(f"{shown}: not a regular file")
                key: tuple[Any, ...] = ("local", st.st_dev, st.st_ino)
            else:
                # as the user spelled its protocol; an HTTP filesystem's paths are whole
                # URLs, named without what may be a secret (shown_url)
                # (one object behind two signatures is one input)
                shown = shown_url(p if "://" in p else protocol + p)
                where = shown_url(p)
                key = (protocol, where)
            prev = out.get(key)
            if prev is None or (len(shown), shown) < (len(prev.path), prev.path):
                out[key] = InputFile(shown, fs, p, where, infos.get(p))
    return sorted(out.values(), key=lambda f: f.path)


def _located(path: str) -> str:
    """A local absolute path with ".." resolved where it really leads: through the
    directories' symlinks (``link/../x`` is the ``x`` beside the link's target, not
    beside the link). The file's own name is kept even if it is a symlink (a Hugging
    Face cache's files are symlinks into a store of blobs named by digest)."""
    if ".." not in path.split("/"):
        return posixpath.normpath(path)
    return posixpath.join(os.path.realpath(posixpath.dirname(path)), posixpath.basename(path))


def _unlistable(exc: OSError) -> None:
    """``os.walk``'s onerror: a directory that cannot be listed is an input error, never
    passed over (its files would go unscanned and the coverage look complete)."""
    raise InputError(f"{exc.filename}: cannot list this directory ({exc.strerror}); "
                     "its files would not be scanned")


def _walk_local(root: str) -> list[str]:
    """The parquet files below a local directory, through symlinked directories too,
    each directory once (a link to an ancestor cannot loop). Real directories are walked
    first and links after, so a file reachable both ways is named by its real path
    (``v2/x.parquet``, not ``latest/x.parquet`` that may point elsewhere tomorrow). A
    directory that cannot be read is an error: skipping it would leave its files
    unscanned and the run's coverage silently short."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    links: list[str] = []

    def walk(top: str, follow: bool) -> None:
        for dirpath, dirnames, filenames in os.walk(top, onerror=_unlistable, followlinks=follow):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames.sort()
            if not follow:
                links.extend(posixpath.join(dirpath, n) for n in dirnames
                             if os.path.islink(posixpath.join(dirpath, n)))
            found.extend(posixpath.join(dirpath, n) for n in filenames if _is_parquet_name(n))

    walk(root, False)
    for link in sorted(links):
        walk(link, True)
    return sorted(found)


def _check_glob_dirs(pattern: str) -> None:
    """A local glob passes over directories it cannot list (so does the OS's): list every
    directory the pattern could reach -- below its fixed leading part, as deep as its
    components go, or all the way for ``**`` -- and refuse one that cannot be listed,
    rather than leave its files unscanned."""
    parts = pattern.split("/")
    first = next(i for i, p in enumerate(parts) if set(p) & _GLOB_CHARS)
    base = "/".join(parts[:first]) or "/"
    if not os.path.isdir(base):
        return
    depth = None if "**" in pattern else len(parts) - first - 1  # directory levels to list
    top = base.rstrip("/").count("/")

    for dirpath, dirnames, _ in os.walk(base, onerror=_unlistable):
        if depth is not None and dirpath.rstrip("/").count("/") - top >= depth:
            dirnames[:] = []


def _list_spec(spec: str) -> tuple[Any, str, list[str], bool, dict[str, FileState | None]]:
    """The filesystem, its path, the parquet files one manifest argument names,
    whether the argument was read as a glob, and the remote files' states as the
    listing told them (:func:`info_state`: their footers and digests need not ask).
    A filesystem whose package is missing (``s3://`` without s3fs) or that cannot be
    reached is a one-line input error, not a traceback."""
    named = shown_url(spec)  # a signed URL's query is read through, never shown
    try:
        fs, fs_path = fsspec.core.url_to_fs(spec)
    except ImportError as exc:
        raise InputError(f"{named}: no filesystem for this URL ({_said(exc, spec)})") from None
    except ValueError as exc:
        raise InputError(f"{named}: not a usable path or URL ({_said(exc, spec)})") from None
    # what the name says (a parquet file? a glob?) is in its path, not in a URL's query
    name = shown_url(fs_path)
    try:
        # a path that exists is taken literally, even with a "[" or "*" in its name
        local = isinstance(fs, LocalFileSystem)
        infos: dict[str, FileState | None] = {}
        # a remote file named as one: one request, where asking first whether it is a
        # directory cost another (an HTTP server's answer to that is the file itself)
        first = (_file_info(fs, fs_path) if not local and _is_parquet_name(name)
                 and not any(ch in name for ch in _GLOB_CHARS) else None)
        is_glob = (first is None and any(ch in name for ch in _GLOB_CHARS)
                   and not fs.exists(fs_path))
        if first is not None:
            found, infos = [fs_path], {fs_path: info_state(first)}
        elif is_glob:
            if local:
                _check_glob_dirs(fs_path)
                found = sorted(p for p in fs.glob(fs_path) if fs.isfile(p))
            else:
                infos = _files_listed(fs.glob(fs_path, detail=True), lambda p: True)
                found = sorted(infos)
            if not found:
                raise InputError(f"{named}: no files match this pattern")
        elif fs.isdir(fs_path):
            if local:
                found = _walk_local(fs_path)
            else:
                infos = _files_listed(fs.find(fs_path, detail=True), _is_parquet_name)
                found = sorted(infos)
            if not found:
                raise InputError(f"{named}: directory holds no .parquet files")
        elif not local and (info := _file_info(fs, fs_path)) is not None:
            found, infos = [fs_path], {fs_path: info_state(info)}
        elif local and fs.isfile(fs_path):
            found = [fs_path]
        elif fs.exists(fs_path):  # a FIFO, socket or device: as in a directory (_walk_local)
            raise InputError(f"{named}: not a regular file")
        else:
            raise InputError(f"{named}: manifest not found")
    except InputError:
        raise
    except PermissionError:
        raise InputError(f"{named}: permission denied") from None
    except Exception as exc:  # a remote filesystem's own errors: network, auth, quota
        raise InputError(f"{named}: cannot list ({type(exc).__name__}: "
                         f"{_said(exc, spec)})") from None
    return fs, fs_path, found, is_glob, infos


def _files_listed(listing: dict[str, dict[str, Any]], keep: Callable[[str], bool]
                  ) -> dict[str, FileState | None]:
    """The files of a detailed fsspec listing that ``keep`` takes, with their states."""
    return {p: info_state(info) for p, info in listing.items()
            if info.get("type") == "file" and keep(p)}


def _file_info(fs: Any, path: str) -> dict[str, Any] | None:
    """``fs.info(path)`` when it names a file, else None (as ``fs.isfile`` answers,
    which asks the same and drops the answer)."""
    try:
        info = fs.info(path)
    except Exception:  # as fs.isfile: not there, or not to be asked
        return None
    return info if info.get("type") == "file" else None


def _local_display(spec: str, fs_path: str, found: str, is_glob: bool) -> str:
    """Show local files relative to how the user named them (``data/x.parquet``,
    not ``/home/me/project/data/x.parquet``), so outputs do not depend on the
    working directory's absolute location."""
    if found == fs_path:
        return spec
    base = spec
    if is_glob:
        # a glob: keep the non-glob leading directories the user typed
        parts = spec.split("/")
        lead = [p for p in parts[: next(i for i, p in enumerate(parts) if set(p) & _GLOB_CHARS)]]
        base = "/".join(lead)
        root = fs_path.split("/")[: len(fs_path.split("/")) - (len(parts) - len(lead))]
        rel = _relative(found, "/".join(root) or "/")
    else:
        rel = _relative(found, fs_path)
    return posixpath.join(base, rel) if base else rel


def _relative(found: str, directory: str) -> str:
    """``posixpath.relpath(found, directory)``; for a file below the directory (as a
    walk or a glob finds them), its path after the directory's, without relpath's ~12
    us a file: seconds for a few hundred thousand shards."""
    prefix = directory.rstrip("/") + "/"
    rest = found[len(prefix):]
    parts = "/" + rest + "/"  # relpath would change nothing: no empty, "." or ".." part
    if (rest and found.startswith(prefix) and directory == posixpath.normpath(directory)
            and "//" not in parts and "/./" not in parts and "/../" not in parts):
        return rest
    return posixpath.relpath(found, directory)


# What tells that a local file's bytes changed without reading them again: its size
# and modification time (ns), as a list file's are checked (datahygiene/lists/text.py).
# Not the inode or the change time: FUSE mounts of object storage can number a file
# anew, or give its change time as now, between two looks at an unchanged file. A
# remote file's: its size and a number standing for the version its filesystem
# reports (an entity tag, else a modification time: info_state).
FileState = tuple[int, int]


def file_state(st: os.stat_result) -> FileState:
    return (st.st_size, st.st_mtime_ns)


def check_state(f: InputFile, fd: int, state: FileState | None) -> FileState:
    """The open file's :data:`FileState`; :func:`changed_under_scan`'s error when
    ``state`` is given and differs."""
    now = file_state(os.fstat(fd))
    if state is not None and now != state:
        raise changed_under_scan(f)
    return now


def path_state(f: InputFile) -> FileState | None:
    """A local input's :data:`FileState` now; None for other filesystems (see
    :func:`remote_state`), or when the file cannot be looked at (its reader says why)."""
    if not f.is_local:
        return None
    try:
        return file_state(os.stat(f.fs_path))
    except OSError:
        return None


# What tells a remote file's version, in the order tried, among what fsspec
# filesystems report for a file: an entity tag (S3, GCS, Azure, HTTP servers that
# send one), a generation or version id, a git blob id (the Hugging Face Hub), else a
# modification time (HTTP's Last-Modified, S3's LastModified) or a creation time
# (fsspec's in-memory filesystem).
_VERSION_FIELDS = ("ETag", "etag", "generation", "VersionId", "version_id", "blob_id",
                   "LastModified", "Last-Modified", "last_modified", "updated", "mtime",
                   "modified", "created")


def info_state(info: dict[str, Any]) -> FileState | None:
    """A remote file's :data:`FileState` from its filesystem's ``info``: its size and
    a 64-bit number standing for its version (:data:`_VERSION_FIELDS`); None when
    the filesystem tells no size or no version."""
    size = info.get("size")
    tag = next((info[k] for k in _VERSION_FIELDS if info.get(k) not in (None, "")), None)
    if size is None or tag is None:
        return None
    # a time comes as a number from one call and a datetime from another (fsspec's
    # in-memory filesystem: its listing and its info): compared in microseconds
    if isinstance(tag, datetime):
        tag = tag.timestamp()
    if isinstance(tag, int | float):
        tag = round(tag * 1_000_000)
    digest = hashlib.sha256(f"{type(tag).__name__}:{tag}".encode()).digest()
    return int(size), int.from_bytes(digest[:8], "little", signed=True)


# Per filesystem object, a twin that keeps no listings (see _uncached), with the
# filesystem itself, so that its id is not reused while the entry stands.
_UNCACHED: dict[int, tuple[Any, Any]] = {}
_UNCACHED_LOCK = threading.Lock()


def _uncached(fs: Any) -> Any:
    """A twin of ``fs`` that keeps no listings, or None where ``fs`` keeps none (or
    cannot be made again from its options): asked about a file, it asks the storage,
    and ``fs``'s own listings -- which spare its reads the request for a file's size
    and version (s3fs: one per file opened) -- stay as they are. Dropping them from
    ``fs`` instead cost every later read of the directory's files that request."""
    if not getattr(fs, "dircache", None):
        return None
    with _UNCACHED_LOCK:
        entry = _UNCACHED.get(id(fs))
        if entry is None or entry[0] is not fs:
            try:
                twin = type(fs)(*getattr(fs, "storage_args", ()),
                                **{**fs.storage_options, "use_listings_cache": False,
                                   "skip_instance_cache": True})
            except Exception:  # options it will not take again: drop its listings instead
                twin = None
            entry = _UNCACHED[id(fs)] = (fs, twin)
    return entry[1]


def remote_state(f: InputFile, fresh: bool = False) -> FileState | None:
    """A remote input's :data:`FileState`: as the listing that found it told it (no
    round trip), else as its filesystem tells it now (one); None when the filesystem
    tells no size or version, or cannot be asked (the reads that follow say why).

    ``fresh``: asked now, past any listing the filesystem keeps, to be compared with
    an earlier state: a file gone since is :func:`changed_under_scan`'s error, and a
    storage that cannot be asked an input error saying so (never taken for a change)."""
    if not fresh:
        if f.listed is not None:
            return f.listed
        try:
            return info_state(f.fs.info(f.fs_path))
        except Exception:  # unreachable, gone: the reads report it
            return None
    fs = _uncached(f.fs) or f.fs
    try:
        if fs is f.fs:
            fs.invalidate_cache(f.fs_path)
        return info_state(fs.info(f.fs_path))
    except FileNotFoundError:
        raise changed_under_scan(f) from None
    except Exception as exc:
        raise InputError(f"{f.path}: cannot ask its storage whether it changed during the scan "
                         f"({type(exc).__name__}: {_said(exc, f.fs_path)})") from None


def check_remote(f: InputFile, state: FileState | None) -> None:
    """:func:`changed_under_scan`'s error when a remote input's version now differs
    from ``state`` (its footer's): one round trip. Nothing to check without a state."""
    if state is not None and remote_state(f, fresh=True) != state:
        raise changed_under_scan(f)


def check_after_reads(f: InputFile, handle: Any, state: FileState | None) -> FileState | None:
    """After reading ``f`` through ``handle``: :func:`changed_under_scan`'s error if it
    is not in ``state``. A local file's state is the open file's (returned, taken now
    where ``state`` is None); a remote one's version is asked once (one round trip,
    nothing to ask without a state)."""
    if f.is_local:
        return check_state(f, handle.fileno(), state)
    check_remote(f, state)
    return state


def changed_under_scan(f: InputFile, what: str | None = None) -> InputError:
    """The error for an input whose size or modification time (a remote one's size or
    version; ``what`` differs, where given) differs between the scan's reads of it
    (footer, input digest, pages): its digest in run.json would not be of the bytes
    scanned."""
    what = what or ("size or modification time" if f.is_local
                    else "size or version (its storage's tag)")
    return InputError(f"{f.path}: changed while the scan read it (its {what} differs between "
                      "reads); scan it again once nothing writes to it")


# A remote input of at most this many bytes is read whole, in one request, and its
# tasks scan those bytes, which are digested (WholeReads): its digest is then of the
# very bytes scanned, with no second look at its version. img2dataset's shards (10,000
# rows) are a few MB. The bytes are held while the file's tasks run: at most this
# times the threads, and a few more while a file's last tasks finish. A larger one is
# copied to local disk (spool_remote) where the scan has a local work area with room
# for it, else read by ranges and digested after (see InputDigests.release).
WHOLE_REMOTE_MAX = 32 << 20
# A spooled input is fetched this many bytes a request, each hashed as it arrives.
SPOOL_BLOCK = 8 << 20
# Spooling leaves at least this much of its disk free (else the input is read by ranges).
SPOOL_KEEP_FREE = 1 << 30


def read_remote_whole(f: InputFile, footer: Footer) -> bytes:
    """All of remote input ``f``'s bytes, in one request, checked against its footer as
    first read (:func:`read_footer`): of its size, and ending in the same footer. Other
    bytes are :func:`changed_under_scan`'s error (the scan planned its reads from that
    footer); the bytes returned are then those the scan reads and digests."""
    try:
        data = f.fs.cat_file(f.fs_path)
    except FileNotFoundError:  # gone since its footer was read
        raise changed_under_scan(f) from None
    except Exception as exc:
        raise InputError(f"{f.path}: cannot read ({_said(exc, f.fs_path)})") from None
    if len(data) != footer.size or not data.endswith(footer.raw):
        raise changed_under_scan(f, "size or footer")
    return bytes(data)


# A local input of at most this many bytes, scanned by one task, may be read whole by
# that task, which scans and digests those bytes (InputDigests.hand_over).
WHOLE_LOCAL_MAX = 32 << 20


def read_local_whole(f: InputFile, footer: Footer) -> np.ndarray:
    """All of local input ``f``'s bytes, read at once into a fresh buffer, checked
    against its footer as first read: its size and modification time before and after
    the read, and the same footer at its end. Other bytes are
    :func:`changed_under_scan`'s error; the bytes returned are then those the scan
    reads and digests."""
    fh = LocalFile.open(f, footer.size)
    try:
        fd = fh.fileno()
        check_state(f, fd, footer.state)
        data = np.empty(footer.size, dtype=np.uint8)
        view = data.data
        got = 0
        while got < footer.size:
            n = os.preadv(fd, [view[got:]], got)
            if not n:
                raise changed_under_scan(f)
            got += n
        check_state(f, fd, footer.state)
    except OSError as exc:
        raise _unreadable(f, exc) from None
    finally:
        fh.close()
    if not footer.raw or data[footer.size - len(footer.raw):].tobytes() != footer.raw:
        raise changed_under_scan(f, "size or footer")
    return data


def spool_remote(f: InputFile, footer: Footer, to: str, algorithm: str) -> tuple[str, int]:
    """Copy remote input ``f`` to the local file ``to``, :data:`SPOOL_BLOCK` bytes a
    request in order, hashing each as it arrives: its digest (``ALGORITHM:HEX``) and
    size. The copy is checked against the footer as first read, as
    :func:`read_remote_whole` checks its bytes; the scan's tasks then read the copy,
    so the digest is of the very bytes they scan, and each byte crossed the network
    once (read by ranges, a file's hash columns crossed it once for the scan and
    again, with all the rest, for the digest)."""
    h = new_digest(algorithm)
    got = 0
    try:
        dst = open(to, "wb")  # noqa: SIM115 - closed below, its errors told apart from the source's
    except OSError as exc:
        raise OutputError(f"{to}: cannot write a local copy of {f.path} ({exc.strerror})") from None
    with dst:
        try:
            src = f.open(footer.size, exact=True)
        except FileNotFoundError:  # gone since its footer was read
            raise changed_under_scan(f) from None
        except Exception as exc:
            raise InputError(f"{f.path}: cannot read ({_said(exc, f.fs_path)})") from None
        with src:
            while True:
                try:
                    block = src.read(min(SPOOL_BLOCK, footer.size - got) if got < footer.size else 1)
                except FileNotFoundError:
                    raise changed_under_scan(f) from None
                except Exception as exc:
                    raise InputError(f"{f.path}: cannot read ({_said(exc, f.fs_path)})") from None
                if not block or got + len(block) > footer.size:  # its end, or more than it had
                    break
                h.update(block)
                try:
                    dst.write(block)
                except OSError as exc:
                    raise OutputError(f"{to}: cannot write a local copy of {f.path} "
                                      f"({exc.strerror})") from None
                got += len(block)
        if got != footer.size or block:
            raise changed_under_scan(f, "size or footer")
    with open(to, "rb") as fh:
        fh.seek(got - len(footer.raw))
        if fh.read() != footer.raw:
            raise changed_under_scan(f, "size or footer")
    return f"{algorithm}:{h.hexdigest()}", got


class WholeReads:
    """Remote inputs read whole for a scan's tasks: each file is read once, by the first
    of its tasks to need it (:func:`read_remote_whole`: one request), digested from
    those bytes (:meth:`InputDigests.digest_bytes`), and its bytes shared by its tasks
    until the last of them is done (:meth:`task_done`). A file of 2,000-row row groups
    read by ranges cost a request per task and its digest's reads on top.

    Inputs in ``spooled`` are copied to local files in ``spool`` instead
    (:func:`spool_remote`), which their tasks read (memory-mapped), each deleted after
    its file's last task.

    ``footer_of(i)``: input ``i``'s footer as first read; ``tasks[i]``: how many tasks
    the scan runs on input ``i``."""

    def __init__(self, files: list[InputFile], footer_of: Callable[[int], Footer],
                 tasks: dict[int, int], digests: InputDigests, spooled: Iterable[int] = (),
                 spool: str | None = None) -> None:
        self._files, self._footer_of, self._digests = files, footer_of, digests
        self._left = dict(tasks)
        self._locks = {i: threading.Lock() for i in tasks}
        self._data: dict[int, bytes | str | None] = {}
        self._lock = threading.Lock()
        self._spooled, self._spool = frozenset(spooled), spool
        self._copying: dict[int, int] = {}  # copies being made: their sizes
        assert self._spool is not None or not self._spooled

    def __contains__(self, i: int) -> bool:
        return i in self._left

    def bytes_of(self, i: int) -> bytes | str | None:
        """Input ``i``'s bytes, or the path of its local copy, read (and digested) by
        the first task to ask; None where the copy's disk lacks room for it beside
        the copies being made (:data:`SPOOL_KEEP_FREE`): its tasks then read it by
        ranges, and its digest is taken after them (:meth:`InputDigests.release`)."""
        with self._locks[i]:  # its other tasks wait for the one read
            if i in self._data:
                return self._data[i]
            data: bytes | str | None
            if i in self._spooled:
                assert self._spool is not None
                size = self._footer_of(i).size
                data = None
                with self._lock:  # room for it beside the copies other tasks are making
                    if (shutil.disk_usage(self._spool).free - size - sum(self._copying.values())
                            >= SPOOL_KEEP_FREE):
                        self._copying[i] = size
                        data = os.path.join(self._spool, f"{i}.parquet")
                if data is not None:
                    try:
                        self._digests.digest_given(i, *spool_remote(
                            self._files[i], self._footer_of(i), data, self._digests.algorithm))
                    except BaseException:
                        with contextlib.suppress(OSError):
                            os.unlink(data)
                        raise
                    finally:
                        with self._lock:
                            del self._copying[i]
            else:
                data = read_remote_whole(self._files[i], self._footer_of(i))
                self._digests.digest_bytes(i, data)
            with self._lock:
                self._data[i] = data
            return data

    def task_done(self, i: int) -> None:
        """One of input ``i``'s tasks ended (done or failed): after the last, its bytes
        are let go (its local copy deleted)."""
        with self._lock:
            self._left[i] -= 1
            if self._left[i]:
                return
            data = self._data.pop(i, None)
        if isinstance(data, str):
            with contextlib.suppress(OSError):
                os.unlink(data)


# Bytes read from a file's end, to get its footer in one read: on object storage a
# request costs a round trip, so ask for plenty; a local read costs its copy.
FOOTER_PROBE = 64 * 1024
LOCAL_FOOTER_PROBE = 8 * 1024


# Parsed footers a FooterReader keeps, in input order (the inputs scanned first): the
# others keep their bytes and are parsed again when their file is scanned.
PARSED_FOOTERS = 1024


@dataclass
class Footer:
    """A parquet file's footer, read once (:func:`read_footer`): the file's size, the
    SHA-256 of the footer bytes with the 8-byte tail (which identifies the file cheaply
    for ``--resume``, datahygiene/resume.py), and what the scan asks of every input
    before it starts: its Arrow schema, row counts, and the nulls of the columns asked
    for (the row key's).

    The parsed metadata is kept only until :meth:`release`: in Arrow's structures it
    takes ~20 KB for a 100-row four-column file against ~1 KB for its bytes, so a scan
    of 500,000 img2dataset shards would hold 10 GB of footers before it scanned a row.
    :attr:`metadata` parses the bytes again when asked after a release (~14 us)."""

    size: int
    digest: str
    raw: bytes = field(repr=False)  # the serialized footer, its length and "PAR1"
    schema: pa.Schema = field(repr=False)
    num_rows: int
    row_group_rows: tuple[int, ...]
    # per column asked for when read: rows whose value is null, from the column
    # statistics; None where a row group with rows does not record its null count
    null_counts: dict[str, int | None] = field(repr=False)
    _parsed: pq.FileMetaData | None = field(default=None, repr=False, compare=False)
    # the file's size and modification time (a remote file's size and version) as its
    # footer was read (see changed_under_scan); None where its filesystem tells none
    state: FileState | None = None

    @property
    def metadata(self) -> pq.FileMetaData:
        md = self._parsed
        if md is None:
            md = self._parsed = _parse_footer(self.raw, parsed_before=True)
        return md

    def release(self) -> None:
        """Let the parsed metadata go (the facts above stay)."""
        self._parsed = None

    def nulls(self, column: str) -> int | None:
        """:func:`column_nulls` of the file: counted when read, if asked for then (else
        from a parse kept no longer than the call, if released)."""
        if column in self.null_counts:
            return self.null_counts[column]
        return column_nulls(self._parsed or _parse_footer(self.raw, parsed_before=True), column)


def _parse_footer(raw: bytes, parsed_before: bool = False) -> pq.FileMetaData:
    """The metadata of a footer's bytes (with the 8-byte tail). Bytes that parsed
    before (a released :class:`Footer`'s) are parsed as a pickled ``FileMetaData`` is
    restored (its ``__reduce__``: the same thrift parser, 14 us for an img2dataset
    shard's footer against 35 us through ``pq.read_metadata``, which builds a file
    reader around it). Never bytes met first: on a damaged footer that path ends the
    process (an untranslated C++ exception) where ``pq.read_metadata`` raises."""
    global _REBUILD
    if parsed_before and _REBUILD is not None:
        return _REBUILD(pa.py_buffer(raw[:-8]))
    if _ParquetReader is not None:
        # the reader pq.read_metadata builds, without the pq.ParquetFile around it (its
        # map of nested column paths, in Python): 40 against 57 us for a shard's footer
        reader = _ParquetReader()
        reader.open(pa.BufferReader(b"PAR1" + raw))
        md = reader.metadata
    else:  # pragma: no cover - a pyarrow that moved it
        md = pq.read_metadata(pa.BufferReader(b"PAR1" + raw))
    if _REBUILD is None:
        rebuild, args = md.__reduce__()
        if len(args) == 1 and isinstance(args[0], pa.Buffer):
            _REBUILD = rebuild
    return md


_REBUILD: Any = None  # FileMetaData's restore from its thrift bytes (see _parse_footer)


def row_group_rows(md: pq.FileMetaData) -> tuple[int, ...]:
    return tuple(md.row_group(rg).num_rows for rg in range(md.num_row_groups))


def column_nulls(md: pq.FileMetaData, column: str, paths: list[str] | None = None) -> int | None:
    """Rows of the file whose ``column`` is null, from its footer's column statistics
    (no data read); None when the file has no such top-level column, or a row group
    with rows does not record its null count (an empty one, as in an img2dataset shard
    whose every download failed, holds no null). ``paths``: the schema's column paths,
    if known (:class:`_SchemaFacts`)."""
    if not md.num_rows:
        return 0
    names = paths if paths is not None else [md.schema.column(j).path for j in range(md.num_columns)]
    if column not in names:
        return None
    j = names.index(column)
    total = 0
    for rg in range(md.num_row_groups):
        if not md.row_group(rg).num_rows:
            continue
        stats = md.row_group(rg).column(j).statistics
        if stats is None or not stats.has_null_count:
            return None
        total += stats.null_count
    return total


def _footer_length(tail: Any, size: int) -> int:
    """The footer's length, from the last 8 bytes of a file of ``size`` bytes."""
    if len(tail) < 12 or tail[-4:] != b"PAR1":
        raise ValueError("no parquet footer")
    flen = int.from_bytes(tail[-8:-4], "little")
    if flen + 12 > size:
        raise ValueError("footer length beyond the file")
    return flen


def _local_footer(f: InputFile) -> tuple[int, FileState, bytes]:
    """A local file's size, :data:`FileState` and footer (with its 8-byte tail), by
    positional reads on a descriptor: five system calls (open, ``fstat``, ``pread``, a
    second ``fstat`` to find the file unchanged, close), each releasing the GIL, where
    an Arrow file made eight. A scan of many small inputs reads their footers one after
    another on one thread before it starts (about 0.1 ms of CPU each, most of it
    holding the GIL)."""
    fd = os.open(f.fs_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        state = check_state(f, fd, None)
        size = state[0]
        tail = os.pread(fd, min(size, LOCAL_FOOTER_PROBE), max(0, size - LOCAL_FOOTER_PROBE))
        flen = _footer_length(tail, size)
        if flen + 8 > len(tail):
            tail = os.pread(fd, flen + 8, size - 8 - flen)
            if len(tail) != flen + 8:
                raise ValueError("cut short")
        check_state(f, fd, state)
        return size, state, tail[-(flen + 8):]
    finally:
        os.close(fd)


def read_footer(f: InputFile, null_columns: Iterable[str] = (),
                schemas: dict[bytes, pa.Schema] | None = None) -> Footer:
    """Read and parse ``f``'s footer with one read of its last 64 KiB (8 KiB for a local
    file; a second read when the footer is larger). Checking the schema, identifying
    the file for ``--resume`` and scanning it then need no other footer read: on object
    storage each was a round trip, three per file. A file whose footer does not parse
    fails as :func:`open_parquet` says (one line, naming the file). ``null_columns``:
    the columns whose nulls to count; ``schemas``: Arrow schemas met before, to share
    (inputs written alike have the same, metadata included)."""
    state: FileState | None = None
    size_known: int | None = None
    if not f.is_local:
        # its version as the file is first read (from the listing that found it, if
        # any: no round trip); its size then spares the open the round trip for it
        state = remote_state(f)
        size_known = state[0] if state is not None else None
    try:
        if f.is_local:
            size, state, footer = _local_footer(f)
        else:
            with f.open(size_known) as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - FOOTER_PROBE))
                tail = fh.read()
                flen = _footer_length(tail, size)
                if flen + 8 > len(tail):
                    fh.seek(size - 8 - flen)
                    tail = fh.read(flen + 8)
            footer = bytes(tail[-(flen + 8):])
        metadata = _parse_footer(footer)
    except InputError:  # changed while read
        raise
    except Exception:
        if not f.is_local and state is not None:  # replaced since it was listed: say so
            try:
                now = remote_state(f, fresh=True)
            except InputError:  # gone, or not to be asked: the reader's error says what
                now = state
            if now != state:
                raise changed_under_scan(f) from None
        open_parquet(f)  # raises the one-line error a reader gives for this file
        raise InputError(f"{f.path}: not a readable parquet file (its footer does not parse)"
                         ) from None
    chunks, schema_bytes = _walk_footer(f, footer[:-8])
    try:
        facts = _schema_facts(metadata, schema_bytes, schemas)
    except (UnicodeDecodeError, pa.ArrowException):  # a column's name is not text, say
        raise InputError(f"{f.path}: not a readable parquet file (its schema does not parse)"
                         ) from None
    _check_chunks(f, chunks, metadata, facts.expect)
    return Footer(size, "sha256:" + hashlib.sha256(footer).hexdigest(), footer, facts.arrow,
                  metadata.num_rows, row_group_rows(metadata),
                  {c: column_nulls(metadata, c, facts.paths) for c in null_columns}, metadata, state)


class FooterReader:
    """Every input's footer (:func:`read_footer`), read on a thread of its own from
    when it is made, so that the reading overlaps the list loading: for 2,000
    img2dataset shards it was 0.17-0.19 s of the main thread's time after the lists
    had loaded. A footer that does not read is kept as its error, for the caller to
    raise in input order. Remote footers are fetched ``at_once`` at a time (each costs
    a round trip); local ones in turn (each holds the GIL for most of its ~0.1 ms). The first
    ``keep_parsed`` inputs' footers stay parsed, the others are released as read (see
    :class:`Footer`): memory stays bounded however many inputs a scan has."""

    def __init__(self, files: list[InputFile], null_columns: Iterable[str] = (),
                 keep_parsed: int | None = None, at_once: int = REMOTE_AT_ONCE,
                 progress: Callable[[int], None] | None = None) -> None:
        self._stop = threading.Event()
        self._at_once = at_once
        self._progress = progress  # told how many footers are read, in input order
        self._null_columns = tuple(null_columns)
        self._keep = PARSED_FOOTERS if keep_parsed is None else keep_parsed
        self._schemas: dict[bytes, pa.Schema] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="datahygiene-footers")
        self._future: Future[list[Footer | DatahygieneError]] | None = self._pool.submit(
            self._read_all, files)

    def _read_all(self, files: list[InputFile]) -> list[Footer | DatahygieneError]:
        if all(f.is_local for f in files):
            return self._told(self._one(i, f) for i, f in enumerate(files))
        with (ThreadPoolExecutor(self._at_once, thread_name_prefix="datahygiene-footer") as pool,
              contextlib.closing(in_order(pool, lambda item: self._one(*item), enumerate(files),
                                          2 * self._at_once)) as read):
            return self._told(read)

    def _told(self, footers: Iterable[Footer | DatahygieneError]) -> list[Footer | DatahygieneError]:
        out: list[Footer | DatahygieneError] = []
        for footer in footers:
            out.append(footer)
            if self._progress is not None:
                self._progress(len(out))
        return out

    def _one(self, i: int, f: InputFile) -> Footer | DatahygieneError:
        if self._stop.is_set():  # the run ended: a remote listing must not keep it waiting
            raise _Stopped
        try:
            footer = read_footer(f, self._null_columns, self._schemas)
        except DatahygieneError as exc:
            return exc
        if i >= self._keep:  # memory: see Footer
            footer.release()
        return footer

    def result(self) -> list[Footer | DatahygieneError]:
        """The footers, once: the reader lets go of them (a scan lets each go when its
        file is done, which a list kept here would undo)."""
        if self._future is None:
            raise RuntimeError("the footers were taken already")
        try:
            footers = self._future.result()
        finally:
            self._pool.shutdown()
        self._future = None
        return footers

    def cancel(self) -> None:
        """Stop reading (the run failed before it needed the footers)."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Stopped(Exception):
    pass


class LocalFile:
    """A local file open for positional reads only (``os.preadv`` on :meth:`fileno`,
    as :func:`datahygiene.parquet_pages.read_chunk` reads): one system call to open,
    where ``pa.OSFile`` makes two, each releasing the GIL (see
    :class:`datahygiene.engines.local._Source`). ``size``: the file's size when its
    footer was read."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd, self._size = fd, size

    @classmethod
    def open(cls, f: InputFile, size: int) -> LocalFile:
        try:
            return cls(os.open(f.fs_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)), size)
        except OSError as exc:
            raise _unreadable(f, exc) from None

    def fileno(self) -> int:
        return self._fd

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def open_input(f: InputFile, size: int | None = None, exact: bool = False) -> Any:
    """``f.open(size, exact)``, turning a failure into the one-line InputError
    :func:`open_parquet` gives."""
    try:
        return f.open(size, exact)
    except Exception as exc:
        raise _unreadable(f, exc) from None


@dataclass(frozen=True)
class _SchemaFacts:
    """What a footer's schema gives, worked out once for the inputs that share it: the
    shards of one dataset are written alike, and for a 10,000-row shard this was a
    sixth of reading its footer (its Arrow schema and a wrapper for each column, held
    under the GIL while the list loads)."""

    # the footer's schema and key-value metadata, as Thrift bytes (what the Arrow
    # schema is made of; pyarrow's ParquetSchema.equals looks at the leaf columns only,
    # not at the names of the groups above them)
    source: tuple[bytes, bytes]
    arrow: pa.Schema
    paths: list[str]  # the columns' dotted paths, in order
    # per column: its physical type (parquet_pages.PHYSICAL_TYPES, -2 for another)
    # and its maximum repetition and definition levels plus one (see _check_chunks)
    expect: np.ndarray


# The last schema's facts (the one met next, as a rule)
_LAST_SCHEMA: list[_SchemaFacts] = []


def _schema_facts(md: pq.FileMetaData, source: tuple[bytes, bytes],
                  schemas: dict[bytes, pa.Schema] | None) -> _SchemaFacts:
    """``md``'s :class:`_SchemaFacts`: the last footer's, where its schema and key-value
    metadata are the same bytes (``source``, from :func:`_walk_footer`); ``schemas``:
    Arrow schemas met before, to share."""
    from datahygiene.parquet_pages import PHYSICAL_TYPES

    last = _LAST_SCHEMA[-1] if _LAST_SCHEMA else None
    if last is not None and last.source == source:
        return last
    parquet = md.schema
    arrow = parquet.to_arrow_schema()
    if schemas is not None:
        arrow = schemas.setdefault(arrow.serialize().to_pybytes(), arrow)
    columns = [parquet.column(j) for j in range(len(parquet))]
    expect = np.array([(PHYSICAL_TYPES.get(c.physical_type, -2), c.max_repetition_level + 1,
                        c.max_definition_level + 1) for c in columns],
                      dtype=np.int64).reshape(-1, 3)
    facts = _SchemaFacts(source, arrow, [c.path for c in columns], expect)
    _LAST_SCHEMA[:] = [facts]
    return facts


def _walk_footer(f: InputFile, thrift: bytes) -> tuple[np.ndarray, tuple[bytes, bytes]]:
    """The footer's column chunks (:func:`datahygiene.parquet_pages.footer_chunks`), and
    its schema and key-value metadata as bytes; an input error where the walk finds
    what pyarrow read by skipping what it does not know of (a list of values of no
    type, a field past the footer's end): a chunk's metadata the walk cannot check,
    which no writer writes."""
    from datahygiene.parquet_pages import Unsupported, footer_chunks

    spans = np.empty(4, np.int64)
    try:
        chunks = footer_chunks(thrift, spans)
    except Unsupported:
        raise InputError(f"{f.path}: not a readable parquet file (its footer does not parse)"
                         ) from None
    s0, s1, k0, k1 = spans.tolist()
    return chunks, (thrift[s0:s1] if s0 >= 0 else b"", thrift[k0:k1] if k0 >= 0 else b"")


def _check_chunks(f: InputFile, chunks: np.ndarray, md: pq.FileMetaData, expect: np.ndarray) -> None:
    """Refuse a footer that pyarrow parses but whose column chunks it cannot describe:
    asking its metadata for such a chunk ends the process (an untranslated C++
    exception, no error to catch). That is a chunk naming a compression codec
    parquet does not have, or a physical type other than its column's, or level
    histograms of another length than its column's levels allow, or a row group
    with more or fewer chunks than the schema has columns. ``chunks``: what the
    footer says of them (:func:`_walk_footer`); ``expect``: per column of the schema,
    what its chunks must say (:attr:`_SchemaFacts.expect`)."""
    from datahygiene import page_kernels as pk
    from datahygiene.parquet_pages import KNOWN_CODECS

    verdict = pk.chunks_fit(chunks, expect, md.num_row_groups, len(KNOWN_CODECS))
    if verdict != pk.FIT:
        raise InputError(f"{f.path}: not a readable parquet file (" + {
            pk.UNKNOWN_CODEC: "a column chunk names an unknown compression codec",
            pk.MISSING_CHUNK: "a row group does not hold a chunk for each column",
            pk.WRONG_TYPE: "a column chunk's type contradicts the schema",
            pk.WRONG_HISTOGRAM: "a column chunk's level histogram does not fit its column",
        }[verdict] + ")")


def open_parquet(f: InputFile, metadata: pq.FileMetaData | None = None,
                 handle: Any = None) -> pq.ParquetFile:
    """Open a manifest file, turning any failure into a one-line InputError. With the
    footer's ``metadata`` (read before), the footer is not read and parsed again; with
    ``handle`` (from :func:`open_input`), the file is not opened again.

    Local files are read as the decoder asks (no pre-buffering): pre-buffering hands
    each column chunk's read to Arrow's I/O threads, which costs more than it saves on
    a local disk -- about 0.1 ms of CPU per 10,000-row file, 12% of reading its hash
    column. Remote files keep it: it coalesces their range requests."""
    try:
        return pq.ParquetFile(f.open() if handle is None else handle, metadata=metadata,
                              pre_buffer=not f.is_local)
    except Exception as exc:
        raise _unreadable(f, exc) from None


def _unreadable(f: InputFile, exc: Exception) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{f.path}: manifest not found")
    if isinstance(exc, PermissionError):
        return InputError(f"{f.path}: permission denied")
    return InputError(f"{f.path}: not a readable parquet file ({_said(exc, f.fs_path)})")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def new_digest(algorithm: str) -> Any:
    """A hasher for input digests: ``sha256`` (the default) or ``blake3``."""
    if algorithm == "blake3":
        return blake3.blake3(max_threads=1)  # one core: the scan has the others
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown input digest {algorithm!r}; known: {', '.join(INPUT_DIGESTS)}")


def digest_file(f: InputFile, algorithm: str = "sha256", chunk: int = 1 << 20,
                size: int | None = None) -> tuple[str, int]:
    """``ALGORITHM:HEX`` digest of a file's bytes (coverage evidence), and its size.

    SHA-256 by default: it is the digest sources publish (Hugging Face's LFS object
    ids, ``sha256sum`` lists), so an auditor can compare a run's inputs with the
    source without downloading it. BLAKE3 (``input_digest = "blake3"``) costs about a
    third of the CPU -- the 537 MB benchmark manifest in 0.13 s against 0.41-0.55 s
    with SHA-NI -- where the input digest is a sizeable part of a scan's CPU per row.

    A local file is read block by block (:data:`DIGEST_BLOCK`) into a buffer the
    thread reuses, each block hashed while it is still in the CPU's cache; a file
    found shorter than its size said when it was opened (another process truncating
    it) is an input error, never a digest of part of it. Memory-mapping the file
    instead cost the same here (LAION-rare benchmark: 1.39-1.50 s, median 1.43,
    against 1.36-1.73 s, median 1.44, six alternating pairs), but a file truncated
    while mapped ends the process with SIGBUS, and unmapping makes the kernel flush
    the other cores' address translations. Other filesystems are read into one reused
    buffer as well (a fresh bytes object per block cost its page faults again and
    again); ``size``, a remote file's size if known, spares the open a round trip."""
    h = new_digest(algorithm)
    try:
        if f.is_local:
            with open(f.fs_path, "rb", buffering=0) as fh:
                size = os.fstat(fh.fileno()).st_size
                got = 0
                while got < size:
                    part = _read_whole(fh, min(DIGEST_BLOCK, size - got))
                    if not len(part):
                        raise InputError(f"{f.path}: changed while it was read (cut short)")
                    h.update(part)
                    got += len(part)
            return f"{algorithm}:{h.hexdigest()}", size
        known, size = size, 0
        buf = bytearray(chunk)
        view = memoryview(buf)
        with f.open(known) as fh:
            while True:
                n = fh.readinto(buf) if hasattr(fh, "readinto") else None
                if n is None:  # a file object without readinto
                    block = fh.read(chunk)
                    n = len(block)
                    view[:n] = block
                if not n:
                    break
                size += n
                h.update(view[:n])
    except (OSError, ValueError) as exc:
        raise InputError(f"{f.path}: cannot read ({_said(exc, f.fs_path)})") from None
    return f"{algorithm}:{h.hexdigest()}", size


class InputDigests:
    """Every input's digest (:func:`digest_file`), computed in input order on a thread
    of its own from when it is made: they need only the files, so they run while the
    lists load (list loading is partly serial and leaves a core idle).

    One result per input, not a future: a ``concurrent.futures.Future`` takes ~1 KB
    (its condition, lock and waiter queue), and a scan submitting a digest per input
    held them all from its start (20 MB for 20,000 inputs). A digest that fails is
    kept as its error, raised to whoever asks for it; the others go on.

    An input's size and modification time (a remote one's size and version) are
    looked at before and after its digest, and held against what they were when its
    footer was read (:meth:`expect`): a file that changed meanwhile has the error
    :func:`changed_under_scan` for its digest, which would not be of the bytes the
    scan read. With ``after_reads`` (a scan's), a remote input waits for
    :meth:`release`, so that this second look comes after all the scan's reads of it
    and vouches for them too, or for :meth:`digest_bytes`: a scan's task that read the
    whole input (:class:`WholeReads`) hands over its digest of those bytes.

    Small local inputs scanned by one task each (img2dataset's shards) are handed over
    when the scan starts (:meth:`hand_over`): those this thread has not begun by then
    are read whole by their task, which scans and digests those bytes
    (:func:`read_local_whole`) -- one read of each byte instead of two, and no third
    thread taking turns with the scan's on two cores. Those it digested while the
    lists loaded, their tasks read as any other (:meth:`claim`)."""

    def __init__(self, files: list[InputFile], algorithm: str, after_reads: bool = False,
                 at_once: int = REMOTE_AT_ONCE) -> None:
        self._files, self._algorithm, self._at_once = files, algorithm, at_once
        # after_reads: a remote input is digested once :meth:`release` says the scan
        # read all it reads of it (see there); local ones start at once
        self._held = (np.array([not f.is_local for f in files], dtype=bool) if after_reads
                      else np.zeros(len(files), dtype=bool))
        # inputs whose digest a task took of the bytes it scanned (digest_bytes), and
        # those digests until stored in order
        self._from_scan = np.zeros(len(files), dtype=bool)
        self._given: dict[int, tuple[str, int]] = {}
        # local inputs handed over to the scan's tasks (hand_over), and who took each:
        # 1 this thread, 2 a task (claim)
        self._handed = np.zeros(len(files), dtype=bool)
        self._taken = np.zeros(len(files), dtype=np.int8)
        self._scan_done = False
        self._closing = False
        self._results: list[tuple[str, int] | Exception | None] = [None] * len(files)
        # each input's state as digested, until the footers' are known to compare
        self._states: list[FileState | None] | None = [None] * len(files)
        self._expected: np.ndarray | None = None  # (n, 2) int64: size, mtime_ns (-1: none)
        self._ready = 0  # inputs 0..ready-1 are digested
        self._ended = False
        self._cancelled = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="datahygiene-digest", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if all(f.is_local for f in self._files):
                for i, f in enumerate(self._files):  # in turn: one core hashing
                    if self._cancelled.is_set():
                        break
                    self._store(i, *(self._from_task(i) if self._left_to_task(i) else self._one(f)))
            else:
                self._run_remote()
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _run_remote(self) -> None:
        """Inputs ``at_once`` at a time (each remote read waits on the
        network; local inputs among remote ones are hashed on those threads too),
        stored in input order."""
        with (ThreadPoolExecutor(self._at_once, thread_name_prefix="datahygiene-digests") as pool,
              contextlib.closing(in_order(pool, self._when_released, range(len(self._files)),
                                          2 * self._at_once)
                                 ) as results):
            for i, got in enumerate(results):
                self._store(i, *got)
                if self._cancelled.is_set():
                    break  # (closing cancels those not started)

    def release(self, i: int) -> None:
        """The scan has read what it reads of input ``i`` (its row groups): a remote
        input held for this (``after_reads``) may be digested now. Its digest's second
        look at its version then also vouches for those reads, which need no look of
        their own (a request each, on object storage)."""
        with self._cond:
            self._held[i] = False
            self._cond.notify_all()

    def hand_over(self, inputs: Iterable[int]) -> None:
        """The scan starts: of ``inputs`` (local, each scanned by one task), those not
        digested yet are left to their tasks (:meth:`claim`)."""
        with self._cond:
            self._handed[list(inputs)] = True
            self._cond.notify_all()

    def claim(self, i: int) -> bool:
        """Whether input ``i``'s task is to read it whole and digest those bytes
        (:meth:`digest_bytes`): true for an input handed over whose digest this thread
        has not begun, which it then waits for."""
        with self._cond:
            if not (self._handed[i] and self._taken[i] == 0):
                return False
            self._taken[i] = 2
            self._cond.notify_all()
            return True

    def scanned(self) -> None:
        """Every task has run: an input handed over that no task claimed is digested
        here after all (none, unless a task was not run)."""
        with self._cond:
            self._scan_done = True
            self._cond.notify_all()

    def _left_to_task(self, i: int) -> bool:
        """Whether input ``i``'s digest comes from its task: one that claimed it, or,
        handed over, will (waited for); else this thread takes it."""
        with self._cond:
            while (self._handed[i] and self._taken[i] == 0 and not self._scan_done
                   and not (self._closing or self._cancelled.is_set())):
                self._cond.wait()
            if self._taken[i] == 2:
                return True
            self._taken[i] = 1
            return False

    def _from_task(self, i: int) -> tuple[Any, FileState | None]:
        """The digest input ``i``'s task gives (:meth:`digest_bytes`), waited for."""
        with self._cond:
            while not self._from_scan[i] and not (self._closing or self._cancelled.is_set()):
                self._cond.wait()
            if self._from_scan[i]:
                return self._given.pop(i), None
        return InputError(f"{self._files[i].path}: its digest was not computed "
                          "(the run stopped first)"), None

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def digest_bytes(self, i: int, data: bytes | np.ndarray) -> None:
        """Input ``i``'s digest, taken of ``data``: all its bytes, as a scan's task read
        them to scan (:func:`read_remote_whole` or :func:`read_local_whole`, which
        checked them against the footer). No other read and no look at its version follow: the digest is of
        the bytes scanned. Run on the task's thread (hashing releases the GIL)."""
        h = new_digest(self._algorithm)
        h.update(data)
        self.digest_given(i, f"{self._algorithm}:{h.hexdigest()}", len(data))

    def digest_given(self, i: int, digest: str, size: int) -> None:
        """Input ``i``'s digest and size, taken of the bytes a scan's task scans (see
        :meth:`digest_bytes`; :func:`spool_remote` hashes them as it copies them)."""
        with self._cond:
            self._given[i] = (digest, size)
            self._from_scan[i] = True
            self._held[i] = False
            self._cond.notify_all()

    def _when_released(self, i: int) -> tuple[Any, FileState | None]:
        with self._cond:
            while self._held[i] and not (self._closing or self._cancelled.is_set()):
                self._cond.wait()
            if self._from_scan[i]:
                return self._given.pop(i), None
            if self._held[i]:  # the run stopped first
                return InputError(f"{self._files[i].path}: its digest was not computed "
                                  "(the run stopped first)"), None
        return self._one(self._files[i])

    def _one(self, f: InputFile) -> tuple[Any, FileState | None]:
        """``f``'s digest (or its error) and its state before the digest was taken."""
        # a remote file's version as first seen (from the listing that found it, as
        # its footer's was: no round trip), then asked afresh once it is read
        local = f.is_local
        before = path_state(f) if local else remote_state(f)
        try:
            got: tuple[str, int] | Exception = digest_file(
                f, self._algorithm, size=before[0] if before is not None else None)
        except Exception as exc:
            got = exc
        if before is not None and not isinstance(got, Exception):
            try:
                if (path_state(f) if local else remote_state(f, fresh=True)) != before:
                    got = changed_under_scan(f)
            except InputError as exc:  # a remote storage that cannot be asked again
                got = exc
        return got, before

    def _store(self, i: int, got: Any, before: FileState | None) -> None:
        with self._cond:
            if self._states is not None:
                self._states[i] = before
            else:
                got = self._checked(i, got, before)
            self._results[i] = got
            self._ready = i + 1
            self._cond.notify_all()

    def expect(self, states: list[FileState | None]) -> None:
        """Each input's state when its footer was read (None where its filesystem
        tells none): a digest of a file in another state is that input's error."""
        expected = np.array([s if s is not None else (-1, -1) for s in states], dtype=np.int64)
        with self._cond:
            self._expected = expected.reshape(len(states), 2)
            digested, self._states = self._states, None
            assert digested is not None
            for i in range(self._ready):
                self._results[i] = self._checked(i, self._results[i], digested[i])

    def _checked(self, i: int, got: Any, state: FileState | None) -> Any:
        assert self._expected is not None
        want = self._expected[i]
        if isinstance(got, Exception) or want[0] < 0 or self._from_scan[i]:
            return got
        if state is None or (int(want[0]), int(want[1])) != state:
            return changed_under_scan(self._files[i])
        return got

    def done(self, i: int) -> bool:
        return i < self._ready

    def result(self, i: int) -> tuple[str, int]:
        """Input ``i``'s ``(ALGORITHM:HEX, size)``, waited for."""
        with self._cond:
            while i >= self._ready:
                if self._ended:
                    raise InputError(f"{self._files[i].path}: its digest was not computed "
                                     "(the run stopped first)")
                self._cond.wait()
        got = self._results[i]
        if isinstance(got, Exception):
            raise got
        assert got is not None
        return got

    def of(self, i: int) -> DigestOf:
        """Input ``i``'s digest as a handle to pass along (``done()``, ``result()``)."""
        return DigestOf(self, i)

    def cancel(self) -> None:
        """Stop after the input being digested (the run failed: it will not need them)."""
        with self._cond:
            self._cancelled.set()
            self._cond.notify_all()

    def close(self) -> None:
        """Wait until every input is digested (or the digests were cancelled); inputs
        still held (the scan stopped before reading them) are not."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()


@dataclass(frozen=True)
class DigestOf:
    """One input's digest in an :class:`InputDigests`."""

    digests: InputDigests = field(repr=False)
    index: int

    def done(self) -> bool:
        return self.digests.done(self.index)

    def result(self) -> tuple[str, int]:
        return self.digests.result(self.index)


# Bytes per read of a local input's digest: a block stays in the CPU's cache between
# its read and its hashing (1 MiB blocks were as fast as memory-mapping the benchmark's
# 27 MB files; 8 and 32 MiB blocks 5-10% slower).
DIGEST_BLOCK = 1 << 20
_BUFFER = threading.local()


def _read_whole(fh: Any, size: int) -> memoryview:
    """Up to ``size`` bytes of an unbuffered file, read into this thread's buffer
    (fewer where the file was cut short meanwhile)."""
    buf: bytearray | None = getattr(_BUFFER, "buf", None)
    if buf is None or len(buf) < size:
        buf = _BUFFER.buf = bytearray(max(size, 1 << 20))
    view = memoryview(buf)
    got = 0
    while got < size:
        n = fh.readinto(view[got:size])
        if not n:
            break
        got += n
    return view[:got]


def input_digest(entry: dict[str, Any]) -> str:
    """An input's ``ALGORITHM:HEX`` digest from its run.json entry: ``digest`` since
    run format 2; ``sha256`` (always SHA-256) in format 1."""
    return str(entry.get("digest") or entry["sha256"])
