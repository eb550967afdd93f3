"""Reading list files: plain text, CSV/TSV, JSON Lines and parquet.

Parsing is vectorised: a table's hash column is parsed by the signal type in one
call; plain-text lists are read by datahygiene/lists/text.py.

Errors name the file and line (or row) at fault and what was wrong with it, never
the entry itself.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from datahygiene.errors import ListError
from datahygiene.lists.model import HashList, ListIdentity
from datahygiene.lists.spec import ListSpec
from datahygiene.lists.text import first_non_utf8_line, parse_text
from datahygiene.plugins import Registry
from datahygiene.signals.base import Normalized, take_rows
from datahygiene.utf8 import decode_utf8

HASH_COLUMN_NAMES = ("hash", "value", "digest", "signal_value")
ID_COLUMN_NAMES = ("id", "entry_id", "ref", "entry_ref")
CATEGORY_COLUMN_NAMES = ("category", "classification")
SIGNAL_COLUMN_NAMES = ("signal", "signal_type")


def detect_format(path: str) -> str:
    lower = path.lower()
    for suffix, fmt in ((".parquet", "parquet"), (".pq", "parquet"), (".csv", "csv"),
                        (".tsv", "tsv"), (".jsonl", "jsonl"), (".ndjson", "jsonl")):
        if lower.endswith(suffix):
            return fmt
    return "text"


def _first_bad(reasons: np.ndarray, invalid: np.ndarray, line_of: np.ndarray) -> tuple[int, str]:
    i = int(np.flatnonzero(invalid)[0])
    return int(line_of[i]), str(reasons[i])


def _as_text(table: pa.Table, column: str, path: str, what: str, line_no: np.ndarray,
             word: str) -> pa.Array:
    """A list's id, category or signal column as text; one holding nested values (JSON
    arrays or objects) is an error naming the file, not a traceback."""
    col = table.column(column).combine_chunks()
    if pa.types.is_nested(col.type):
        raise ListError(f"{path}: column{' ' + column if plain_name(column) else ''} holds "
                        f"{col.type}, not one value per entry")
    return _utf8(col, path, what, line_no, word)


def _utf8(col: pa.Array, path: str, what: str, line_no: np.ndarray, word: str) -> pa.Array:
    """A column as text, checked to be UTF-8: Arrow's JSON and parquet readers take text
    as stored, and a value that is not UTF-8 was a traceback where it was cast, parsed (a
    hash) or written to a report (an id). The error names the line or row, never the value."""
    try:
        text = col.cast(pa.string())
        text.validate(full=True)
        return text
    except pa.ArrowInvalid:
        pass
    try:  # the error path only: find the first value that is not UTF-8
        bad = np.flatnonzero(decode_utf8(col)[1])
    except pa.ArrowException:
        bad = np.zeros(0, dtype=np.int64)
    if bad.size:
        raise ListError(f"{path}: {word} {int(line_no[bad[0]])}: the {what} is not UTF-8 text; "
                        "fix the encoding") from None
    raise ListError(f"{path}: the {what} column is not UTF-8 text; fix the encoding")


def _shown(columns: list[str]) -> str:
    """A list's column names for a message (see :func:`shown_columns`)."""
    return shown_columns(columns, limit=None, why="they may be list entries")


def shown_columns(names: list[str], limit: int | None = 20, why: str = "named like a value") -> str:
    """Column names for a message: those that cannot be a hash value or URL (the first
    ``limit``); the others are counted. A header-less file's "names" are its first row
    (a list's first entry, a manifest row's hash or URL)."""
    safe = [c for c in names if plain_name(c)]
    hidden = len(names) - len(safe)
    more = limit is not None and len(safe) > limit
    return ", ".join([*(safe[:limit] if more else safe), *(["..."] if more else []),
                      *([f"{hidden} not shown ({why})"] if hidden else [])])


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], path: str,
          what: str, required: bool) -> str | None:
    if wanted is not None:
        if wanted not in columns and wanted.strip() in columns:
            wanted = wanted.strip()  # as a CSV/TSV header is read: hash_column = "md5 " still works
        if wanted not in columns:
            raise ListError(f"{path}: no column {wanted!r} for the {what}; columns: {_shown(columns)}")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    if required:
        raise ListError(
            f"{path}: cannot tell which column holds the {what}; name it with hash_column "
            f"(columns: {_shown(columns)})"
        )
    return None


