"""Conformance checks for ``datahygiene.reporters`` plugins.

What the scan relies on (datahygiene/scan.py, datahygiene/outputs.py): a reporter
writes only into the directory it is given (owner-only, under ``restricted/``) and
returns every path it wrote -- the scan seals and publishes exactly those -- creating
its files owner-only itself; it leaves ``run`` and ``summary`` as they are (run.json
is written after the reporters, and the signed evidence already covers it); the same
run gives the same bytes (reports are compared across reruns and ``--resume``); and
rows without captured details (inputs skipped on ``--resume``) are read back, giving
the same report. The content format is the reporter's own: not checked.

The run a reporter is given here is a real one: ``datahygiene.scan.run_scan`` over a
small synthetic manifest (random digests, ``example.invalid`` URLs) with planted
matches and unverified rows, and a second run of it that excludes nothing.
"""

from __future__ import annotations

import copy
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from datahygiene.reporters.base import Reporter, RowDetails
from datahygiene.testing._rules import rule

# what every report written here is created under: the common default, so that a
# reporter relying on the umask for its files' modes is seen to
CHECK_UMASK = 0o022
_MANIFEST_COLUMNS = ["key", "url", "caption", "md5"]


@dataclass(frozen=True)
class ReporterRun:
    """One finished run, as a reporter's ``write`` receives it. ``details`` holds every
    manifest column of the excluded rows; each check hands a reporter only the columns
    it asks for, as the scan does."""

    exclusions: pa.Table = field(repr=False)
    run: dict[str, Any] = field(repr=False)
    summary: dict[str, Any] = field(repr=False)
    details: RowDetails = field(repr=False)


@dataclass(frozen=True)
class ReporterInputs:
    """Runs for :func:`check_reporter`, made by :func:`make_reporter_inputs`: one with
    excluded and unverified rows, one that flagged nothing. The manifest they scanned
    stays in ``directory`` (reporters read rows back from it)."""

    directory: Path
    matched: ReporterRun
    unmatched: ReporterRun


def make_reporter_inputs(directory: str | os.PathLike[str]) -> ReporterInputs:
    """Scan a small synthetic manifest twice under ``directory`` (about half a second):
    once against placeholder MD5 and URL lists with planted matches and rows without
    an MD5 (excluded and unverified rows, in both inputs), once against a list
    matching nothing (no row flagged: the most common run). Make it once per test
    module and pass it to every :func:`check_reporter` call."""
    from datahygiene import __version__
    from datahygiene.config import ScanConfig
    from datahygiene.lists.spec import ListSpec
    from datahygiene.plugins import PluginInfo, discover
    from datahygiene.scan import run_scan
    from datahygiene.synth import SynthSpec, hex_matrix, write_synthetic

    root = Path(directory)
    truth = write_synthetic(
        root / "synthetic",
        SynthSpec(
            rows=240,
            files=2,
            list_size=40,
            planted=5,
            malformed=3,
            row_group_size=64,
            url_list=True,
            seed=20260,
        ),
    )
    captured: list[ReporterRun] = []

    class Capture(Reporter):
        """Records what the scan hands a reporter, details of every column included."""

        name = "conformance-capture"

        def detail_columns(self, signals: list[dict[str, Any]]) -> list[str]:
            return list(_MANIFEST_COLUMNS)

        def write(
            self,
            exclusions: pa.Table,
            run: dict[str, Any],
            summary: dict[str, Any],
            directory: Path,
            *,
            details: RowDetails | None = None,
        ) -> list[Path]:
            captured.append(
                ReporterRun(
                    exclusions,
                    copy.deepcopy(run),
                    copy.deepcopy(summary),
                    details if details is not None else RowDetails(),
                )
            )
            return []

    registry = discover(allow={"datahygiene"})
    registry.add(
        PluginInfo("reporters", Capture.name, f"{__name__}:Capture", "datahygiene", __version__, Capture)
    )
    manifest = str(root / "synthetic" / "manifest")
    lists = [ListSpec(path=p, signal=s) for s, p in sorted(truth["lists"].items())]
    # URL digests (no row lacks a URL): a run that flags no row at all
    values = np.random.default_rng(20261).integers(0, 256, size=(6, 32), dtype=np.uint8)
    nothing = root / "matches-nothing.txt"
    nothing.write_bytes(
        b"# synthetic placeholder list: random values, matching no row\n"
        + hex_matrix(values, newline=True).tobytes()
    )
    runs = [
        lists,
        [
            ListSpec(
                path=str(nothing),
                signal="url-sha256",
                partner="synthetic",
                name="placeholder-nothing",
                version="1",
            )
        ],
    ]
    for i, specs in enumerate(runs):
        run_scan(
            ScanConfig(
                manifests=[manifest],
                lists=specs,
                out=str(root / f"run-{i}"),
                reporters=[Capture.name],
                threads=1,
            ),
            registry,
        )
    matched, unmatched = captured
    decisions = set(matched.exclusions.column("decision").to_pylist())
    rule(
        decisions == {"excluded", "unverified"} and unmatched.exclusions.num_rows == 0,
        "the synthetic runs flag the rows planted (a bug in the kit)",
    )
    return ReporterInputs(root, matched, unmatched)


