"""Canonical values for stored entries: known signal types as lower-case hex.

Normalising on the way in means two snapshots with the same entries have the same
fingerprint however the partner spelled them (case, whitespace, base64), and a scan
loading a snapshot parses clean values only.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datahygiene.plugins import Registry
from datahygiene.signals.hexcodec import hex_strings


def normalize_values(table: pa.Table, registry: Registry, stats: dict[str, int]) -> pa.Table:
    """Canonicalise ``value`` for every signal the registry knows; drop what does not
    parse (counted in ``stats`` as ``bad_values:SIGNAL``, never shown)."""
    if table.num_rows == 0:
        return table
    known = set(registry.names("signals"))
    parts: list[pa.Table] = []
    sigcol = table.column("signal")
    for sig in sorted(s for s in pc.unique(sigcol).to_pylist() if s is not None):
        part = table.filter(pc.equal(sigcol, sig))
        vals = part.column("value").combine_chunks()
        if sig not in known:
            parts.append(part.set_column(2, "value", pc.utf8_trim_whitespace(vals)))
            continue
        parsed = registry.signal(sig).parse_entries(vals)
        good = np.flatnonzero(parsed.valid)
        if good.shape[0] != len(part):
            stats[f"bad_values:{sig}"] = stats.get(f"bad_values:{sig}", 0) + len(part) - good.shape[0]
        part = part.take(pa.array(good, pa.int64()))
        parts.append(part.set_column(2, "value", hex_strings(parsed.values[good])))
    return pa.concat_tables(parts).combine_chunks()
