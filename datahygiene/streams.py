"""Standard output and error that a closed pipe or a full disk cannot turn into an
error (:func:`tolerate_closed_pipes`), for the ``datahygiene`` console script.

Apart from :mod:`datahygiene.entry` so that it is imported after the script's Ctrl-C
handler is in place: creating the stream class (an ``io.RawIOBase``, whose metaclass
runs Python code) took long enough for a Ctrl-C in the first milliseconds to land in
it, before any handler, as a traceback through datahygiene's code."""

from __future__ import annotations

import io
import os
import sys
from typing import Any


class _PipeTolerantStdout(io.RawIOBase):
    """A file descriptor (1 or 2) where a write that fails -- to a pipe whose reader has
    gone (``scan ... | head -1``), to a full disk (``> log`` on a full filesystem) -- is
    dropped, with what follows, instead of raising: the command runs to its end and
    exits with its own status. Otherwise a scan that had already committed its run would
    exit 6, which the docs say means "no new run.json", and ``verify | head`` would
    lose its verdict."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._closed_pipe = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._closed_pipe:
            try:
                return os.write(self._fd, data)
            except OSError:  # EPIPE, and ENOSPC on a full disk, EBADF, EIO
                self._closed_pipe = True
        return len(data)


def _tolerant(stream: Any) -> Any:
    """``stream`` rewrapped over :class:`_PipeTolerantStdout`, or as it is when it is
    not a real file (an embedding host's stream)."""
    if stream is None:  # the descriptor was closed (2>&-): what is written goes nowhere
        return open(os.devnull, "w")
    if not hasattr(stream, "fileno"):
        return stream
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return stream
    stream.flush()
    return io.TextIOWrapper(io.BufferedWriter(_PipeTolerantStdout(fd)),
                            encoding=stream.encoding, errors=stream.errors,
                            line_buffering=bool(getattr(stream, "line_buffering", False)),
                            write_through=True)


def tolerate_closed_pipes() -> None:
    """Standard output and standard error both: ``datahygiene scan ... 2>&1 | head -1``
    closes the two at once."""
    sys.stdout = _tolerant(sys.stdout)
    sys.stderr = _tolerant(sys.stderr)
