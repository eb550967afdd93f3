"""The benchmarks print what their figures depend on (processor, library versions)."""

from __future__ import annotations

import pyarrow

from datahygiene.bench import software_line


def test_the_software_line_names_the_installed_versions() -> None:
    line = software_line(("pyarrow", "no-such-distribution-dh"))
    assert line.startswith("cpu: ")
    assert f"pyarrow {pyarrow.__version__}" in line
    assert "no-such-distribution-dh not installed" in line
