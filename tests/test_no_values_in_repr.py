"""No object that holds list contents or says which rows matched shows them in its
repr: a repr reaches logs, tracebacks and test reports."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dhtest import core_registry, write_text_list

from datahygiene.config import ScanConfig
from datahygiene.engines.local import Task, run_task
from datahygiene.lists.spec import ListSpec
from datahygiene.manifest import resolve_manifests
from datahygiene.scan import build_plan, load_lists
from datahygiene.step import check_batch
from datahygiene.store import ListStore
from datahygiene.store import scan_index as si
from datahygiene.store.source import build_scan_index, hashlists_to_entries

pytestmark = pytest.mark.usefixtures("core_only")

# a value whose bytes are easy to spot however numpy or Arrow prints them
LISTED = bytes(range(0xA1, 0xB1))


def _traces(value: bytes) -> list[str]:
    return [value.hex(), value.hex().upper(), ", ".join(str(b) for b in value[:4]),
            " ".join(str(b) for b in value[:4]), base64.b64encode(value).decode()[:12]]


def _assert_clean(obj: object) -> None:
    text = repr(obj)
    for trace in _traces(LISTED):
        assert trace not in text, f"{type(obj).__name__} repr shows a list value"
    assert "secret-row" not in text, f"{type(obj).__name__} repr shows a matched row's key"


def test_reprs_show_no_list_value_and_no_matched_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listed = write_text_list(tmp_path / "l.txt", [LISTED.hex(), (b"\x01" * 16).hex()])
    pq.write_table(pa.table({"key": ["a", "secret-row"], "md5": [(b"\x02" * 16).hex(), LISTED.hex()]}),
                   tmp_path / "m.parquet")
    reg = core_registry()
    config = ScanConfig(manifests=[str(tmp_path / "m.parquet")],
                        lists=[ListSpec(path=str(listed), signal="md5")], out=str(tmp_path / "o"))
    (hl,) = load_lists(config, reg)
    plan = build_plan([hl], config, reg, "key")
    plan.setup()
    batch = pq.read_table(tmp_path / "m.parquet")
    result = check_batch(batch, plan, "m.parquet", 0)
    assert result.flagged.num_rows == 1  # the row did match: there is something to hide
    (f,) = resolve_manifests([str(tmp_path / "m.parquet")])
    task = run_task(Task(0, f, 0, 0, 2), plan, 1024, keep_clean=True)
    parsed = reg.signal("md5").parse_entries(pa.array([LISTED.hex()]))
    for obj in (hl, plan, result, task, parsed):
        _assert_clean(obj)

    monkeypatch.setenv("DH_REPR_KEY", base64.b64encode(os.urandom(32)).decode())
    store = ListStore.open(tmp_path / "store", create=True, key_ref={"env": "DH_REPR_KEY"})
    store.write_snapshot("p", hashlists_to_entries([hl]), {}, scan_index=build_scan_index(reg))
    _assert_clean(store.read_snapshot("p"))
    found = store.read_scan_index("p")
    assert found is not None
    _, parts = si.decode(found[1])
    _assert_clean(parts["md5"])
