"""Helpers shared by CLI commands: parsing ``NAME=VALUE`` options, progress, tables."""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import click

from datahygiene.errors import ConfigError


@contextmanager
def starting() -> Iterator[None]:
    """Imports before a command does anything (pyarrow, numba: most of a second): a
    Ctrl-C meanwhile ends the process at once, with the one line of a Ctrl-C before any
    command ran (see datahygiene.entry). Nothing has been done yet, and an import can
    turn a KeyboardInterrupt into another error, printed with a traceback."""
    from datahygiene.entry import _interrupted_while_starting, sigint_ignored

    if threading.current_thread() is not threading.main_thread() or sigint_ignored():
        yield
        return

    previous = signal.signal(signal.SIGINT, _interrupted_while_starting)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def imported(module: str) -> ModuleType:
    """``module``, imported under :func:`starting`: for a command module that is also
    imported for its ``--help``, and needs its work's modules only when it runs."""
    with starting():
        return importlib.import_module(module)


def split_pair(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise ConfigError(f"{option} {text!r}: expected NAME=VALUE")
    return name.strip(), value.strip()


def interactive(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


FOOTERS = "loading lists and reading the inputs' footers"


class Progress:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, enabled: bool, what: str = "scanning") -> None:
        self.enabled = enabled
        self.what = what
        self._bar: Any = None
        self._task: Any = None
        self._status: Any = None
        self._spinner: Any = None
        self.flagged = 0

    def prepare(self) -> None:
        """A spinner until :meth:`start`: loading the lists and reading every input's
        footer come first, and take a minute or more for hundreds of thousands of
        files or remote inputs, with nothing else on the screen."""
        if not self.enabled:
            return
        from rich.live import Live
        from rich.spinner import Spinner

        self._spinner = Spinner("dots", FOOTERS)
        self._status = Live(self._spinner, console=_stderr_console(), transient=True,
                            refresh_per_second=12.5)
        self._status.start(refresh=True)  # on the screen at once, not at the first tick

    def footers(self, read: int, inputs: int) -> None:
        """How many inputs' footers are read (called from the reading thread)."""
        if self._spinner is not None:
            self._spinner.update(text=f"{FOOTERS}: {read:,} of {inputs:,} input(s)")

    def _end_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def start(self, total: int, files: int) -> None:
        self._end_status()
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("rows · {task.fields[rate]} rows/s · {task.fields[flagged]} flagged"),
            TimeRemainingColumn(), transient=True, console=_stderr_console())
        self._bar.start()
        self._task = self._bar.add_task(f"{self.what} {files} file(s)", total=total,
                                        rate="-", flagged=0)

    def advance(self, rows: int, flagged: int) -> None:
        self.flagged += flagged
        if self._bar is None:
            return
        self._bar.advance(self._task, rows)
        task = self._bar.tasks[0]
        speed = task.speed or 0
        self._bar.update(self._task, rate=f"{speed:,.0f}", flagged=self.flagged)

    def stop(self) -> None:
        self._end_status()
        if self._bar is not None:
            self._bar.stop()


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def progress_bar(quiet: bool, what: str = "scanning") -> Iterator[Progress]:
    p = Progress(interactive(quiet), what)
    try:
        p.prepare()
        yield p
    finally:
        p.stop()


def echo_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    """Plain aligned table on stdout (readable in logs and terminals alike)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    click.echo(line.rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
