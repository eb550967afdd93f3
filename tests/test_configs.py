"""The example configs in configs/ load, and each runs against a synthetic manifest
shaped like the layout it describes (its column names, its list formats)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import REPO, core_registry, hexes, rand_bytes

from datahygiene.config import ScanConfig, load_config
from datahygiene.lists.spec import ListSpec
from datahygiene.scan import EXCLUSIONS, run_scan

pytestmark = pytest.mark.usefixtures("core_only")

CONFIGS = sorted((REPO / "configs").glob("*.toml"))
FOUNDATION = [REPO / "configs" / n for n in ("img2dataset.toml", "laion-metadata.toml", "huggingface.toml")]
ROWS = 240


def test_the_three_documented_configs_exist() -> None:
    assert all(p.is_file() for p in FOUNDATION)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads(path: Path) -> None:
    load_config(str(path)).validate()


@pytest.mark.parametrize("path", FOUNDATION, ids=lambda p: p.name)
def test_config_names_core_signals(path: Path) -> None:
    cfg = load_config(str(path))
    reg = core_registry()
    for spec in cfg.lists:
        assert spec.signal in reg.names("signals"), f"{spec.path}: signal {spec.signal}"
        assert spec.version and spec.partner and spec.name, "example lists carry their identity"
    for sig in cfg.columns:
        assert sig in reg.names("signals")
    text = path.read_text()
    assert "example.invalid" not in text or "https://example.invalid" in text
    assert "#" in text, "example configs are commented"


def _write_list(spec: ListSpec, path: Path, digests: list[str]) -> None:
    ids = [f"E{i:04d}" for i in range(len(digests))]
    suffix = path.suffix
    hcol = spec.hash_column or "hash"
    icol = spec.id_column or "id"
    if suffix == ".csv":
        cols = [hcol, icol] + ([spec.category_column] if spec.category_column else [])
        rows = [",".join([d, i] + (["placeholder"] if spec.category_column else []))
                for d, i in zip(digests, ids, strict=True)]
        path.write_text(",".join(cols) + "\n" + "\n".join(rows) + "\n")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps({hcol: d, icol: i}) + "\n"
                                for d, i in zip(digests, ids, strict=True)))
    elif suffix == ".parquet":
        pq.write_table(pa.table({hcol: pa.array([bytes.fromhex(d) for d in digests],
                                                pa.binary(len(digests[0]) // 2)),
                                 icol: ids}), path)
    else:
        path.write_text("# synthetic placeholder list\n" + "\n".join(digests) + "\n")


@pytest.mark.parametrize("path", FOUNDATION, ids=lambda p: p.name)
def test_config_runs_on_a_manifest_shaped_like_it(path: Path, tmp_path: Path) -> None:
    cfg = load_config(str(path))
    reg = core_registry()
    urls = [f"https://example.invalid/{path.stem}/{i:05d}.jpg" for i in range(ROWS)]
    columns: dict[str, pa.Array] = {}
    if cfg.key:
        columns[cfg.key] = pa.array([f"{i:09d}" for i in range(ROWS)])
    # realistic neighbours, so the scan reads only what it needs
    columns["caption" if "img2dataset" in path.name else "TEXT"] = pa.array(["a synthetic caption"] * ROWS)
    planted: set[int] = set()
    rng = np.random.default_rng(5)
    specs: list[ListSpec] = []
    for li, spec in enumerate(cfg.lists):
        sig = reg.signal(spec.signal)
        col = cfg.columns.get(spec.signal, sig.default_column)
        rows = sorted(int(r) for r in rng.choice(ROWS, size=5, replace=False))
        planted |= set(rows)
        if spec.signal.startswith("url-"):
            columns[col] = pa.array(urls)
            digests = [hashlib.new(sig.algorithm, urls[r].encode()).hexdigest() for r in rows]
        else:
            values = hexes(rand_bytes(ROWS, sig.width, seed=li))
            columns[col] = pa.array(values)
            digests = [values[r] for r in rows]
        digests += hexes(rand_bytes(20, sig.width, seed=100 + li))
        lpath = tmp_path / "lists" / Path(spec.path).name
        lpath.parent.mkdir(exist_ok=True)
        _write_list(spec, lpath, digests)
        specs.append(replace(spec, path=str(lpath)))
    mdir = tmp_path / "manifest"
    mdir.mkdir()
    table = pa.table(columns)
    pq.write_table(table.slice(0, ROWS // 2), mdir / "00000.parquet", row_group_size=50)
    pq.write_table(table.slice(ROWS // 2), mdir / "00001.parquet", row_group_size=50)
    (mdir / "00000_stats.json").write_text("{}")  # what img2dataset writes beside shards

    run_cfg = ScanConfig(**{**vars(cfg), "manifests": [str(mdir)], "lists": specs,
                            "out": str(tmp_path / "out")})
    result = run_scan(run_cfg, registry=reg)
    assert result.summary["rows"]["scanned"] == ROWS
    assert result.summary["rows"]["excluded"] == len(planted)
    assert result.summary["rows"]["unverified"] == 0
    ex = pq.read_table(tmp_path / "out" / EXCLUSIONS)
    by_file = {(f.endswith("00001.parquet"), r) for f, r in zip(
        ex.column("source_file").to_pylist(), ex.column("row_index").to_pylist(), strict=True)}
    assert {(r >= ROWS // 2, r - (ROWS // 2 if r >= ROWS // 2 else 0)) for r in planted} == by_file
    for spec in specs:
        lid = f"{spec.partner}/{spec.name}@{spec.version}"
        assert result.summary["lists"][lid]["rows"] == 5, lid
    if cfg.write_clean:
        assert sum(c["rows"] for c in result.run["outputs"]["clean"]) == ROWS - len(planted)


@pytest.mark.parametrize("path", FOUNDATION, ids=lambda p: p.name)
def test_a_config_takes_other_lists_and_flags_from_the_command_line(cli, path: Path,
                                                                    tmp_path: Path) -> None:
    """The shipped configs spell out [columns] for their own lists; replacing the lists
    with --list must not turn those entries into an error (they used to fail with
    "--column names signal(s) with no list"), and --no-write-clean undoes the config's
    write_clean. A --column for a signal with no list is still refused."""
    md5 = hexes(rand_bytes(ROWS, 16, seed=3))
    cfg = load_config(str(path))
    key = cfg.key or "key"
    m = tmp_path / "m.parquet"
    pq.write_table(pa.table({key: [f"{i:09d}" for i in range(ROWS)],
                             cfg.columns.get("md5", "md5"): md5}), m)
    lst = tmp_path / "l.txt"
    lst.write_text("\n".join(md5[:4]) + "\n")
    out = tmp_path / "out"
    args = ("scan", "--config", path, "--manifest", m, "--list", f"md5={lst}", "--out", out, "-q")
    cli(*args, "--no-write-clean")
    run = json.loads((out / "run.json").read_text())
    assert run["outputs"]["clean"] == [] and not (out / "clean").exists()
    assert json.loads((out / "summary.json").read_text())["rows"]["excluded"] == 4
    res = cli(*args, "--column", "sha1=digest", ok=False)
    assert res.exit_code == 2 and "--column names signal(s) with no list: sha1" in res.output


def _options_config(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "opts.toml"
    cfg.write_text(body)
    return cfg


@pytest.mark.parametrize(("body", "message"), [
    ('[scan.options.url-sha256]\nnormalisation = "none"\n',
     "[scan.options.url-sha256]: unknown option 'normalisation'; known: normalization, precomputed"),
    ('[scan.options.url-sha265]\nnormalization = "none"\n',
     "[scan.options]: 'url-sha265' is not a signal or service"),
    ('[scan.options.url-sha256]\nprecomputed = "yes"\n',
     "[scan.options.url-sha256]: precomputed must be a bool"),
    ('[scan.options.url-sha256]\nnormalization = "strict"\n', "unknown url normalisation 'strict'"),
    ('[scan.options.md5]\nlowercase = true\n', "[scan.options.md5]: unknown option 'lowercase'; known: none"),
])
def test_options_are_checked(cli, synth: dict[str, Any], tmp_path: Path, body: str,
                             message: str) -> None:
    """A misspelt option was ignored, and the scan ran another way than the config said."""
    res = cli("scan", "--config", _options_config(tmp_path, body), "--manifest", synth["manifest"],
              "--list", f"md5={synth['lists']['md5']}", "--out", tmp_path / "out", ok=False)
    assert res.exit_code == 2 and message in res.output, res.output


def test_options_are_part_of_what_a_run_is(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    """Two URL normalisations give different results: run.json records the option (when
    not the default), the run id differs, and --resume refuses to continue a run made
    with the other one."""
    runs = {}
    for mode in ("basic", "none"):
        cfg = _options_config(tmp_path, f'[scan.options.url-sha256]\nnormalization = "{mode}"\n')
        out = tmp_path / mode
        cli("scan", "--config", cfg, "--manifest", synth["manifest"], "--list",
            synth["lists"]["url-sha256"], "--out", out, "-q")
        runs[mode] = json.loads((out / "run.json").read_text())
    # "basic" is the default: recorded as no option (see test_determinism.py)
    assert "options" not in runs["basic"]["config"] and "options" not in runs["basic"]["signals"][0]
    assert runs["none"]["config"]["options"] == {"url-sha256": {"normalization": "none"}}
    assert runs["none"]["signals"][0]["options"] == {"normalization": "none"}
    assert runs["basic"]["run_id"] != runs["none"]["run_id"]
    # a run of the default options records none: its id is what it was before options were kept
    out = tmp_path / "plain"
    cli("scan", "--manifest", synth["manifest"], "--list", synth["lists"]["url-sha256"], "--out",
        out, "-q")
    plain = json.loads((out / "run.json").read_text())
    assert "options" not in plain["config"]
    # an empty options table says nothing, and does not change the id
    cfg = _options_config(tmp_path, "[scan.options.url-sha256]\n")
    cli("scan", "--config", cfg, "--manifest", synth["manifest"], "--list",
        synth["lists"]["url-sha256"], "--out", out, "-q")
    assert json.loads((out / "run.json").read_text())["run_id"] == plain["run_id"]


@pytest.mark.parametrize(("body", "message"), [
    # TOML reads an unquoted date-time as one: the configuration could not be written to JSON
    ('version = 2026-11-01T06:00:00Z\n',
     "[[lists]] #1: version must be a string, not a date-time (quote it)"),
    ('retrieved_at = 2026-11-01T06:00:00Z\n',
     "[[lists]] #1: retrieved_at must be a string, not a date-time (quote it)"),
    ('partner = 3\n', "[[lists]] #1: partner must be a string, not an integer"),
    ('options = 5\n', "[[lists]] #1: options must be a table, not an integer"),
    ('threshold = true\n', "[[lists]] #1: threshold must be a non-negative integer"),
])
def test_list_settings_of_another_type_are_one_line_errors(cli, synth: dict[str, Any], tmp_path: Path,
                                                           body: str, message: str) -> None:
    cfg = _options_config(tmp_path, f'[[lists]]\npath = "{synth["lists"]["md5"]}"\nsignal = "md5"\n'
                                    + body)
    res = cli("scan", "--config", cfg, "--manifest", synth["manifest"], "--out", tmp_path / "out",
              ok=False)
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "out" / "run.json").exists()


def test_a_sidecar_date_time_is_a_one_line_error(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    listfile = tmp_path / "l.txt"
    listfile.write_text(Path(synth["lists"]["md5"]).read_text())
    Path(f"{listfile}.meta.toml").write_text('version = "1"\nretrieved_at = 2026-11-01T06:00:00Z\n')
    for args in (("lists", "inspect", "--json", f"md5={listfile}"),
                 ("scan", "--manifest", synth["manifest"], "--list", f"md5={listfile}",
                  "--out", tmp_path / "out")):
        res = cli(*args, ok=False)
        assert res.exit_code == 2 and "retrieved_at must be a string, not a date-time" in res.output


@pytest.mark.parametrize(("given", "version"), [("3", "3"), ("2026-11-01", "2026-11-01")])
def test_an_integer_or_date_version_is_text(cli, synth: dict[str, Any], tmp_path: Path, given: str,
                                            version: str) -> None:
    """An unquoted date version was a traceback in a config (a sidecar's was read as text)."""
    cfg = _options_config(tmp_path, f'[[lists]]\npath = "{synth["lists"]["md5"]}"\nsignal = "md5"\n'
                                    f'version = {given}\n')
    cli("scan", "--config", cfg, "--manifest", synth["manifest"], "--out", tmp_path / "out", "-q")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["lists"][0]["version"] == version
    listfile = tmp_path / "l.txt"
    listfile.write_text(Path(synth["lists"]["md5"]).read_text())
    Path(f"{listfile}.meta.toml").write_text(f'version = {given}\n')
    res = cli("lists", "inspect", "--json", f"md5={listfile}")
    assert json.loads(res.output)[0]["version"] == version


@pytest.mark.parametrize("key", ["services", "reporters", "compute", "webdataset"])
def test_scan_name_lists_hold_strings(cli, synth: dict[str, Any], tmp_path: Path, key: str) -> None:
    """compute = [1] was a traceback; webdataset = [1] was accepted without a word."""
    cfg = _options_config(tmp_path, f"[scan]\n{key} = [1]\n")
    res = cli("scan", "--config", cfg, "--manifest", synth["manifest"], "--list",
              f"md5={synth['lists']['md5']}", "--out", tmp_path / "out", ok=False)
    assert res.exit_code == 2 and f"scan.{key} must be a list of strings" in res.output, res.output


@pytest.mark.parametrize("raw", [b'[scan]\nout = "caf\xe9"\n', "[scan]\n".encode("utf-16")],
                         ids=["latin-1", "utf-16"])
def test_a_config_or_sidecar_that_is_not_utf8_is_a_one_line_error(cli, synth: dict[str, Any],
                                                                  tmp_path: Path, raw: bytes) -> None:
    """Both were a UnicodeDecodeError traceback (exit 1)."""
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(raw)
    res = cli("scan", "--config", cfg, ok=False)
    assert res.exit_code == 2 and "c.toml: not valid TOML: not UTF-8 text" in res.output, res.output
    listfile = tmp_path / "l.txt"
    listfile.write_text(Path(synth["lists"]["md5"]).read_text())
    Path(f"{listfile}.meta.toml").write_bytes(raw)
    res = cli("lists", "inspect", f"md5={listfile}", ok=False)
    assert res.exit_code == 2 and "l.txt.meta.toml: cannot read list metadata" in res.output, res.output


@pytest.mark.parametrize("where", ["command line", "config"])
def test_an_empty_manifest_path_is_refused(cli, synth: dict[str, Any], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """fsspec reads "" as the working directory: --manifest "$UNSET" scanned it, recursively,
    and run.json recorded the manifest as ''."""
    monkeypatch.chdir(synth["manifest"])
    args: list[Any] = ["--list", f"md5={synth['lists']['md5']}", "--out", tmp_path / "out"]
    if where == "config":
        args += ["--config", _options_config(tmp_path, '[scan]\nmanifest = ["", "."]\n')]
    else:
        args += ["--manifest", "", "--manifest", "."]
    res = cli("scan", *args, ok=False)
    assert res.exit_code == 2 and "a manifest path is empty" in res.output, res.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--image-column", "--image-path-column"])
@pytest.mark.parametrize("where", ["command line", "config"])
def test_an_empty_image_column_is_refused(cli, synth: dict[str, Any], tmp_path: Path,
                                          option: str, where: str) -> None:
    """--image-column "$UNSET" was dropped without a word: with --service, the service was
    sent the default 'image' column instead."""
    args: list[Any] = ["--manifest", synth["manifest"], "--list", f"md5={synth['lists']['md5']}",
                       "--out", tmp_path / "out"]
    key = option[2:].replace("-", "_")
    if where == "config":
        args += ["--config", _options_config(tmp_path, f'[scan]\n{key} = ""\n')]
    else:
        args += [option, ""]
    res = cli("scan", *args, ok=False)
    assert res.exit_code == 2, res.output
    assert f"{option} ({key} in the config) is empty; give a column name" in res.output
    assert not (tmp_path / "out").exists()


def test_a_quoted_tilde_is_the_home_directory(cli, synth: dict[str, Any], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``--manifest '~/...'``, ``--list md5='~/...'``, ``--out '~/...'`` (quoted, or after
    ``=``: the shell leaves the ``~``) and the same paths in a TOML config, itself named
    ``--config '~/...'``, are under HOME: before, the list was "not found" (exit 4) and
    ``--out`` made a directory named ``~`` in the working directory."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(synth["dir"], home / "synth")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    env = {"HOME": str(home)}
    cli("scan", "--manifest", "~/synth/manifest", "--list", "md5=~/synth/lists/md5.txt",
        "--out", "~/cli", "-q", env=env)
    (home / "scan.toml").write_text('[scan]\nmanifest = "~/synth/manifest"\nout = "~/toml"\n\n'
                                    '[[lists]]\npath = "~/synth/lists/md5.txt"\nsignal = "md5"\n')
    cli("scan", "--config", "~/scan.toml", "-q", env=env)
    assert not (work / "~").exists()
    for out in (home / "cli", home / "toml"):
        run = json.loads((out / "run.json").read_text())
        assert run["config"]["manifests"] == [str(home / "synth" / "manifest")]
        assert run["config"]["lists"][0]["path"] == str(home / "synth" / "lists" / "md5.txt")
        rows = json.loads((out / "summary.json").read_text())["rows"]
        assert rows["excluded"] == len(synth["planted_keys"]) and rows["scanned"] == synth["rows"]
