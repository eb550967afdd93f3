"""The ``datahygiene`` command line.

Each command lives in its own module under ``datahygiene/commands/`` and is added to
the group here. Errors from the library (:class:`DatahygieneError`) are printed as one
line, ``datahygiene: error: ...``, and the process exits with the error's code; the
table of exit codes is in docs/curator.md.
"""

from __future__ import annotations

import importlib
import signal
import sys

import click

from datahygiene import __version__
from datahygiene.allocator import tune_allocator
from datahygiene.errors import (
    DatahygieneError,
    InterruptedAfterCommit,
    OutputError,
    committed_note,
    note_committed,
)

COMMAND_MODULES = (
    "datahygiene.commands.scan",
    "datahygiene.commands.lists",
    "datahygiene.commands.store",
    "datahygiene.commands.plugins",
    "datahygiene.commands.synth",
    "datahygiene.commands.demo",
    "datahygiene.commands.keys",
    "datahygiene.commands.log",
    "datahygiene.commands.verify",
    "datahygiene.commands.hash",
)


class Group(click.Group):
    """Turns library errors into one line and a documented exit code."""

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


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


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
    sys.exit(rc)


def _run() -> int:
    try:
        # From here a Ctrl-C is a KeyboardInterrupt again: the command turns it into one
        # line (Group.invoke) after removing its staging files and keeping finished work.
        # Before (datahygiene.entry), it exits at once.
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
