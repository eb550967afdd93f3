"""``lists inspect``, ``synth``, ``demo`` and the CLI's general behaviour."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from dhtest import hexes, rand_bytes, write_text_list

from datahygiene import __version__

pytestmark = pytest.mark.usefixtures("core_only")


def list_values(path: Path) -> list[str]:
    return [ln.split("#")[0].strip() for ln in path.read_text().splitlines()
            if ln.split("#")[0].strip()]


def assert_no_value(output: str, values: list[str]) -> None:
    low = output.lower()
    leaked = [v for v in values if v.lower() in low or v.lower()[:16] in low]
    assert not leaked, f"{len(leaked)} list value(s) printed"


def test_lists_inspect_text_list(cli, synth: dict[str, Any]) -> None:
    path = Path(synth["lists"]["md5"])
    res = cli("lists", "inspect", path)
    fields = dict(line.split(None, 1) for line in res.output.splitlines() if line.strip())
    assert fields["list"] == "synthetic/placeholder-md5@1"
    assert fields["signal"] == "md5"
    assert fields["entries"].startswith("400 unique")
    assert fields["fingerprint"].startswith("sha256:")
    assert fields["problems"] == "none"
    assert_no_value(res.output, list_values(path))
    data = json.loads(cli("lists", "inspect", path, "--json").output)
    assert data[0]["entries"] == 400 and data[0]["fingerprint"] == fields["fingerprint"]
    assert_no_value(json.dumps(data), list_values(path))


def test_lists_inspect_csv_with_two_signals_and_problems(cli, tmp_path: Path) -> None:
    md5 = hexes(rand_bytes(6, 16, seed=60))
    sha = hexes(rand_bytes(4, 32, seed=61))
    bad = "feedface" * 3  # 24 hex characters: wrong length for both
    p = tmp_path / "mixed.csv"
    p.write_text("id,signal,hash,category\n"
                 + "".join(f"M{i},md5,{v},A\n" for i, v in enumerate(md5))
                 + "".join(f"S{i},sha256,{v},B\n" for i, v in enumerate(sha))
                 + f"X1,md5,{bad},A\n" + f"X2,md5,{md5[0].upper()},A\n")
    res = cli("lists", "inspect", p, ok=False)
    assert res.exit_code == 4, "bad entries make inspect exit 4"
    out = res.output
    assert "md5" in out and "sha256" in out
    assert "6 unique" in out and "4 unique" in out
    assert "1 (counted once)" in out  # the upper-case duplicate
    assert "1 bad entry (wrong-length 1); first at line(s) 12" in out
    assert_no_value(out, [*md5, *sha, bad])


def test_lists_inspect_missing_file(cli, tmp_path: Path) -> None:
    res = cli("lists", "inspect", f"md5={tmp_path / 'x.txt'}", ok=False)
    assert res.exit_code == 4 and "not found" in res.stderr


def test_lists_inspect_parquet_binary(cli, tmp_path: Path) -> None:
    import pyarrow as pa

    raw = rand_bytes(5, 20, seed=62)
    p = tmp_path / "l.parquet"
    pq.write_table(pa.table({"hash": pa.array([bytes(r) for r in raw], pa.binary(20))}), p)
    res = cli("lists", "inspect", f"sha1={p}")
    assert "5 unique" in res.output
    assert_no_value(res.output, hexes(raw))


def test_synth_command(cli, tmp_path: Path) -> None:
    out = tmp_path / "s"
    res = cli("synth", "--out", out, "--rows", "1000", "--files", "2", "--list-size", "50",
              "--planted", "6", "--malformed", "3", "--binary", "--sha256", "--url-list",
              "--row-group-size", "200", "--seed", "4")
    assert "1,000 rows in 2 file(s)" in res.output
    truth = json.loads((out / "planted.json").read_text())
    assert len(truth["planted_keys"]) == 6 and len(truth["malformed_keys"]) == 3
    files = sorted((out / "manifest").glob("*.parquet"))
    assert len(files) == 2
    t = pq.read_table(out / "manifest")
    assert t.num_rows == 1000
    assert set(t.column_names) == {"key", "url", "caption", "md5", "sha256"}
    assert str(t.schema.field("md5").type) == "fixed_size_binary[16]"
    assert all(u.startswith("https://example.invalid/") for u in t.column("url").to_pylist())
    assert pq.ParquetFile(files[0]).metadata.num_row_groups == 3
    # the planted rows are really in the list, the malformed ones really null
    lst = {bytes.fromhex(v) for v in list_values(out / "lists" / "md5.txt")}
    assert len(lst) == 50
    rows = dict(zip(t.column("key").to_pylist(), t.column("md5").to_pylist(), strict=True))
    assert all(rows[k] in lst for k in truth["planted_keys"])
    assert all(rows[k] is None for k in truth["malformed_keys"])
    assert sum(v in lst for v in rows.values() if v is not None) == 6
    # same seed, same data
    cli("synth", "--out", tmp_path / "s2", "--rows", "1000", "--files", "2", "--list-size", "50",
        "--planted", "6", "--malformed", "3", "--binary", "--sha256", "--url-list",
        "--row-group-size", "200", "--seed", "4")
    assert (tmp_path / "s2" / "lists" / "md5.txt").read_bytes() == (out / "lists" / "md5.txt").read_bytes()


def test_synth_zero_rows(cli, tmp_path: Path) -> None:
    cli("synth", "--out", tmp_path / "z", "--rows", "0", "--files", "1")
    assert pq.read_table(tmp_path / "z" / "manifest").num_rows == 0


def test_synth_refuses_more_planted_than_list_size(cli, tmp_path: Path) -> None:
    """--planted above --list-size grew the list past --list-size without a word."""
    out = tmp_path / "p"
    res = cli("synth", "--out", out, "--rows", "100", "--list-size", "5", "--planted", "20",
              ok=False)
    assert res.exit_code == 2, res.output
    assert "--planted (20) is larger than --list-size (5)" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()
    # what --rows leaves of --planted is what the list must hold: this one fits
    cli("synth", "--out", out, "--rows", "5", "--list-size", "5", "--planted", "20")
    assert len(list_values(out / "lists" / "md5.txt")) == 5


def test_demo(cli, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = cli("demo", "--out", out, "--rows", "3000", "-q")
    assert "ok: all 40 planted rows excluded, 7 rows with a null md5 unverified" in res.output
    assert (out / "run" / "run.json").exists() and (out / "run" / "clean").is_dir()
    # running it again over the same directory works (inputs regenerated, run replaced)
    cli("demo", "--out", out, "--rows", "3000", "-q")


@pytest.mark.parametrize("held", ["a user's file", "a user's directory"])
def test_demo_never_deletes_an_input_directory_it_did_not_write(cli, tmp_path: Path,
                                                                 held: str) -> None:
    """``demo --out .`` in a project holding its own ./input: refused, nothing deleted."""
    mine = tmp_path / "input" / ("notes.txt" if held == "a user's file" else "data")
    if held == "a user's file":
        mine.parent.mkdir()
        mine.write_text("keep me")
    else:
        mine.mkdir(parents=True)
    res = cli("demo", "--out", tmp_path, "--rows", "3000", "-q", ok=False)
    assert res.exit_code == 2
    assert "is not an earlier demo's input" in res.output
    assert mine.exists() and not (tmp_path / "run").exists()


def test_version_and_help(cli) -> None:
    assert __version__ in cli("--version").output
    out = cli("--help").output
    for cmd in ("scan", "lists", "plugins", "synth", "demo"):
        assert cmd in out
    # a plain-text list needs its signal: the first command shown must run on one
    assert "datahygiene lists inspect md5=LISTFILE" in out
    assert "--manifest" in cli("scan", "--help").output
    assert "--key COLUMN" in cli("scan", "--help").output  # as the curator's guide names it, not TEXT


def test_the_command_table_names_every_command_and_its_modules_register_only_those() -> None:
    """`datahygiene --help` lists the commands from cli.COMMANDS without importing
    them: the table must name each command the modules register, and each line must fit
    an 80-column terminal beside the longest name."""
    import click

    from datahygiene.cli import COMMANDS, load_commands

    for name, (modules, line) in COMMANDS.items():
        group = click.Group()
        for module in modules:
            __import__(module, fromlist=["register"]).register(group)
        assert name in group.commands, (name, modules)
        assert set(group.commands) <= set(COMMANDS), (name, sorted(group.commands))
        assert len(line) <= 80 - 2 - max(map(len, COMMANDS)) - 2, (name, line)
    root = click.Group()
    load_commands(root)
    assert set(root.commands) == set(COMMANDS)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["nosuchcommand"],
                                  *([c, "--help"] for c in ("scan", "verify", "synth", "hash", "demo",
                                                            "keys", "plugins", "lists", "log")),
                                  ["lists", "inspect", "--help"], ["lists", "import", "--help"]])
def test_help_imports_nothing_a_scan_needs(args: list[str]) -> None:
    """The help of the command line and of its commands, the version and a mistyped
    command: a tenth of a second, not the second that importing pyarrow and numba
    takes."""
    import subprocess
    import sys

    code = ("import sys\nfrom click.testing import CliRunner\nfrom datahygiene.cli import cli\n"
            f"res = CliRunner().invoke(cli, {args!r})\n"
            "print(res.exit_code, sorted(m for m in ('numpy', 'pyarrow', 'numba', 'polars') "
            "if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    status, imported = res.stdout.strip().split(" ", 1)
    assert imported == "[]", (args, res.stdout)
    assert status == ("2" if args == ["nosuchcommand"] else "0"), res.stdout


def test_the_store_commands_name_the_stores_key_variable() -> None:
    """`lists import|sync --help` gives the store's default key variable without
    importing the store (numba, pyarrow): the two spellings must agree."""
    from datahygiene.commands import store as store_cmd
    from datahygiene.store import snapshots

    assert store_cmd.DEFAULT_KEY_ENV == snapshots.DEFAULT_KEY_ENV


def test_a_terminal_sees_a_spinner_until_the_scan_starts(monkeypatch: pytest.MonkeyPatch,
                                                        synth: dict[str, Any], tmp_path: Path) -> None:
    """Loading the lists and reading every input's footer come before the progress bar
    (a minute or more for hundreds of thousands of files): a terminal is told so, with
    the footers read so far, and the spinner gives way to the bar once the scan starts."""
    import io

    from rich.console import Console

    from datahygiene.commands import common
    from datahygiene.config import ScanConfig
    from datahygiene.lists.spec import ListSpec
    from datahygiene.scan import run_scan

    screen = io.StringIO()
    monkeypatch.setattr(common, "_stderr_console", lambda: Console(file=screen, force_terminal=True))
    monkeypatch.setattr(common, "interactive", lambda quiet: not quiet)
    seen: list[str] = []
    cfg = ScanConfig(manifests=[str(synth["manifest"])], lists=[ListSpec(path=synth["lists"]["md5"],
                     signal="md5")], out=str(tmp_path / "run"))
    with common.progress_bar(False) as bar:
        assert bar._status is not None  # shown before anything else happens

        def start(total: int, files: int) -> None:
            seen.append(screen.getvalue())
            seen.append(str(bar._spinner.text))
            bar.start(total, files)
            assert bar._status is None  # the bar replaces it

        run_scan(cfg, progress=bar.advance, on_start=start, on_footers=bar.footers)
    assert "loading lists and reading the inputs' footers" in seen[0]
    n = len(list(Path(synth["manifest"]).glob("*.parquet")))
    assert seen[1] == f"loading lists and reading the inputs' footers: {n} of {n} input(s)"
    assert bar._status is None and bar._bar is not None


def test_bad_list_option_is_a_usage_error(cli, small_manifest: dict[str, Any], tmp_path: Path) -> None:
    res = cli("scan", "--manifest", small_manifest["path"], "--list", f"md5={small_manifest['list']}",
              "--out", tmp_path / "o", "--column", "md5", ok=False)
    assert res.exit_code == 2 and "expected NAME=VALUE" in res.stderr


def test_plain_text_list_without_signal(cli, small_manifest: dict[str, Any], tmp_path: Path) -> None:
    lst = write_text_list(tmp_path / "nosig.txt", small_manifest["list_values"])
    res = cli("scan", "--manifest", small_manifest["path"], "--list", lst, "--out", tmp_path / "o",
              ok=False)
    assert res.exit_code == 4 and "needs its signal" in res.stderr


def test_synth_list_of_a_smaller_run_matches_nothing_of_a_larger_one(tmp_path: Path) -> None:
    """The same seed with another size must not make one run's placeholder list match
    the other run's rows: the list's filler entries come from their own random stream."""
    from datahygiene.synth import SynthSpec, write_synthetic

    small = write_synthetic(tmp_path / "small", SynthSpec(rows=3000, files=1, list_size=3000,
                                                          planted=5, malformed=0, seed=1,
                                                          url_list=True))
    write_synthetic(tmp_path / "large", SynthSpec(rows=60_000, files=1, list_size=10,
                                                  planted=5, malformed=0, seed=1))
    listed = {bytes.fromhex(v) for v in list_values(Path(small["lists"]["md5"]))}
    large = pq.read_table(tmp_path / "large" / "manifest")
    assert not listed & {bytes.fromhex(v) for v in large.column("md5").to_pylist()}
    # nor its URL list (URLs were the row number alone: 5 of 5 matched)
    listed_urls = {line.split(",")[1] for line in
                   Path(small["lists"]["url-sha256"]).read_text().splitlines()[1:]}
    assert not listed_urls & {hashlib.sha256(u.encode()).hexdigest()
                              for u in large.column("url").to_pylist()}


def test_rescan_with_another_list_version_is_noted(cli, synth: dict[str, Any], tmp_path: Path) -> None:
    """A rerun into the same OUT replaces its outputs; a list whose version differs from
    the previous run's (an older snapshot picked by mistake) is worth a line."""
    lst = Path(synth["lists"]["md5"])
    meta = lst.with_name(lst.name + ".meta.toml")
    out = tmp_path / "run"
    args = ["scan", "--manifest", synth["manifest"], "--list", f"md5={lst}", "--out", out, "-q"]
    res = cli(*args)
    assert "previous run in OUT" not in res.output
    res = cli(*args)  # same version: nothing to say
    assert "previous run in OUT" not in res.output
    meta.write_text(meta.read_text().replace('version = "1"', 'version = "0"'))
    res = cli(*args)
    assert ("note: list synthetic/placeholder-md5 (md5) is version 0; the previous run in OUT "
            "used version 1 (its outputs are replaced)") in res.output


@pytest.mark.parametrize("command", ["synth", "demo"])
def test_an_empty_out_is_refused(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 command: str) -> None:
    """--out "" (an unset shell variable) wrote into the working directory; synth said it wrote
    to //manifest."""
    monkeypatch.chdir(tmp_path)
    res = cli(command, "--out", "", "--rows", "10", ok=False)
    assert res.exit_code == 2 and "--out is empty" in res.output, res.output
    assert list(tmp_path.iterdir()) == []
