"""Scan configuration: typed, validated at load, the failing key named.

A scan is described by command-line options, by a TOML file (``--config``), or both;
options given on the command line override the file. Relative paths in a config file
are relative to the directory the command runs in, as on the command line. Secrets are never inline: a
value of the form ``{ env = "NAME" }`` or ``{ file = "PATH" }`` is resolved when used
(see :func:`resolve_secret`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from datahygiene.errors import ConfigError
from datahygiene.lists.spec import ListSpec, shown_keys
from datahygiene.urls import shown_url

ENGINES = ("local", "ray")
INPUT_DIGESTS = ("sha256", "blake3")  # run.json inputs[].digest (manifest.digest_file); default first


@dataclass
class ScanConfig:
    manifests: list[str] = field(default_factory=list)
    lists: list[ListSpec] = field(default_factory=list)
    out: str | None = None
    key: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    write_clean: bool = False
    keep_unverified: bool = False
    batch_size: int = 262_144
    threads: int = 0  # 0: one per core
    engine: str = "local"
    ray_address: str | None = None  # an existing Ray cluster (engine "ray"); default: start one
    resume: bool = False  # continue the unfinished run in ``out`` (datahygiene/resume.py)
    keys: str | None = None  # directory from `datahygiene keys init` (signed evidence)
    reporters: list[str] = field(default_factory=lambda: ["summary", "cybertipline"])
    services: list[str] = field(default_factory=list)  # remote matchers, e.g. photodna
    image_column: str | None = None  # column with image bytes for services
    image_path_column: str | None = None  # column of image paths/URLs (content hashing)
    webdataset: list[str] = field(default_factory=list)  # tar shard globs (content hashing)
    compute: list[str] = field(default_factory=list)  # signals to compute from images
    dihedral: bool = False  # also match rotated/flipped copies (perceptual signals)
    hash_workers: int = 0  # processes hashing images, 0: one per core
    input_digest: str = "sha256"  # digest of each input file (coverage evidence): sha256 or blake3
    # read the key column again after the scan: refuse a run where a flagged row's key
    # also names another row (datahygiene/keycheck.py); None: only when signing (keys)
    check_keys: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # [columns] entries read from a config file: a config is a template whose lists the
    # command line may replace, so its entries for signals left without a list are unused,
    # not an error (a --column for a signal with no list is one: likely a typo)
    file_columns: set[str] = field(default_factory=set)

    def validate(self) -> None:
        if not self.manifests:
            raise ConfigError("no manifest given (--manifest PATH, or manifest = [...] in the config)")
        if any(not m for m in self.manifests):
            # fsspec reads "" as the working directory: an unset shell variable would scan it
            raise ConfigError("a manifest path is empty; give a parquet file, directory or glob "
                              "('.' for the working directory)")
        for option, value in (("--image-column", self.image_column),
                              ("--image-path-column", self.image_path_column)):
            if value == "":
                # an unset shell variable: a service would be sent the default 'image' column
                raise ConfigError(f"{option} ({option[2:].replace('-', '_')} in the config) "
                                  "is empty; give a column name")
        if not self.lists and not self.services:
            raise ConfigError("no list given (--list SIGNAL=LISTFILE, or [[lists]] in the config)")
        if not self.out:
            raise ConfigError("no output directory given (--out DIR, or out = \"...\" in the config)")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if self.threads < 0:
            raise ConfigError("threads must be 0 (one per core) or more")
        if self.hash_workers < 0:
            raise ConfigError("hash_workers must be 0 (one per core) or more")
        if sum(bool(x) for x in (self.webdataset, self.image_path_column)) > 1:
            raise ConfigError("give one image source: --image-path-column or --webdataset")
        if self.input_digest not in INPUT_DIGESTS:
            raise ConfigError(f"input digest {self.input_digest!r} is not one of {', '.join(INPUT_DIGESTS)}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.ray_address and self.engine != "ray":
            # silently scanning locally would not be what was asked for
            raise ConfigError(f"a Ray address is given but the engine is {self.engine!r}; "
                              "add --engine ray (engine = \"ray\"), or drop the address")

    def expand_user(self) -> None:
        """``~`` and ``~user`` at the start of a path mean a home directory, as in a shell.
        The shell does not expand them when quoted (``--out '~/runs'``), after ``=``
        (``--list md5=~/l.txt``) or in a TOML file: a list was "not found" and ``--out``
        made a directory named ``~`` in the working directory. Expanded once, here, so
        run.json records the path that was read."""
        self.manifests = [_home(m) for m in self.manifests]
        self.webdataset = [_home(w) for w in self.webdataset]
        self.lists = [replace(s, path=_home(s.path)) if s.source == "file" else s for s in self.lists]
        self.out = _home(self.out) if self.out is not None else None
        self.keys = _home(self.keys) if self.keys is not None else None

    def describe(self) -> dict[str, Any]:
        """The configuration as recorded in run.json (paths, names; no secrets)."""
        return {
            "manifests": [shown_url(m) for m in self.manifests],  # no URL's signature
            "lists": [s.describe() for s in self.lists],
            "key": self.key,
            "columns": dict(sorted(self.columns.items())),
            "write_clean": self.write_clean,
            "keep_unverified": self.keep_unverified,
            "engine": self.engine,
            "input_digest": self.input_digest,
            # per-signal and per-service options change what matches: part of the run's
            # identity (its id, and what --resume compares)
            **({"options": {k: dict(sorted(v.items())) if isinstance(v, dict) else v
                            for k, v in sorted(self.options.items())}} if self.options else {}),
            # the column services read: "image" when none is named, as when it is
            **({"services": list(self.services), "image_column": self.image_column or "image"}
               if self.services else {}),
            **({"image_source": {"image_column": self.image_column,
                                 "image_path_column": self.image_path_column,
                                 "webdataset": list(self.webdataset)},
                "compute": list(self.compute), "dihedral": self.dihedral}
               if (self.image_path_column or self.webdataset or self.compute or self.dihedral)
               else {}),
        }


_SCAN_KEYS = {f.name for f in fields(ScanConfig)} - {"file_columns"} | {"manifest"}


def _home(path: str) -> str:
    """``path`` with a leading ``~`` expanded (a URL, or a ``~`` elsewhere, unchanged)."""
    return os.path.expanduser(path) if path.startswith("~") else path


def load_config(path: str) -> ScanConfig:
    """Read a scan TOML file (see configs/ for examples)."""
    p = Path(_home(path))
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 (an editor may save UTF-16 or Latin-1)
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    scan = data.pop("scan", {})
    lists = data.pop("lists", [])
    columns = data.pop("columns", {})
    if data:
        raise ConfigError(f"{path}: unknown section(s) {shown_keys(sorted(data))}; "
                          "known: [scan], [columns], [[lists]]")
    if not isinstance(scan, dict):
        raise ConfigError(f"{path}: [scan] must be a table")
    unknown = sorted(set(scan) - _SCAN_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in [scan]: {shown_keys(unknown)}; "
                          f"known: {', '.join(sorted(_SCAN_KEYS - {'lists', 'columns'}))}")
    cfg = ScanConfig()
    for key, value in scan.items():
        if key in ("manifest", "manifests"):
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ConfigError(f"{path}: [scan].{key} must be a path or a list of paths")
            cfg.manifests.extend(items)
        elif key == "out":
            cfg.out = _typed(path, "scan.out", value, str)
        elif key in ("write_clean", "keep_unverified", "resume", "check_keys"):
            setattr(cfg, key, _typed(path, f"scan.{key}", value, bool))
        elif key in ("batch_size", "threads", "hash_workers"):
            setattr(cfg, key, _typed(path, f"scan.{key}", value, int))
        elif key in ("key", "engine", "keys", "ray_address", "input_digest"):
            setattr(cfg, key, _typed(path, f"scan.{key}", value, str))
        elif key == "services":
            cfg.services = _strings(path, "scan.services", value)
        elif key in ("image_column", "image_path_column"):
            setattr(cfg, key, _typed(path, f"scan.{key}", value, str))
        elif key in ("webdataset", "compute"):
            setattr(cfg, key, [value] if isinstance(value, str) else _strings(path, f"scan.{key}", value))
        elif key == "reporters":
            cfg.reporters = _strings(path, "scan.reporters", value)
        elif key == "options":
            # an empty table says nothing: kept, it would change the run id for no reason
            cfg.options = {k: v for k, v in _typed(path, "scan.options", value, dict).items()
                           if v != {}}
        else:
            raise ConfigError(f"{path}: [scan].{key} belongs in its own section")
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise ConfigError(f"{path}: [columns] maps signal names to column names (strings)")
    cfg.columns = dict(columns)
    cfg.file_columns = set(columns)
    if not isinstance(lists, list):
        raise ConfigError(f"{path}: lists must be an array of tables ([[lists]])")
    for i, item in enumerate(lists, 1):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: [[lists]] #{i} must be a table")
        cfg.lists.append(ListSpec.from_mapping(item, f"{path}: [[lists]] #{i}"))
    return cfg


def _typed(path: str, key: str, value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{path}: {key} must be a {kind.__name__}")
    return value


def _strings(path: str, key: str, value: Any) -> list[str]:
    """A list of names or paths (services, reporters, compute, webdataset)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be a list of strings")
    return value


def resolve_secret(value: Any, what: str) -> str:
    """Resolve ``{ env = "NAME" }`` / ``{ file = "PATH" }``; refuse inline secrets."""
    if isinstance(value, dict) and set(value) == {"env"}:
        name = value["env"]
        if name not in os.environ:
            raise ConfigError(f"{what}: environment variable {name} is not set")
        return os.environ[name]
    if isinstance(value, dict) and set(value) == {"file"}:
        try:
            return Path(value["file"]).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {value['file']}: "
                              f"{type(exc).__name__}") from None
    raise ConfigError(f"{what}: secrets are given by reference only: {{ env = \"NAME\" }} "
                      "or { file = \"PATH\" }")
