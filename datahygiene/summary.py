"""Counts for summary.json, computed from the exclusion table alone.

Deriving the summary from the exclusion manifest (rather than counting along the
way) means any engine that produces the same exclusions produces the same summary,
and an auditor holding the restricted manifest can recompute it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import polars as pl
import pyarrow as pa

from datahygiene.lists.model import HashList

# Distance bands for perceptual matches (PDQ's default threshold is 31): how close
# matches were, at a glance, without opening the restricted exclusion manifest.
BANDS = ("0", "1-8", "9-16", "17-24", "25-31", "32+")


def distance_band(d: int) -> str:
    return "0" if d == 0 else "32+" if d > 31 else BANDS[(d - 1) // 8 + 1]


def summarize(exclusions: pa.Table, scanned: int, lists: list[HashList],
              files: int) -> dict[str, Any]:
    df = pl.from_arrow(exclusions)
    assert isinstance(df, pl.DataFrame)
    excluded = int((df["decision"] == "excluded").sum()) if df.height else 0
    unverified = int((df["decision"] == "unverified").sum()) if df.height else 0
    # A list is keyed by its id; one id may name lists of several signals (a list file
    # with a signal column, or two files with the same name), and then each is keyed
    # "ID (SIGNAL)", so no list's counts are merged into another's.
    shared = {i for i, n in Counter(hl.id for hl in lists).items() if n > 1}

    def key(list_id: str, signal: str) -> str:
        return f"{list_id} ({signal})" if list_id in shared else list_id

    per_list: dict[str, dict[str, Any]] = {
        key(hl.id, hl.signal): {"signal": hl.signal, "entries": len(hl), "matches": 0, "rows": 0}
        for hl in lists
    }
    reasons: dict[str, int] = {}
    per_signal: dict[str, dict[str, int]] = {}
    per_band: dict[str, dict[str, int]] = {}
    if df.height:
        m = df.select("source_file", "row_index", pl.col("matches")).explode("matches")
        m = m.filter(pl.col("matches").is_not_null()).unnest("matches")
        if m.height:
            agg = m.group_by("list", "signal").agg(
                pl.len().alias("matches"),
                pl.struct("source_file", "row_index").n_unique().alias("rows"),
            )
            for row in agg.iter_rows(named=True):
                entry = per_list.setdefault(key(row["list"], row["signal"]),
                                            {"signal": row["signal"], "matches": 0, "rows": 0})
                entry["matches"] = int(row["matches"])
                entry["rows"] = int(row["rows"])
            bands = m.group_by("signal", "distance").agg(pl.len().alias("n"))
            for row in bands.iter_rows(named=True):
                sig = per_signal.setdefault(row["signal"], {})
                sig[f"distance_{row['distance']}"] = int(row["n"])
                band = per_band.setdefault(row["signal"], {})
                name = distance_band(int(row["distance"]))
                band[name] = band.get(name, 0) + int(row["n"])
        r = df.select(pl.col("reasons").explode()).drop_nulls()
        for name, count in r.group_by("reasons").agg(pl.len()).iter_rows():
            reasons[str(name)] = int(count)
    return {
        "files": files,
        "rows": {
            "scanned": scanned,
            "clean": scanned - excluded - unverified,
            "excluded": excluded,
            "unverified": unverified,
        },
        "lists": {k: per_list[k] for k in sorted(per_list)},
        "reasons": dict(sorted(reasons.items())),
        "match_distances": {k: dict(sorted(v.items())) for k, v in sorted(per_signal.items())},
        "match_bands": {k: {b: v[b] for b in BANDS if b in v} for k, v in sorted(per_band.items())},
    }
