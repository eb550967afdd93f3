"""What the benchmarks print beside their medians: the processor and library versions,
and how far the rounds spread."""

from __future__ import annotations

import pyarrow

from datahygiene.bench import software_line
from datahygiene.bench.exact import round_ratios


def test_the_software_line_names_the_installed_versions() -> None:
    line = software_line(("pyarrow", "no-such-distribution-dh"))
    assert line.startswith("cpu: ")
    assert f"pyarrow {pyarrow.__version__}" in line
    assert "no-such-distribution-dh not installed" in line


def test_round_ratios_pair_each_round_with_its_own() -> None:
    ours = {"seconds": 2.0, "rounds": [2.0, 3.0, 1.0]}
    base = {"seconds": 1.0, "rounds": [1.0, 2.0, 2.0]}
    # 2.0, 1.5, 0.5 round by round: not the ratio of the medians (2.0)
    assert round_ratios(ours, base) == "   (per round 0.50-2.00, median 1.50)"
    assert round_ratios({"seconds": 1.0, "rounds": [1.0]}, {"seconds": 1.0, "rounds": [1.0]}) == ""
    assert round_ratios({"seconds": 1.0}, base) == ""