def _looks_like_value(name: str) -> bool:
    """A column name of 16 or more hex digits is a digest, not a name."""
    return bool(_HEX_VALUE.fullmatch(name.strip()))


_HEX_VALUE = re.compile(r"[0-9A-Fa-f]{16,}")


def _nonblank_lines(path: Path, rows: int, delimiter: str | None = None) -> np.ndarray:
    """1-based numbers of the non-blank lines of a JSON Lines or CSV file: the readers
    skip blank lines, so row i is not always line i + 1, and errors and entry references
    must name the right line. Where the count differs from ``rows`` (a quoted CSV field
    holding a newline makes one record of several lines), each CSV record is numbered
    by the line it starts on, read again with Python's csv module (slower, and only
    then)."""
    buf = np.fromfile(path, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts, stops = np.concatenate(([0], ends + 1)), np.concatenate((ends, [buf.shape[0]]))
    filled = np.concatenate(([0], np.cumsum(~np.isin(buf, (9, 10, 13, 32)))))
    lines = np.flatnonzero(filled[stops] > filled[starts]) + 1
    if lines.shape[0] == rows:
        return lines
    if delimiter is not None:
        records = _record_lines(path, delimiter)
        if records.shape[0] == rows:
            return records
    return np.arange(rows) + 1


def _record_lines(path: Path, delimiter: str) -> np.ndarray:
    """The line each non-empty CSV record starts on (the header's included)."""
    out: list[int] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        before = 0
        for record in reader:
            if record:
                out.append(before + 1)
            before = reader.line_num
    return np.asarray(out, dtype=np.int64)


def _read_csv(path: Path, delimiter: str) -> pa.Table:
    """A CSV/TSV list with every column read as text (no type guessing: an all-digit id
    or a hash must not turn into a number). Empty fields are null.

    pyarrow rather than polars here: lists are loaded in processes that may fork
    afterwards (``datasets.map(num_proc=...)``), and polars' thread pool does not
    survive a fork."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh, delimiter=delimiter), [])
    if not header:
        return pa.table({})

    def read(**block: int) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf8", **block),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                                 strings_can_be_null=True,
                                                 quoted_strings_can_be_null=False),
        )

    try:
        return read()
    except pa.ArrowInvalid:
        # a record longer than Arrow's block (1 MiB): read in one block, so that its
        # field is a bad entry named by its line, as in a text list; any other fault
        # fails again
        size = os.path.getsize(path)
        if size <= 1 << 20:
            raise
        return read(block_size=min(size + 1, 2**31 - 1))


def _read_table(spec: ListSpec, fmt: str) -> tuple[pa.Table, np.ndarray, str]:
    """Read a tabular list. Returns the table, each row's line/row number, and the word
    for it ("line" or "row") used in messages."""
    path = spec.path
    try:
        if fmt == "parquet":
            table = pq.read_table(path)
            return table, np.arange(table.num_rows) + 1, "row"
        if fmt in ("csv", "tsv"):
            table = _read_csv(Path(path), "\t" if fmt == "tsv" else ",")
            # (a digest anywhere in a "name": "E1;<md5>" is a line in another delimiter)
            if any(_HEX_VALUE.search(c) for c in table.column_names):
                # A header-less file: its first entry would be taken for a column name,
                # never matched, and quoted in messages that list the columns.
                raise ListError(f"{path}: line 1 holds an entry, not a header; {fmt.upper()} lists "
                                "need a header line naming their columns (a file of bare values is "
                                "a text list: format = \"text\")")
            # "md5, id" names md5 and id: matched with its space, " id" was no id column
            # and the partner's ids were dropped for line numbers without a word (two
            # names equal once stripped are refused as repeated)
            table = table.rename_columns([c.strip() for c in table.column_names])
            # the reader skips blank lines: number rows by the file's non-blank lines
            # (the header is the first), so that errors name the right line
            delimiter = "\t" if fmt == "tsv" else ","
            return table, _nonblank_lines(Path(path), table.num_rows + 1, delimiter)[1:], "line"
        if fmt == "jsonl":
            if not os.path.getsize(path):  # Arrow refuses it: say what it is instead
                return pa.table({}), np.zeros(0, dtype=np.int64), "line"
            # one block for the whole file: types are inferred from every line, not the first few
            table = pajson.read_json(path, read_options=pajson.ReadOptions(
                block_size=max(1 << 20, os.path.getsize(path) + 1)))
            return table, _nonblank_lines(Path(path), table.num_rows), "line"
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
        where = _first_unreadable_line(Path(path), fmt) if not isinstance(exc, OSError) else None
        raise ListError(f"{path}: {where + ': ' if where else ''}cannot read as {fmt}: "
                        f"{type(exc).__name__}") from exc
    raise ListError(f"{path}: unknown list format {fmt!r}")


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,39}")  # never a URL or a digest


def plain_name(name: str) -> bool:
    """A short word-like name (``hash``, ``entry_id``, ``md5``): never a digest in hex,
    base64 or with a prefix, which are longer or carry more digits."""
    return (len(name) <= 20 and bool(_FIELD_NAME.fullmatch(name)) and not _looks_like_value(name)
            and sum(ch.isdigit() for ch in name) <= 3)


_JSON_TYPES = {"str": "string", "int": "number", "float": "number", "bool": "boolean",
               "list": "list", "dict": "object"}


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for json.loads: Python keeps the last of two equal keys,
    where Arrow refuses the file."""
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            raise _RepeatedKey(k)
        seen.add(k)
    return dict(pairs)


def _first_unreadable_line(path: Path, fmt: str) -> str | None:
    """Where a CSV/TSV or JSON Lines file stops being readable, for the error message
    (Arrow's own message may quote the line's text, a list value): "line N" and what
    is wrong with it, or None if the file reads line by line."""
    try:
        if fmt == "jsonl":
            first_type: dict[str, str] = {}
            with open(path, "rb") as fh:
                for n, raw in enumerate(fh, 1):
                    if not raw.strip():
                        continue
                    try:
                        obj = json.loads(raw, object_pairs_hook=_no_repeated_keys)
                    except _RepeatedKey as rep:  # a key is shown only if it cannot be a value
                        name = f"field {rep.key!r}" if plain_name(rep.key) else "a field"
                        return f"line {n}: {name} appears twice in one object"
                    except ValueError:
                        return f"line {n}: not a JSON object"
                    if not isinstance(obj, dict):
                        return f"line {n}: not a JSON object"
                    for k, v in obj.items():
                        if v is None:
                            continue
                        t = _JSON_TYPES.get(type(v).__name__, "value")
                        if first_type.setdefault(str(k), t) != t:
                            # a field name is shown only if it cannot be a list value
                            name = repr(k) if plain_name(k) else "a field"
                            return (f"line {n}: field {name} holds a {t}, earlier lines a "
                                    f"{first_type[str(k)]}")
            return None
        if fmt in ("csv", "tsv"):
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh, delimiter="\t" if fmt == "tsv" else ",")
                width = None
                try:
                    for row in reader:
                        if not row:
                            continue
                        if width is None:
                            width = len(row)
                        elif len(row) != width:
                            return f"line {reader.line_num}: {len(row)} fields, the header has {width}"
                except csv.Error as exc:
                    # Python's reader stops at a field over its limit (Arrow reads one, as a
                    # bad entry, in a well-formed row): the line, never the field
                    if "field limit" not in str(exc):
                        return f"line {reader.line_num}"
                    return (f"line {reader.line_num}: a field over {csv.field_size_limit():,} "
                            "characters long (check the row's fields and quotes)")
            return None
    except UnicodeDecodeError:  # a CSV/TSV that is not UTF-8: name the line, as for text lists
        line = first_non_utf8_line(path)
        return f"{line}not UTF-8 text" if line else None
    except (OSError, csv.Error):
        return None
    return None


