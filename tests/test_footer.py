"""Each input's footer is read once (manifest.read_footer) and serves the schema check,
the resume identity and the scan: the same metadata and identity as reading it the
usual ways, for small and large (over 64 KiB) footers, locally and on fsspec, and the
same one-line errors for files that are not parquet."""

from __future__ import annotations

import hashlib
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datahygiene.errors import InputError
from datahygiene.manifest import FOOTER_PROBE, LOCAL_FOOTER_PROBE, read_footer, resolve_manifests


def _footer_identity(data: bytes) -> tuple[int, str]:
    """Size and SHA-256 of the footer bytes with the 8-byte tail, computed here from
    the format: what ``--resume`` has always recorded."""
    flen = int.from_bytes(data[-8:-4], "little")
    return len(data), "sha256:" + hashlib.sha256(data[-(flen + 8):]).hexdigest()


def _table(rows: int) -> pa.Table:
    return pa.table({"key": [f"{i:09d}" for i in range(rows)],
                     "md5": [f"{i:032x}" for i in range(rows)],
                     "n": np.arange(rows)})


@pytest.mark.parametrize("row_group_size", [1000, 1], ids=["small-footer", "large-footer"])
def test_footer_read_once_is_the_usual_footer(tmp_path: Path, row_group_size: int) -> None:
    p = tmp_path / "m.parquet"
    pq.write_table(_table(1500), p, row_group_size=row_group_size)
    f = resolve_manifests([str(p)])[0]
    got = read_footer(f)
    want = pq.ParquetFile(p).metadata
    assert got.metadata.equals(want)
    assert got.metadata.schema.to_arrow_schema().equals(pq.ParquetFile(p).schema_arrow,
                                                        check_metadata=True)
    assert (got.size, got.digest) == _footer_identity(p.read_bytes())
    large = want.serialized_size > max(FOOTER_PROBE, LOCAL_FOOTER_PROBE)
    assert large == (row_group_size == 1)  # both paths are exercised


def test_footer_on_an_fsspec_filesystem(tmp_path: Path) -> None:
    p = tmp_path / "m.parquet"
    pq.write_table(_table(300), p, row_group_size=100)
    fs = fsspec.filesystem("memory")
    fs.pipe("/footer-test/m.parquet", p.read_bytes())
    f = resolve_manifests(["memory://footer-test/m.parquet"])[0]
    got = read_footer(f)
    assert got.metadata.equals(pq.ParquetFile(p).metadata)
    assert (got.size, got.digest) == _footer_identity(p.read_bytes())


@pytest.mark.parametrize("content", [b"", b"PAR1", b"not parquet at all" * 10,
                                     b"PAR1" + b"\x00" * 40 + (30).to_bytes(4, "little") + b"PAR1",
                                     b"PAR1" + (10**6).to_bytes(4, "little") + b"PAR1"],
                         ids=["empty", "magic-only", "text", "bad-footer", "length-beyond-file"])
def test_not_parquet_is_a_one_line_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.parquet"
    p.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_footer(resolve_manifests([str(p)])[0])
    msg = str(err.value)
    assert msg.startswith(f"{p}: ") and "\n" not in msg and "parquet" in msg
