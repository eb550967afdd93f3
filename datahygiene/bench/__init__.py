"""Benchmarks (``make bench``, ``make bench-engines``, ``make bench-pdq``): ours against
the baselines each issue names, measured in one run and printed as ratios."""

from __future__ import annotations

import platform
from importlib import metadata


def software_line(packages: tuple[str, ...] = ("pyarrow", "duckdb", "polars", "numba", "numpy")
                  ) -> str:
    """The processor and the versions a benchmark's figures depend on, one line, so
    that tables from different days and machines can be told apart."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} not installed")
    return f"cpu: {cpu}; python {platform.python_version()}; " + ", ".join(versions)
