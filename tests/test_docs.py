"""Docs that cannot drift (the datasette pattern): every CLI command and option, every
scan config key and list setting must be mentioned somewhere in docs/, and docs/index.md
must link every page. Each test reports everything missing at once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import fields

import click
import pytest
from dhtest import REPO

from datahygiene.cli import cli, load_commands
from datahygiene.config import ScanConfig
from datahygiene.lists.spec import ListSpec

DOCS = REPO / "docs"
SKIP_OPTIONS = {"--help", "-h", "--version"}


@pytest.fixture(scope="module")
def docs_text() -> str:
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ holds no pages"
    return "\n".join(p.read_text() for p in pages)


def walk(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    if cmd is cli:
        load_commands(cli)  # the command line imports a command's module when it is used
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from walk(cmd.commands[name], (*path, name))


def test_every_command_is_documented(docs_text: str) -> None:
    missing = [" ".join(("datahygiene", *path)) for path, _ in walk(cli)
               if path and f"datahygiene {' '.join(path)}" not in docs_text]
    assert not missing, "commands not mentioned in docs/ (as 'datahygiene CMD'): " + ", ".join(missing)


def test_every_option_is_documented(docs_text: str) -> None:
    missing = []
    for path, cmd in walk(cli):
        for param in cmd.params:
            if not isinstance(param, click.Option):
                continue
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--") and opt not in SKIP_OPTIONS and \
                        not re.search(re.escape(opt) + r"(?![\w-])", docs_text):
                    missing.append(f"{' '.join(('datahygiene', *path))} {opt}")
    assert not missing, "options not mentioned in docs/: " + ", ".join(missing)


def _key_documented(name: str, text: str) -> bool:
    return bool(re.search(rf"`{re.escape(name)}`|^\s*#?\s*{re.escape(name)} =|\[{re.escape(name)}\]",
                          text, re.M))


def test_every_config_key_is_documented(docs_text: str) -> None:
    scan_keys = {f.name for f in fields(ScanConfig)} - {"file_columns"} | {"manifest"}  # internal
    list_keys = {f.name for f in fields(ListSpec)} - {"explicit"}  # internal bookkeeping
    missing = [f"[scan] {k}" for k in sorted(scan_keys) if not _key_documented(k, docs_text)]
    missing += [f"[[lists]] {k}" for k in sorted(list_keys) if not _key_documented(k, docs_text)]
    assert not missing, "config keys not mentioned in docs/ (as `key` or 'key ='): " + ", ".join(missing)


def test_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    linked = set(re.findall(r"\]\(([\w./-]+?\.md)(?:#[\w-]*)?\)", index))
    missing = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md" and p.name not in linked)
    assert not missing, "pages not linked from docs/index.md: " + ", ".join(missing)


def test_internal_anchors_exist() -> None:
    """Links of the form page.md#anchor point at a heading that exists."""
    broken = []
    for page in DOCS.glob("*.md"):
        for target, anchor in re.findall(r"\]\(([\w./-]+\.md)#([\w-]+)\)", page.read_text()):
            dest = DOCS / target
            if not dest.exists():
                continue  # pages other developers are still writing
            headings = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                        for h in re.findall(r"^#+\s+(.*)$", dest.read_text(), re.M)}
            if anchor not in headings:
                broken.append(f"{page.name} -> {target}#{anchor}")
    assert not broken, "links to missing headings: " + ", ".join(broken)


def test_exit_codes_table_matches_errors_module() -> None:
    from datahygiene import errors

    text = (DOCS / "curator.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| ([^|]+)\|", text, re.M))
    codes = {cls.exit_code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.DatahygieneError)}
    documented = {int(c) for c in table}
    assert codes <= documented, f"exit codes missing from docs/curator.md: {sorted(codes - documented)}"


def test_curators_example_config_loads_and_validates(tmp_path) -> None:
    """The guide's [scan] listing is a config a curator copies: it set ray_address with
    engine = "local", which the scan refuses (exit 2)."""
    from datahygiene.config import load_config

    text = (DOCS / "curator.md").read_text()
    block = re.search(r"^### Config file\n+```toml\n(.*?)^```", text, re.M | re.S)
    assert block, "docs/curator.md has no ```toml block under '### Config file'"
    path = tmp_path / "example.toml"
    path.write_text(block.group(1))
    cfg = load_config(str(path))
    cfg.validate()
    assert cfg.manifests and cfg.lists and cfg.out