def load_list_file(spec: ListSpec, registry: Registry, threads: int = 0) -> list[HashList]:
    """Load one list file into one :class:`HashList` per signal it holds.
    ``threads``: parsing threads for plain-text lists (0: one per core)."""
    threads = threads or len(os.sched_getaffinity(0))
    spec = spec.with_sidecar()
    path = Path(spec.path)
    if not path.is_file():
        raise ListError(f"{spec.path}: list file not found")
    fmt = detect_format(spec.path) if spec.format == "auto" else spec.format
    identity = ListIdentity(
        partner=spec.partner or "local",
        name=spec.name or path.name.split(".")[0],
        version=str(spec.version) if spec.version is not None else "unversioned",
        retrieved_at=spec.retrieved_at,
    )
    stats: dict[str, Any] = {}
    signal_col: pa.Array | None = None
    ids: pa.Array | None = None
    cats: pa.Array | None = None
    text_parsed: Normalized | None = None
    values_col: pa.Array | None = None
    if fmt == "text":
        if spec.signal is None:
            raise ListError(f"{spec.path}: a plain-text list needs its signal: give it as md5={spec.path} "
                            "(or another signal), or name it in the list's sidecar")
        sig0 = registry.signal(spec.signal, threshold=spec.threshold, options=dict(spec.options))
        text_parsed, line_no, stats = parse_text(path, sig0, threads)
        word = "line"
    else:
        table, line_no, word = _read_table(spec, fmt)
        cols = table.column_names
        if not cols:  # not "name it with hash_column": there is nothing to name
            raise ListError(f"{spec.path}: no {'header line' if fmt in ('csv', 'tsv') else 'column'}: "
                            "the file holds no entry and names no column; an empty list is a text "
                            "list without entries, a CSV/TSV with only its header or a parquet "
                            "table without rows")
        repeated = sorted({c for c in cols if cols.count(c) > 1})
        if repeated:
            raise ListError(f"{spec.path}: column name(s) given more than once: {_shown(repeated)}; "
                            "cannot tell which to read")
        scol = _pick(cols, spec.signal_column, SIGNAL_COLUMN_NAMES, spec.path, "signal types", False)
        if spec.signal is None and scol is None:
            # no signal given, none in a column: say so first (a column named like a signal,
            # e.g. md5, is the likely answer), rather than fail on which column holds values
            named = [c for c in cols if c in set(registry.names("signals"))]
            hint = f" (here perhaps {named[0]}={spec.path})" if named else ""
            raise ListError(f"{spec.path}: the list's signal is unknown; give it as SIGNAL=PATH"
                            f"{hint} or in {spec.path}.meta.toml")
        hcol = _pick(cols, spec.hash_column, (spec.signal or "", *HASH_COLUMN_NAMES), spec.path,
                     "hash values", required=len(cols) != 1) or cols[0]
        values_col = table.column(hcol).combine_chunks()
        if pa.types.is_nested(values_col.type):  # JSON arrays or objects, a parquet list column
            raise ListError(f"{spec.path}: the hash column{' ' + hcol if plain_name(hcol) else ''} "
                            f"holds {values_col.type}, not one value per entry")
        vtype = (values_col.type.value_type if pa.types.is_dictionary(values_col.type)
                 else values_col.type)
        if not (pa.types.is_binary(vtype) or pa.types.is_large_binary(vtype)
                or pa.types.is_binary_view(vtype) or pa.types.is_fixed_size_binary(vtype)):
            # binary of every layout is parsed as bytes (a cast to text would fail on them)
            values_col = _utf8(values_col, spec.path, "hash value", line_no, word)
        icol = _pick(cols, spec.id_column, ID_COLUMN_NAMES, spec.path, "entry ids", False)
        ccol = _pick(cols, spec.category_column, CATEGORY_COLUMN_NAMES, spec.path, "categories", False)
        ids = _as_text(table, icol, spec.path, "entry id", line_no, word) if icol else None
        cats = _as_text(table, ccol, spec.path, "category", line_no, word) if ccol else None
        signal_col = _as_text(table, scol, spec.path, "signal type", line_no, word) if scol else None
        stats["rows"] = table.num_rows

    if signal_col is not None:
        # "MD5" or " md5 " in a partner's file means md5: read as another signal's rows,
        # they were dropped without a word under SIGNAL= (signal names are lower case)
        signal_col = pc.utf8_lower(pc.utf8_trim_whitespace(signal_col))
        blank = pc.fill_null(pc.equal(pc.binary_length(signal_col), 0), True)
        unnamed = np.flatnonzero(np.asarray(blank.to_numpy(zero_copy_only=False)))
        if unnamed.size:
            # such a row is in no signal's list: its entry would never be checked, unsaid
            raise ListError(f"{spec.path}: {word} {int(line_no[unnamed[0]])}: no signal type in the "
                            f"signal column ({unnamed.size} row{'' if unnamed.size == 1 else 's'} "
                            "in all); every row of a list with a signal column names its signal")
        names = sorted(n for n in pc.unique(signal_col).to_pylist() if n is not None)
        known = set(registry.names("signals"))
        unknown = [n for n in names if n not in known]
        if unknown and spec.signal is None:
            # a signal column may hold values (columns swapped): never quote one
            shown = [n for n in unknown if plain_name(n)]
            raise ListError(f"{spec.path}: {len(unknown)} unknown signal type(s) in the signal column"
                            f"{' (' + ', '.join(shown) + ')' if len(shown) == len(unknown) else ''}; "
                            f"known: {', '.join(sorted(known))}")
        if spec.signal is not None:
            names = [spec.signal] if spec.signal in names else []
            if not names:
                raise ListError(f"{spec.path}: no entries of signal {spec.signal!r} in column "
                                f"{spec.signal_column or 'signal'}")
    elif spec.signal is not None:
        names = [spec.signal]
    else:
        raise ListError(f"{spec.path}: the list's signal is unknown; give it as SIGNAL=PATH or in "
                        f"{spec.path}.meta.toml")

    out: list[HashList] = []
    for name in names:
        sig = registry.signal(name, threshold=spec.threshold, options=dict(spec.options))
        if signal_col is not None:
            sel = np.asarray(pc.fill_null(pc.equal(signal_col, name), False).to_numpy(zero_copy_only=False))
            sel_arr = pa.array(sel)
            assert values_col is not None
            vcol, lno = values_col.filter(sel_arr), line_no[sel]
            icol_s = ids.filter(sel_arr) if ids is not None else None
            ccol_s = cats.filter(sel_arr) if cats is not None else None
        else:
            vcol, lno, icol_s, ccol_s = values_col, line_no, ids, cats
        parsed = text_parsed if text_parsed is not None else sig.parse_entries(vcol)
        all_good = bool(parsed.valid.all())
        sig_stats = dict(stats)
        if not all_good:
            invalid = ~parsed.valid
            if not parsed.valid.any():
                # said first, in either mode: skipping every entry would scan against an
                # empty list and call every row clean. Almost always a list of another
                # signal given the wrong name, which "skip" would not help
                where, reason = _first_bad(parsed.reasons, invalid, lno)
                raise ListError(
                    f"{spec.path}: all {int(invalid.sum())} entries are bad for signal {name} "
                    f"(first: {reason}, {word} {where}); is it a list of another signal? "
                    f"{name} takes {2 * sig.width} hex characters or {sig.width} bytes; "
                    "on_bad_entry = \"skip\" skips bad entries, not a whole list")
            if spec.on_bad_entry == "fail":
                where, reason = _first_bad(parsed.reasons, invalid, lno)
                hint = (f"; signal {name} takes {2 * sig.width} hex characters or {sig.width} bytes"
                        if reason in ("wrong-length", "malformed") else "")
                raise ListError(
                    f"{spec.path}: {word} {where}: {reason} entry{hint} "
                    f"({int(invalid.sum())} bad entr{'y' if int(invalid.sum()) == 1 else 'ies'} in all; "
                    "on_bad_entry = \"skip\" skips them: a scan's --on-bad-entry, or the list's "
                    "sidecar)"
                )
            sig_stats["skipped_bad_entries"] = int(invalid.sum())
            bad_at = np.flatnonzero(invalid)
            sig_stats["bad_entry_" + word + "s"] = [int(x) for x in lno[bad_at[:10]]]
            kinds, counts = np.unique(parsed.reasons[bad_at].astype(str), return_counts=True)
            sig_stats["bad_entry_reasons"] = {str(k): int(c) for k, c in zip(kinds, counts, strict=True)}
        # the valid entries' positions, only where something is taken by them: for a
        # list of 5M entries, 40 MB of fresh memory on the load's critical path
        taken = not all_good or icol_s is not None or ccol_s is not None
        good = np.flatnonzero(parsed.valid) if taken else np.empty(0, dtype=np.int64)
        # Without an id column an entry's reference is its line number, kept as an
        # integer and spelled "line:N" only when a match needs it.
        ref_prefix = f"{word}:"
        refs: pa.Array = pa.array(lno if all_good else lno[good])
        if icol_s is not None:
            spelled = pc.binary_join_element_wise(ref_prefix, refs.cast(pa.string()), "")
            refs = pc.coalesce(icol_s.take(pa.array(good)), spelled)
            ref_prefix = ""
        out.append(HashList.from_parsed(
            identity, name, parsed.values if all_good else take_rows(parsed.values, good), refs,
            ccol_s.take(pa.array(good)) if ccol_s is not None else None,
            source=str(path), threshold=spec.threshold, stats=sig_stats, ref_prefix=ref_prefix,
        ))
    return out