def check_reporter(
    reporter_or_cls: Reporter | type[Reporter], inputs: ReporterInputs | None = None
) -> list[Path]:
    """Write the reporter's stubs for a finished synthetic run and check the contract.

    A class is instantiated without arguments, as the scan does. ``inputs``: from
    :func:`make_reporter_inputs` (made here, in a temporary directory, if not given).
    Each write goes into its own fresh owner-only directory, under the umask
    :data:`CHECK_UMASK` (the process's umask is set for the call and restored: do not
    run this beside threads that create files). Returns the files of the first write
    (of the run with matches), relative to its directory.

    Rules: ``detail_columns`` returns a list of strings; ``write`` returns a list of
    ``Path``, each an existing regular file (no link) inside ``directory``, and every
    file it created is among them; nothing outside ``directory`` changes (the check
    watches its own temporary tree and the scanned manifest: a write elsewhere on the
    machine is not seen); files are not readable or writable by group or others;
    ``run`` and ``summary`` are left unchanged; two writes of the same run give the
    same file names and bytes (take times from ``run``, never from the clock); a
    reporter with detail columns writes the same bytes given every row's details,
    some inputs' only (the others skipped on ``--resume``) or ``details=None`` --
    it reads missing rows back from the inputs. Both a run with matches and one that
    flagged nothing are written.
    """
    reporter = reporter_or_cls() if isinstance(reporter_or_cls, type) else reporter_or_cls
    rule(isinstance(reporter, Reporter), "a reporter subclasses datahygiene.reporters.base.Reporter")
    name = getattr(type(reporter), "name", None)
    rule(isinstance(name, str) and name and name == name.lower(), "name is a non-empty lower-case string")
    with tempfile.TemporaryDirectory(prefix="dh-reporter-check-") as tmp:
        sandbox = Path(tmp)
        if inputs is None:
            inputs = make_reporter_inputs(sandbox / "inputs")
        first: list[Path] = []
        cases = (
            ("matched", "a run with matches", inputs.matched),
            ("unmatched", "a run that flagged nothing", inputs.unmatched),
        )
        for label, about, case in cases:
            cols = reporter.detail_columns(copy.deepcopy(case.run.get("signals", [])))
            rule(
                isinstance(cols, list) and all(isinstance(c, str) and c for c in cols),
                "detail_columns() returns a list of column names (str)",
            )
            given = {"details": _details(case.details, cols, None)} if cols else {}
            paths, files = _write(reporter, case, inputs, sandbox / f"{label}-a", given, about)
            first = first or paths
            _, again = _write(reporter, case, inputs, sandbox / f"{label}-b", given, about)
            _same(
                files,
                again,
                "write() is deterministic: the same run gives the same files, byte for "
                "byte (take times from run, never from the clock)",
            )
            if not cols:
                continue
            for i, (what, details) in enumerate(
                (("some inputs' details only", _details(case.details, cols, 1)), ("details=None", None))
            ):
                _, other = _write(
                    reporter,
                    case,
                    inputs,
                    sandbox / f"{label}-c{i}",
                    {"details": details},
                    f"{about} and {what}",
                )
                _same(
                    files,
                    other,
                    f"a report written with {what} (rows skipped on --resume) is the one "
                    "written with every row's details: read the missing rows back from the inputs",
                )
        return first


