"""One exception hierarchy for everything a user can get wrong.

Every message names the file, column, list or line at fault and never quotes a list
value or a manifest hash: a message may end up in a shared log or a bug report.
The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``
(the table lives in docs/curator.md#exit-codes).
"""

from __future__ import annotations


class DatahygieneError(Exception):
    """Base class. Exit code 1 is reserved for unexpected internal errors."""

    exit_code = 1


class ConfigError(DatahygieneError):
    """A bad option, config key or value (exit 2, like click's usage errors)."""

    exit_code = 2


class InputError(DatahygieneError):
    """A manifest that is missing, unreadable, not parquet, or lacks a needed column."""

    exit_code = 3


class ListError(DatahygieneError):
    """A hash list that cannot be read or holds an entry that does not parse."""

    exit_code = 4


class PluginError(DatahygieneError):
    """A plugin that fails to load, clashes with another, or is not allowed."""

    exit_code = 5


class OutputError(DatahygieneError):
    """The output location cannot be written."""

    exit_code = 6


class VerificationError(DatahygieneError):
    """Evidence that does not verify (used by ``datahygiene verify``)."""

    exit_code = 7


class ServiceError(DatahygieneError):
    """A remote list source or matching service failed in a way that stops the run."""

    exit_code = 8


class InterruptedAfterCommit(KeyboardInterrupt):
    """Ctrl-C after part of the work was committed (a list sync keeps the windows it
    finished): the interruption, with what was kept, so the console does not say that
    nothing was. Exit 130 like any interruption."""

    def __init__(self, committed: str) -> None:
        super().__init__(committed)
        self.committed = committed


_committed: list[str] = []


def note_committed(text: str | None) -> None:
    """Record that the command running committed its work (``text`` says what and
    where; None: nothing yet, as each command line starts): a Ctrl-C after that -- in
    click's teardown, as the command line returns -- says so too, not that nothing
    was committed."""
    _committed[:] = [] if text is None else [text]


def committed_note() -> str | None:
    """What :func:`note_committed` recorded, if anything."""
    return _committed[0] if _committed else None
