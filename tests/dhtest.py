"""Test helpers shared by the suite (imported by conftest.py and test modules).

Kept out of conftest.py so test modules can import them by a name that cannot clash
with another directory's conftest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parent.parent


def core_registry() -> Any:
    """The registry of the core distribution's plugins alone (see conftest ``core_only``)."""
    from datahygiene.plugins import discover

    return discover(allow={"datahygiene"})


def rand_bytes(n: int, width: int, seed: int = 0) -> np.ndarray:
    """(n, width) random uint8 matrix: placeholder digests, never real ones."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, width), dtype=np.uint8)


def hexes(values: np.ndarray) -> list[str]:
    return [bytes(r).hex() for r in values]


def url_digest(url: str, alg: str = "sha256") -> str:
    return hashlib.new(alg, url.encode()).hexdigest()


def write_manifest(path: Path, columns: dict[str, Any], row_group_size: int | None = None) -> Path:
    """Write a parquet manifest from a mapping of column name -> list / Arrow array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({k: (v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v))
                      for k, v in columns.items()})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_text_list(path: Path, values: Sequence[str], header: str = "# synthetic placeholder\n",
                    newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((header + newline.join(values) + newline).encode())
    return path


class Cli:
    """Runs ``datahygiene`` in-process through click's runner.

    ``ok=True`` asserts exit code 0 and shows the output when it is not; an
    unexpected Python exception (not a DatahygieneError turned into an exit code) is
    always a test failure, because a user would see a traceback.
    """

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str | os.PathLike[str], ok: bool = True,
                 env: dict[str, str] | None = None) -> Result:
        from datahygiene.cli import cli

        result = self.runner.invoke(cli, [str(a) for a in args], env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"datahygiene {' '.join(map(str, args))} raised "
                                 f"{type(result.exception).__name__}: {result.exception}\n"
                                 f"{result.output}") from result.exception
        if ok and result.exit_code != 0:
            raise AssertionError(f"datahygiene {' '.join(map(str, args))} exited "
                                 f"{result.exit_code}:\n{result.output}")
        return result


def after_each_digest(monkeypatch: Any, action: Callable[[Any], None]) -> None:
    """Have ``manifest.digest_file`` call ``action(input_file)`` once it has digested
    a file (a writer changing the file just after the scan's digest of it)."""
    from datahygiene import manifest

    real = manifest.digest_file

    def then(f: Any, algorithm: str, **kw: Any) -> tuple[str, int]:
        got = real(f, algorithm, **kw)
        action(f)
        return got

    monkeypatch.setattr(manifest, "digest_file", then)