def _details(captured: RowDetails, columns: list[str], inputs: int | None) -> RowDetails:
    """The details the scan would give a reporter asking for ``columns``: ``row_index``
    and those of the columns an input has; for the first ``inputs`` inputs only
    (the others finished by an earlier run), or all."""
    tables = {}
    for k, (path, table) in enumerate(sorted(captured.tables.items())):
        if inputs is not None and k >= inputs:
            break
        tables[path] = table.select(
            ["row_index", *[c for c in dict.fromkeys(columns) if c in table.column_names]]
        )
    return RowDetails(tables)


def _tree(*roots: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``roots``: its kind, size, modification time and mode."""
    out: dict[str, tuple[Any, ...]] = {}
    for root in roots:
        for entry in _walk(root):
            st = os.lstat(entry)
            out[entry] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


def _walk(root: Path) -> Iterator[str]:
    """``root`` and everything under it, links included (never followed)."""
    for top, dirs, files in os.walk(root, followlinks=False):
        yield top
        yield from (os.path.join(top, n) for n in files)
        yield from (os.path.join(top, n) for n in dirs if os.path.islink(os.path.join(top, n)))


def _write(
    reporter: Reporter,
    case: ReporterRun,
    inputs: ReporterInputs,
    where: Path,
    kwargs: dict[str, Any],
    about: str,
) -> tuple[list[Path], dict[str, bytes]]:
    """One write into ``where/reports`` (owner-only); the paths returned and the files'
    bytes, both relative to the directory, once every rule about them is checked."""
    directory = where / "reports"
    directory.mkdir(parents=True, mode=0o700)
    os.chmod(directory, 0o700)
    sandbox = where.parent
    watched = (sandbox,) if inputs.directory.is_relative_to(sandbox) else (sandbox, inputs.directory)
    before = _tree(*watched)
    run, summary = copy.deepcopy(case.run), copy.deepcopy(case.summary)
    old = os.umask(CHECK_UMASK)
    try:
        written = reporter.write(case.exclusions, run, summary, directory, **kwargs)
    except Exception as exc:  # (the run is synthetic: the cause may show its values)
        raise AssertionError(f"write() works for {about}; it raised {type(exc).__name__}") from exc
    finally:
        os.umask(old)
    after = _tree(*watched)
    inside = str(directory) + os.sep
    changed = [p for p in sorted(set(before) | set(after)) if before.get(p) != after.get(p)]
    rule(
        all(p.startswith(inside) or p == str(directory) for p in changed),
        "write() creates, changes or removes nothing outside its directory",
    )
    rule(
        run == case.run and summary == case.summary,
        "write() leaves run and summary unchanged (run.json is written after the reporters)",
    )
    rule(
        isinstance(written, list) and all(isinstance(p, Path) for p in written),
        "write() returns a list of pathlib.Path",
    )
    rule(len(set(written)) == len(written), "write() returns each path once")
    real = directory.resolve()
    for p in written:
        rule(
            p.is_relative_to(directory) and p.resolve().is_relative_to(real),
            "every path write() returns is inside its directory",
        )
        rule(not p.is_symlink() and p.is_file(), "every path write() returns is a regular file it wrote")
    files = {p for p in (Path(e) for e in _walk(directory)) if p.is_symlink() or not p.is_dir()}
    rule(
        files == {directory / p.relative_to(directory) for p in written},
        "write() returns every file it wrote (the scan seals and publishes only those)",
    )
    for p in files:
        rule(
            stat.S_IMODE(p.lstat().st_mode) & 0o077 == 0,
            "report files are owner-only (mode 0600) as created, whatever the umask: they point at "
            "matched items",
        )
    return (
        [p.relative_to(directory) for p in written],
        {str(p.relative_to(directory)): p.read_bytes() for p in files},
    )


def _same(a: dict[str, bytes], b: dict[str, bytes], why: str) -> None:
    rule(sorted(a) == sorted(b) and all(a[k] == b[k] for k in a), why)


__all__ = ["CHECK_UMASK", "ReporterInputs", "ReporterRun", "check_reporter", "make_reporter_inputs"]
