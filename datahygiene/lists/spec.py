"""How a scan names a list: path plus metadata from the command line, a config
block, or a sidecar file beside the list (``LIST.meta.toml`` / ``LIST.meta.json``)."""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from datahygiene.errors import ConfigError

FORMATS = ("auto", "text", "csv", "tsv", "jsonl", "parquet")
_TEXT_FIELDS = ("path", "signal", "partner", "name", "version", "retrieved_at", "format",
                "hash_column", "id_column", "category_column", "signal_column", "on_bad_entry",
                "source")


@dataclass(frozen=True)
class ListSpec:
    path: str
    signal: str | None = None
    partner: str | None = None
    name: str | None = None
    version: str | None = None
    retrieved_at: str | None = None
    format: str = "auto"
    hash_column: str | None = None
    id_column: str | None = None
    category_column: str | None = None
    signal_column: str | None = None
    on_bad_entry: str = "fail"
    threshold: int | None = None
    source: str = "file"
    options: dict[str, Any] = field(default_factory=dict)
    # names of the fields set on purpose (command line, config block): a sidecar never
    # overrides those, even where the value given equals the default
    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def describe(self) -> dict[str, Any]:
        """The spec as recorded in run.json (set fields only)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "explicit" and getattr(self, f.name) not in (None, {}, "")}

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str) -> ListSpec:
        known = {f.name for f in fields(cls)} - {"explicit"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown list key(s) {shown_keys(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        if "path" not in data:
            raise ConfigError(f"{where}: list needs a 'path'")
        spec = cls(**{k: _date_as_text(k, v) for k, v in data.items()}, explicit=frozenset(data))
        spec.validate(where)
        return spec

    def validate(self, where: str) -> None:
        # TOML reads an unquoted `retrieved_at = 2026-11-01T06:00:00Z` as a date-time: name
        # the key, do not fail later (a traceback) when the configuration is written to JSON
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str) and \
                    not (name == "version" and isinstance(value, int) and not isinstance(value, bool)):
                raise ConfigError(f"{where}: {name} must be a string, not {_toml_type(value)}"
                                  f"{' (quote it)' if isinstance(value, (dt.date, dt.time)) else ''}")
        if not isinstance(self.options, dict):
            raise ConfigError(f"{where}: options must be a table, not {_toml_type(self.options)}")
        if self.format not in FORMATS:
            raise ConfigError(f"{where}: format {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.on_bad_entry not in ("fail", "skip"):
            raise ConfigError(f"{where}: on_bad_entry must be 'fail' or 'skip'")
        if self.threshold is not None and (not isinstance(self.threshold, int) or
                                           isinstance(self.threshold, bool) or self.threshold < 0):
            raise ConfigError(f"{where}: threshold must be a non-negative integer")

    def with_sidecar(self) -> ListSpec:
        """Fill unset fields from ``PATH.meta.toml`` or ``PATH.meta.json`` if present.
        Values given explicitly (CLI, config) win over the sidecar. Both present is an
        error: one would be ignored without a word."""
        if Path(self.path + ".meta.toml").is_file() and Path(self.path + ".meta.json").is_file():
            raise ConfigError(f"{self.path}: has both a .meta.toml and a .meta.json sidecar; "
                              "keep one")
        for suffix, loader in ((".meta.toml", _load_toml), (".meta.json", _load_json)):
            side = Path(self.path + suffix)
            if side.is_file():
                data = loader(side)
                known = {f.name for f in fields(self)} - {"path", "explicit"}
                unknown = sorted(set(data) - known)
                if unknown:
                    raise ConfigError(f"{side}: unknown key(s) {shown_keys(unknown)}")
                if data.get("source", self.source) != self.source:
                    # the sidecar is read by the source already chosen: it cannot choose one
                    raise ConfigError(f"{side}: source cannot be set in a sidecar (this list is "
                                      f"read by the {self.source!r} source); set it in the "
                                      "config's [[lists]] block")
                merged = {k: _date_as_text(k, v) for k, v in data.items() if k not in self.explicit
                          and getattr(self, k) in (None, "auto", "fail", {}, "file")}
                spec = replace(self, **merged)
                spec.validate(str(side))
                return spec
        return self


def shown_keys(keys: list[str]) -> str:
    """Unknown keys for a message; a key holding 16 or more hex digits in a row, or
    longer than any setting's name could be, may be a list value pasted in the wrong
    place: counted, not shown."""
    shown = [k for k in keys if len(k) <= 40 and not re.search(r"[0-9A-Fa-f]{16}", k)]
    hidden = len(keys) - len(shown)
    return ", ".join([*shown, *([f"{hidden} not shown (named like a value)"] if hidden else [])])


def _date_as_text(key: str, value: Any) -> Any:
    """An unquoted ``version = 2026-11-01`` (a TOML date) is the text "2026-11-01", as a
    sidecar's always was; any other date or time value is refused by validate()."""
    if key == "version" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _toml_type(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return "a date-time"
    if isinstance(value, dt.date):
        return "a date"
    if isinstance(value, dt.time):
        return "a time"
    return {bool: "a boolean", int: "an integer", float: "a number", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read list metadata: {exc}") from exc


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read list metadata: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: list metadata must be a JSON object")
    return data
