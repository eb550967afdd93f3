"""Shared helpers of the conformance checks.

A broken rule is an ``AssertionError`` raised explicitly, not an ``assert``
statement: the checks must still run under ``python -O``, and pytest's assertion
rewriting (which prints the values compared) never touches a library module -- a
failure message names the rule, never a list value, an item or a credential.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterable
from typing import Any, NoReturn


def rule(ok: object, text: str) -> None:
    """Raise AssertionError(``text``) unless ``ok``."""
    if not ok:
        broken(text)


def broken(text: str) -> NoReturn:
    raise AssertionError(text)


def json_text(value: Any, what: str) -> str:
    """``value`` as canonical JSON, or the rule that it must be JSON-able."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        # (the error's own text may quote the value: never chained)
        broken(f"{what} must be JSON-able (str, int, float, bool, None, lists and dicts)")


def pickled(obj: Any, what: str) -> bytes:
    try:
        return pickle.dumps(obj)
    except Exception as exc:  # any failure is the rule broken; its text is not shown
        broken(
            f"{what} must pickle (Ray workers, datasets fingerprints); pickling raised {type(exc).__name__}"
        )


def unpickled(data: bytes, what: str) -> Any:
    try:
        return pickle.loads(data)
    except Exception as exc:
        broken(f"{what} must unpickle; unpickling raised {type(exc).__name__}")


_HEX_RUN = re.compile(r"[0-9A-Fa-f]{2,}")


def hex_needles(hexes: Iterable[str]) -> dict[int, set[str]]:
    """Lower-case hex values grouped by length, for :func:`holds_hex`."""
    out: dict[int, set[str]] = {}
    for h in hexes:
        out.setdefault(len(h), set()).add(h.lower())
    return out


def holds_hex(text: str, needles: dict[int, set[str]]) -> bool:
    """Whether ``text`` holds any of the values as hex, in either case (or mixed), at
    any offset of a run of hex digits (``0x`` prefixes and separators around it do not
    hide it)."""
    if not needles:
        return False
    for m in _HEX_RUN.finditer(text):
        run = m.group().lower()
        for n, values in needles.items():
            for i in range(len(run) - n + 1):
                if run[i : i + n] in values:
                    return True
    return False


def holds_any(text: str | bytes, needles: Iterable[str | bytes]) -> bool:
    """Whether ``text`` holds any of ``needles``, ignoring case (an empty needle never
    counts)."""
    if isinstance(text, bytes):
        low = text.lower()
        return any(n and (n.encode() if isinstance(n, str) else n).lower() in low for n in needles)
    low_s = text.lower()
    return any(n and (n if isinstance(n, str) else n.decode("latin-1")).lower() in low_s for n in needles)
