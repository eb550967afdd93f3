"""The built-in plugins pass the conformance kit their authors' plugins must pass:
signal types, the ``file`` and ``store`` list sources over every list format, and the
``summary`` and ``cybertipline`` reporters over a real scan's run."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import core_registry, hexes, rand_bytes

from datahygiene.lists.files import load_list_file
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import discover
from datahygiene.store import ListStore
from datahygiene.store.source import build_scan_index, hashlists_to_entries
from datahygiene.testing import (
    ReporterInputs,
    check_list_source,
    check_reporter,
    check_signal_type,
    make_reporter_inputs,
)


@pytest.mark.parametrize("name", ["md5", "sha1", "sha256", "url-md5", "url-sha1", "url-sha256"])
def test_builtin_signals_conform(name: str) -> None:
    check_signal_type(discover().get("signals", name).obj)


def test_every_builtin_source_and_reporter_is_checked_here() -> None:
    """A built-in added later gets its conformance test, or this fails."""
    reg = core_registry()
    assert reg.names("sources") == ["file", "store"]
    assert reg.names("reporters") == ["cybertipline", "summary"]


# -- the file source: one fixture per list format --------------------------------------------


def _text(d: Path) -> ListSpec:
    """A text list: upper case, blank lines, a comment, duplicates; metadata in a sidecar."""
    v = hexes(rand_bytes(12, 16, seed=1))
    (d / "l.txt").write_text("# synthetic placeholder\n\n" + "\n".join([v[0].upper(), *v, v[3]]) + "\n")
    (d / "l.txt.meta.toml").write_text(
        'partner = "synthetic"\nname = "text-md5"\nversion = "3"\nsignal = "md5"\n'
    )
    return ListSpec(path=str(d / "l.txt"))


def _text_skipping_bad_entries(d: Path) -> ListSpec:
    v = hexes(rand_bytes(8, 20, seed=2))
    (d / "l.txt").write_text("\n".join([*v[:4], "not-a-digest", *v[4:], "ab" * 3]) + "\n")
    return ListSpec(path=str(d / "l.txt"), signal="sha1", on_bad_entry="skip", version="2026-01")


def _csv_ids_and_categories(d: Path) -> ListSpec:
    v = hexes(rand_bytes(10, 32, seed=3))
    (d / "l.csv").write_text(
        "id,hash,category\n" + "".join(f"E-{i:04d},{h},A{i % 2}\n" for i, h in enumerate(v))
    )
    return ListSpec(path=str(d / "l.csv"), signal="sha256", partner="synthetic", name="csv")


def _tsv_some_ids_missing(d: Path) -> ListSpec:
    v = hexes(rand_bytes(6, 16, seed=4))
    rows = "".join(f"{h}\t{'P' + str(i) if i % 2 else ''}\n" for i, h in enumerate(v))
    (d / "l.tsv").write_text("md5\tentry_id\n" + rows)
    return ListSpec(path=str(d / "l.tsv"), signal="md5")


def _jsonl_two_signals(d: Path) -> ListSpec:
    lines = [
        {"signal": "md5", "hash": h, "id": f"m{i}"} for i, h in enumerate(hexes(rand_bytes(5, 16, seed=5)))
    ]
    lines += [
        {"signal": "SHA1 ", "hash": h, "id": f"s{i}"} for i, h in enumerate(hexes(rand_bytes(5, 20, seed=6)))
    ]
    (d / "l.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return ListSpec(path=str(d / "l.jsonl"), partner="synthetic", name="jsonl")


def _parquet_binary(d: Path) -> ListSpec:
    values = [bytes(r) for r in rand_bytes(9, 16, seed=7)]
    pq.write_table(
        pa.table({"hash": pa.array(values, pa.binary(16)), "id": [f"q{i}" for i in range(9)]}),
        d / "l.parquet",
    )
    return ListSpec(path=str(d / "l.parquet"), signal="md5")


def _url_digests(d: Path) -> ListSpec:
    v = hexes(rand_bytes(7, 20, seed=8))
    (d / "u.txt").write_text("\n".join(v) + "\n")
    return ListSpec(path=str(d / "u.txt"), signal="url-sha1")


FILE_FIXTURES: list[Callable[[Path], ListSpec]] = [
    _text,
    _text_skipping_bad_entries,
    _csv_ids_and_categories,
    _tsv_some_ids_missing,
    _jsonl_two_signals,
    _parquet_binary,
    _url_digests,
]


@pytest.mark.parametrize("fixture", FILE_FIXTURES, ids=lambda f: f.__name__.strip("_"))
def test_file_source_conforms(fixture: Callable[[Path], ListSpec], tmp_path: Path) -> None:
    reg = core_registry()
    lists = check_list_source(reg.get("sources", "file").obj, fixture(tmp_path), reg)
    if fixture is _jsonl_two_signals:
        assert [hl.signal for hl in lists] == ["md5", "sha1"]


@pytest.mark.parametrize("scan_index", [True, False], ids=["scan-index", "snapshot"])
def test_store_source_conforms(scan_index: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot imported into the store, loaded from its scan index or, without one,
    from the snapshot itself."""
    monkeypatch.setenv("DH_CONFORMANCE_STORE_KEY", base64.b64encode(os.urandom(32)).decode())
    reg = core_registry()
    spec = _csv_ids_and_categories(tmp_path)
    store = ListStore.open(tmp_path / "store", create=True, key_ref={"env": "DH_CONFORMANCE_STORE_KEY"})
    store.write_snapshot(
        "placeholder",
        hashlists_to_entries(load_list_file(spec, reg)),
        {"partner": "synthetic"},
        scan_index=build_scan_index(reg) if scan_index else None,
    )
    assert (store.read_scan_index("placeholder", None) is not None) == scan_index
    lists = check_list_source(
        reg.get("sources", "store").obj,
        ListSpec(path="placeholder", source="store", options={"store": str(tmp_path / "store")}),
        reg,
    )
    assert [(hl.id, len(hl)) for hl in lists] == [("synthetic/placeholder@1", 10)]


# -- reporters: a real scan's run --------------------------------------------------------------


@pytest.fixture(scope="module")
def reporter_inputs(tmp_path_factory: pytest.TempPathFactory) -> ReporterInputs:
    return make_reporter_inputs(tmp_path_factory.mktemp("reporter-inputs"))


@pytest.mark.parametrize("name", ["summary", "cybertipline"])
def test_builtin_reporters_conform(name: str, reporter_inputs: ReporterInputs) -> None:
    written = check_reporter(core_registry().get("reporters", name).obj, reporter_inputs)
    assert [str(p) for p in written] == {
        "summary": ["summary.md"],
        "cybertipline": ["cybertipline-stub.xml", "cybertipline-stub.json"],
    }[name]
