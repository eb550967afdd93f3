"""Plain-text lists are read a block at a time (datahygiene/lists/text.py): lines cut
by a block's end, long lines, and a file that changes while it is read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import datahygiene.lists.text as text
from datahygiene.errors import ListError
from datahygiene.lists.files import load_list_file
from datahygiene.lists.model import HashList
from datahygiene.lists.spec import ListSpec
from datahygiene.plugins import default_registry
from datahygiene.signals.exact import MD5


def _digest(i: int) -> str:
    return hashlib.sha256(f"synthetic-{i}".encode()).hexdigest()[:32]


def _load(path: Path, threads: int = 2) -> HashList:
    [hl] = load_list_file(ListSpec(path=str(path), signal="md5"), default_registry(), threads=threads)
    return hl


def _fast_path_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    taken: list[bool] = []
    real = text._parse_hex_text

    def spy(*args: Any) -> Any:
        out = real(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(text, "_parse_hex_text", spy)
    return taken


@pytest.mark.parametrize("block", [40, 97, 1000])
@pytest.mark.parametrize("threads", [1, 3])
def test_blocks_cutting_lines_read_as_the_general_parser_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, threads: int) -> None:
    lines = []
    for i in range(3000):
        h = _digest(i % 2500)  # some entries repeat earlier ones
        lines.append([h, h.upper(), f"  {h}\t", f"{h}  # note", "", "# comment", f"{h}\r"][i % 7])
    path = tmp_path / "l.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())  # a BOM, no final newline
    with monkeypatch.context() as m:
        m.setattr(MD5, "hex_entries", False)
        general = _load(path, threads)
    monkeypatch.setattr(text, "READ_BLOCK", block)
    monkeypatch.setattr(text, "CHUNK_BYTES", 4096)  # several pieces, read by several threads
    taken = _fast_path_taken(monkeypatch)
    fast = _load(path, threads)
    assert taken == [True]
    assert fast.fingerprint == general.fingerprint
    assert np.array_equal(fast.values, general.values)
    assert fast.refs.equals(general.refs)  # the same line numbers
    assert fast.stats == general.stats and fast.stats["duplicates"] > 0


def test_a_line_longer_than_a_block_goes_to_the_general_parser(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "l.txt"
    path.write_text(f"{_digest(1)}\n# {'x' * 500}\n{_digest(2)}\n")
    monkeypatch.setattr(text, "READ_BLOCK", 64)
    taken = _fast_path_taken(monkeypatch)
    hl = _load(path)
    assert taken == [False]
    assert len(hl) == 2 and hl.ref_strings(np.arange(2)).to_pylist() == ["line:1", "line:3"]


def _changing(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    """The file is changed by ``change(path)`` just before the reads of its entries
    (the first two reads look for line ends and a byte-order mark)."""
    real = text._TextFile.read_into
    calls: list[int] = []

    def read_into(self: Any, buf: memoryview, offset: int) -> None:
        calls.append(offset)
        if len(calls) == 3:
            change(self.path)
        real(self, buf, offset)

    monkeypatch.setattr(text._TextFile, "read_into", read_into)


def _shorten(path: Path) -> None:
    os.truncate(path, 40)


def _rewrite(path: Path) -> None:  # the same size, other entries, written in place
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.write(_digest(99).encode())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.mark.parametrize("change", [_shorten, _rewrite], ids=["cut-short", "rewritten"])
@pytest.mark.parametrize("fast", [True, False], ids=["hex-path", "general-parser"])
def test_a_list_changed_while_it_is_read_is_an_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any, fast: bool) -> None:
    path = tmp_path / "l.txt"
    path.write_text("".join(f"{_digest(i)}\n" for i in range(200)))
    monkeypatch.setattr(text, "READ_BLOCK", 1000)
    if not fast:
        monkeypatch.setattr(MD5, "hex_entries", False)
    _changing(monkeypatch, change)
    with pytest.raises(ListError) as err:
        _load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: the file changed while it was read")
    assert "\n" not in message and _digest(1) not in message and _digest(99) not in message
