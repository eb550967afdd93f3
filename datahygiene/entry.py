"""The ``datahygiene`` console script: imports the command line only once a Ctrl-C can
be answered with one line instead of a traceback, and with standard output and error
that a closed pipe cannot turn into an error. (The command line itself imports a
command's modules -- pyarrow, numba: about a second -- when the command is used, under
the same handling: see ``datahygiene.commands.common.starting``.)

This module imports nothing Python has not already loaded at start-up (``typing`` alone
cost 3 ms, ``signal`` 0.7): until :func:`main` installs its handler, a Ctrl-C is Python's
KeyboardInterrupt, with a traceback."""

from __future__ import annotations

# signal's C half, which Python loads at start-up to install its own handler: ``signal``
# itself builds its enums when imported (0.7 ms, a window for a traceback)
import _imp
import _signal  # type: ignore[import-not-found,unused-ignore]
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from types import FrameType

INTERRUPTED = b"datahygiene: interrupted; no output was committed\n"


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C before the command runs (while pyarrow, numba and click are imported, or
    click parses the options): nothing has been done, so leave at once. Not a
    KeyboardInterrupt: an import can turn one into another error (Python wraps what a
    class body's ``__set_name__`` raises in a RuntimeError) or print it as a traceback."""
    os.write(2, INTERRUPTED)
    os._exit(130)


def tune_environment() -> None:
    """Settings for a batch command, unless the user chose otherwise. Must run before
    numpy and pyarrow are imported; the command and the benchmark's children call it,
    library users decide.

    * One OpenBLAS thread: datahygiene makes no BLAS call, but numpy's OpenBLAS starts
      a thread per extra core at import, and those threads spin (measured here: 0.08 s
      of CPU at import and 0.05 s more afterwards, on 2 cores) -- taken from the scan
      that starts right after.
    * Arrow's allocator (mimalloc) keeps the memory it frees instead of returning it to
      the kernel after 10 ms: a scan frees and allocates decoding buffers all the time,
      and each page handed back was paid for again in page faults (a 20M-row benchmark
      scan: 52,000-56,000 faults, 26,500-27,000 with this; on virtual machines a first
      touch costs milliseconds per megabyte). Like ``tune_allocator`` for glibc: the
      process keeps its peak memory until it exits.
    * No transparent huge pages for numpy's arrays: numpy asks for them on every large
      array, and where the kernel is set to compact memory for such requests (THP
      ``defrag = madvise``, a common default) a first touch of fresh memory costs far
      more. Loading the benchmark's 5M-entry list: 0.38-0.50 s without, 0.56-0.74 s
      with (three alternating runs); whole scans 0.1-0.2 s faster, the filter's random
      reads no slower."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


def _interrupted_before_main() -> bool:
    """Whether a Ctrl-C reached Python's own start-up and Python carried on: it prints
    the KeyboardInterrupt and goes on ("Failed checking if argv[0] is an import path
    entry": ``sys.last_value``), or the interrupt struck inside the import system,
    which then left its global lock taken (an exception in a weakref callback is
    printed and dropped): the scan's first import on another thread would wait for
    that lock for ever. Either way the user asked to stop before anything began."""
    return isinstance(getattr(sys, "last_value", None), KeyboardInterrupt) or _imp.lock_held()


def sigint_ignored() -> bool:
    """Whether whoever started this process had it ignore Ctrl-C (SIGINT) -- a
    non-interactive shell does so for the jobs it runs in the background, so that a
    Ctrl-C meant for the job in the foreground leaves them running. Python keeps an
    ignored SIGINT ignored, and so does this command: it then installs no handler."""
    return bool(_signal.getsignal(_signal.SIGINT) == _signal.SIG_IGN)


def main() -> None:
    # first of all: the shortest window for a traceback (cli.main hands Ctrl-C back to
    # KeyboardInterrupt once the command's own handling is in place)
    if not sigint_ignored():
        _signal.signal(_signal.SIGINT, _interrupted_while_starting)
        if _interrupted_before_main():
            _interrupted_while_starting(_signal.SIGINT, None)
    tune_environment()
    from datahygiene.streams import tolerate_closed_pipes  # after the handler: see there

    tolerate_closed_pipes()
    from datahygiene.cli import main as cli_main

    cli_main()
