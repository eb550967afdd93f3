"""The built-in ``summary`` reporter: a Markdown record of the run for the curator.

It lists counts per list and decision, and the keys of excluded rows so the curator
can act on them; for that reason it is written under ``restricted/reports/`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from datahygiene.reporters.base import Reporter, RowDetails, write_owner_only

RETENTION = (
    "Keep this file only as long as your legal duty to report and your records policy "
    "require; it points at matched items. Do not copy it outside restricted storage."
)


class SummaryReporter(Reporter):
    name = "summary"

    def write(self, exclusions: pa.Table, run: dict[str, Any], summary: dict[str, Any],
              directory: Path, *, details: RowDetails | None = None) -> list[Path]:
        rows = summary["rows"]
        lines = [
            f"# datahygiene run {run['run_id']}",
            "",
            "RESTRICTED: points at matched items. " + RETENTION,
            "",
            f"- finished: {run['finished_at']}",
            f"- rows scanned: {rows['scanned']:,} in {summary['files']} file(s)",
            f"- excluded: {rows['excluded']:,}; unverified: {rows['unverified']:,}; "
            f"clean: {rows['clean']:,}",
            "",
            "| list | signal | entries | matches | rows |",
            "|---|---|---|---|---|",
        ]
        for lid, v in summary["lists"].items():
            lines.append(f"| {lid} | {v.get('signal', '')} | {v.get('entries', 0):,} | "
                         f"{v['matches']:,} | {v['rows']:,} |")
        lines += ["", "## Rows", "", "| decision | key | source file | row | reasons |",
                  "|---|---|---|---|---|"]
        d = exclusions.select(["decision", "key", "source_file", "row_index", "reasons"]).to_pylist()
        for r in d:
            lines.append(f"| {r['decision']} | {_cell(r['key'])} | {_cell(r['source_file'])} | "
                         f"{r['row_index']} | {', '.join(r['reasons'])} |")
        return [write_owner_only(directory / "summary.md", ("\n".join(lines) + "\n").encode())]


def _cell(text: str) -> str:
    """A Markdown table cell: a "|" or a line break in a key or path would split the row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
