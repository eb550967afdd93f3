"""The ``datahygiene`` console script: imports the command line (about a second:
pyarrow, numba, polars) only once a Ctrl-C can be answered with one line instead of
a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from datahygiene.cli import main as cli_main
    except KeyboardInterrupt:
        print("datahygiene: interrupted; no output was committed", file=sys.stderr)
        sys.exit(130)
    cli_main()
