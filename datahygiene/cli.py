"""The ``datahygiene`` command line.

Each command lives in its own module under ``datahygiene/commands/``, imported and added
to the group when the command is used (:data:`COMMANDS`). Errors from the library
(:class:`DatahygieneError`) are printed as one line, ``datahygiene: error: ...``, and
the process exits with the error's code; the table of exit codes is in docs/curator.md.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import weakref
from collections.abc import Iterable

import click

from datahygiene import __version__
from datahygiene.allocator import tune_allocator
from datahygiene.commands.common import starting
from datahygiene.entry import sigint_ignored
from datahygiene.errors import (
    DatahygieneError,
    InterruptedAfterCommit,
    OutputError,
    committed_note,
    note_committed,
)

# The top-level commands: the modules that register each, in order (commands.store adds
# its commands to the lists group), and its line in `datahygiene --help`. A command's
# modules are imported when it runs or shows its own help: `datahygiene --help`,
# `--version` and a mistyped command import none of pyarrow, numpy or numba (about 0.1 s
# instead of 1 s). tests/test_cli.py checks this table against the commands.
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "demo": (("datahygiene.commands.demo",),
             "End to end on synthetic data with planted matches, checked."),
    "hash": (("datahygiene.commands.hash",),
             "Print the signals (pdq, md5, ...) of files as CSV rows."),
    "keys": (("datahygiene.commands.keys",), "Keys that commit and sign a scan's evidence."),
    "lists": (("datahygiene.commands.lists", "datahygiene.commands.store"),
              "Inspect list files; manage snapshots in the list store."),
    "log": (("datahygiene.commands.log",),
            "Proofs from a run directory's exclusion log (OUT/public/log)."),
    "plugins": (("datahygiene.commands.plugins",),
                "List discovered plugins: kind, name, distribution, version."),
    "scan": (("datahygiene.commands.scan",), "Scan parquet manifests against hash lists."),
    "synth": (("datahygiene.commands.synth",),
              "Write a synthetic manifest and lists with planted matches."),
    "verify": (("datahygiene.commands.verify",),
               "Check a run's evidence; exit 0 only if every check passes."),
}


def load_commands(group: click.Group, names: Iterable[str] | None = None) -> None:
    """Register the commands ``names`` (default: all) on ``group``, importing their
    modules once each."""
    loaded = _LOADED.setdefault(group, set())
    for name in sorted(COMMANDS) if names is None else names:
        for module in COMMANDS[name][0]:
            if module not in loaded:
                with starting():
                    importlib.import_module(module).register(group)
                loaded.add(module)


_LOADED: weakref.WeakKeyDictionary[click.Group, set[str]] = weakref.WeakKeyDictionary()


class Group(click.Group):
    """Turns library errors into one line and a documented exit code; imports a
    command's modules only when that command is used (:data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            load_commands(self, [cmd_name])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1] if name in COMMANDS else
                 self.commands[name].get_short_help_str(formatter.width))
                for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        note_committed(None)  # this command line's, once it commits something
        try:
            return super().invoke(ctx)
        except DatahygieneError as exc:
            click.echo(f"datahygiene: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            kept = exc.committed if isinstance(exc, InterruptedAfterCommit) else _kept()
            click.echo(f"datahygiene: interrupted; {kept}", err=True)
            ctx.exit(130)
        except OSError as exc:
            # what the library did not already attribute to an input or list: most often
            # the output side (disk full, permissions); one line, the output exit code
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            why = exc.strerror or str(exc) or type(exc).__name__
            click.echo(f"datahygiene: error: {where}{why}", err=True)
            ctx.exit(OutputError.exit_code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@click.version_option(__version__, prog_name="datahygiene")
def cli() -> None:
    """Find and exclude known abuse material from training manifests, using hash lists
    supplied by child-safety partners, and leave evidence others can verify.

    \b
    Start here:
      datahygiene demo --out demo-out          end to end on synthetic data
      datahygiene scan --help                  scan your own manifest
      datahygiene lists inspect md5=LISTFILE   check a list file (never prints values)
    """


def main() -> None:
    """The console entry point. Usage errors (an unknown option, a bad value) are one
    line too, like every other error, naming the ``--help`` to read."""
    tune_allocator()
    try:
        rc = _run()
    finally:
        # The command is over and has said how it ended. What is left is Python's
        # teardown (freeing pyarrow, numba, threads: 0.3 s after a small scan here),
        # during which Python puts SIGINT back to the default: a Ctrl-C there killed
        # the process by the signal, so a run that had committed and said so looked
        # interrupted (130 to the shell). Ignored from here, the exit status stays the
        # command's.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if "ray" in sys.modules:
        # A Ray scan has shut its runtime down already. Python's teardown then let Ray's
        # leftovers (object references freed, its threads) reach the shut-down core
        # worker, which ended the process itself: after a Ctrl-C, about one run in ten
        # exited 139 or 1 instead of 130. Nothing of the command's is left to flush.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    sys.exit(rc)


def _run() -> int:
    try:
        # From here a Ctrl-C is a KeyboardInterrupt again: the command turns it into one
        # line (Group.invoke) after removing its staging files and keeping finished work.
        # Before (datahygiene.entry), it exits at once.
        if not sigint_ignored():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        rc = cli.main(prog_name="datahygiene", standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            click.echo(exc.ctx.get_help())  # a group run with no command: its help
            return 0
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"datahygiene: error: {exc.format_message()}{hint}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"datahygiene: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):  # outside the command (click's own handling)
        click.echo(f"datahygiene: interrupted; {_kept()}", err=True)
        return 130


def _kept() -> str:
    """What an interruption leaves: the command's committed work, if it got that far."""
    return committed_note() or "no output was committed"


if __name__ == "__main__":  # pragma: no cover
    main()
