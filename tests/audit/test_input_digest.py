"""The input digest (coverage evidence): SHA-256 by default, BLAKE3 on request, and
run.json records of format 1 (``inputs[].sha256``) still verified."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import blake3
import pyarrow.parquet as pq
import pytest
from dhtest import Cli

from datahygiene.audit.keys import init_keys
from datahygiene.synth import SynthSpec, write_synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("digest")
    truth = write_synthetic(base / "in", SynthSpec(rows=900, files=3, list_size=100, planted=4,
                                                   row_group_size=300, seed=5))
    init_keys(base / "keys", "example.invalid/digest-test")
    return {"base": base, "manifest": base / "in" / "manifest", "list": truth["lists"]["md5"],
            "keys": base / "keys"}


def scan(cli: Cli, data: dict[str, Any], out: Path, *extra: str) -> dict[str, Any]:
    cli("scan", "--manifest", data["manifest"], "--list", f"md5={data['list']}", "--out", out,
        "--keys", data["keys"], "-q", *extra)
    return dict(json.loads((out / "run.json").read_text()))


def test_default_is_sha256_of_the_file(cli: Cli, data: dict[str, Any], tmp_path: Path) -> None:
    run = scan(cli, data, tmp_path / "run")
    assert run["format"] == "datahygiene-run/2" and run["config"]["input_digest"] == "sha256"
    for i in run["inputs"]:
        assert i["digest"] == "sha256:" + hashlib.sha256(Path(i["path"]).read_bytes()).hexdigest()
        assert "sha256" not in i


def test_blake3_recorded_attested_and_verified(cli: Cli, data: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = scan(cli, data, out, "--input-digest", "blake3")
    assert run["config"]["input_digest"] == "blake3"
    want = {i["path"]: blake3.blake3(Path(i["path"]).read_bytes()).hexdigest() for i in run["inputs"]}
    assert {i["path"]: i["digest"] for i in run["inputs"]} == {p: f"blake3:{h}" for p, h in want.items()}
    stmt = json.loads(__import__("base64").b64decode(
        json.loads((out / "public" / "attestation.dsse.json").read_text())["payload"]))
    attested = {s["name"]: s["digest"] for s in stmt["subject"]
                if s["annotations"]["role"] == "input"}
    assert attested == {p: {"blake3": h} for p, h in want.items()}
    card = json.loads((out / "public" / "croissant-rai.json").read_text())
    assert {o["name"]: o["prov:value"] for o in card["prov:wasDerivedFrom"]} == {
        p: f"blake3:{h}" for p, h in want.items()}
    res = cli("verify", out)
    assert res.exit_code == 0, res.output
    assert "PASS  coverage: 3 input file(s)" in res.output and "PASS  attestation" in res.output


def test_blake3_input_changed_fails_coverage(cli: Cli, data: dict[str, Any], tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    shutil.copytree(data["manifest"], inputs)
    out = tmp_path / "run"
    scan(cli, {**data, "manifest": inputs}, out, "--input-digest", "blake3")
    f = sorted(inputs.glob("*.parquet"))[0]
    pq.write_table(pq.read_table(f), f, compression="gzip")  # same rows, other bytes
    res = cli("verify", out, ok=False)
    assert res.exit_code == 7, res.output
    assert f"FAIL  coverage: {f}: digest or size differs from run.json" in res.output


def test_format_1_record_still_verifies_coverage(cli: Cli, data: dict[str, Any], tmp_path: Path) -> None:
    """A run.json written before format 2 names each input's SHA-256 as ``sha256``."""
    out = tmp_path / "run"
    cli("scan", "--manifest", data["manifest"], "--list", f"md5={data['list']}", "--out", out, "-q")
    run = json.loads((out / "run.json").read_text())
    run["format"] = "datahygiene-run/1"
    for i in run["inputs"]:
        i["sha256"] = i.pop("digest")
    (out / "run.json").write_text(json.dumps(run))
    res = cli("verify", out, ok=False)
    assert "PASS  coverage: 3 input file(s)" in res.output, res.output
    assert "Traceback" not in res.output


def test_unknown_algorithm_in_record_fails(cli: Cli, data: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("scan", "--manifest", data["manifest"], "--list", f"md5={data['list']}", "--out", out, "-q")
    run = json.loads((out / "run.json").read_text())
    run["inputs"][0]["digest"] = "md4:" + "0" * 32
    (out / "run.json").write_text(json.dumps(run))
    res = cli("verify", out, ok=False)
    assert res.exit_code == 7 and "run.json names an unknown digest algorithm" in res.output


def test_unknown_input_digest_option_is_a_usage_error(cli: Cli, data: dict[str, Any],
                                                      tmp_path: Path) -> None:
    res = cli("scan", "--manifest", data["manifest"], "--list", f"md5={data['list']}",
              "--out", tmp_path / "run", "--input-digest", "md5", ok=False)
    assert res.exit_code == 2 and "--input-digest" in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("size", [0, 1, 5000, 3 << 20])
@pytest.mark.parametrize("block", [None, 4096], ids=["default-blocks", "small-blocks"])
def test_digest_of_a_local_file_block_by_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               size: int, block: int | None) -> None:
    """A local input is read block by block into a reused buffer: the same digests as
    hashing the file's bytes, for both algorithms, whatever its size and the block's
    (a last block shorter than the others, a file of many blocks)."""
    from datahygiene import manifest

    if block is not None:
        monkeypatch.setattr(manifest, "DIGEST_BLOCK", block)
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    p = tmp_path / "m.parquet"
    p.write_bytes(data)
    f = manifest.InputFile(str(p), manifest.LocalFileSystem(), str(p))
    for _ in range(2):  # the second time reuses the thread's buffer
        assert manifest.digest_file(f) == ("sha256:" + hashlib.sha256(data).hexdigest(), size)
    assert manifest.digest_file(f, "blake3") == ("blake3:" + blake3.blake3(data).hexdigest(), size)


def test_an_input_cut_short_while_it_is_digested_is_an_error(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that holds fewer bytes than its size said a moment before (another process
    truncating it) is not digested as if whole."""
    import os

    from datahygiene import manifest
    from datahygiene.errors import InputError

    p = tmp_path / "m.parquet"
    p.write_bytes(b"x" * 1000)
    f = manifest.InputFile(str(p), manifest.LocalFileSystem(), str(p))
    real = os.fstat

    def bigger(fd: int) -> os.stat_result:
        st = real(fd)
        return os.stat_result((*st[:6], st.st_size + 10, *st[7:]))

    monkeypatch.setattr(manifest.os, "fstat", bigger)
    with pytest.raises(InputError, match=r"m\.parquet: changed while it was read"):
        manifest.digest_file(f)


def test_an_input_truncated_between_blocks_is_an_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process truncating a large input after its first blocks were hashed:
    the run stops with an input error naming the file (a memory-mapped digest ended
    the process with SIGBUS here)."""
    from datahygiene import manifest
    from datahygiene.errors import InputError

    monkeypatch.setattr(manifest, "DIGEST_BLOCK", 4096)
    p = tmp_path / "big.parquet"
    p.write_bytes(b"y" * 40_000)
    f = manifest.InputFile(str(p), manifest.LocalFileSystem(), str(p))
    real = manifest._read_whole
    calls = []

    def then_truncate(fh: object, size: int) -> memoryview:
        got = real(fh, size)
        calls.append(len(got))
        if len(calls) == 2:
            os.truncate(p, 10_000)  # mid-file: the third block reads short, the fourth nothing
        return got

    monkeypatch.setattr(manifest, "_read_whole", then_truncate)
    with pytest.raises(InputError, match=r"big\.parquet: changed while it was read \(cut short\)"):
        manifest.digest_file(f)
    assert calls[:2] == [4096, 4096] and len(calls) >= 3


def test_input_digests_come_in_order_and_one_that_fails_does_not_stop_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """InputDigests: each input's digest and size, in input order, from one thread; a
    file that cannot be read is that input's error (raised when its digest is asked
    for), and the inputs after it are digested all the same."""
    import threading

    from datahygiene import manifest
    from datahygiene.errors import InputError

    files = []
    for i in range(4):
        p = tmp_path / f"m{i}.parquet"
        p.write_bytes(bytes([i]) * (100 + i))
        files.append(manifest.InputFile(str(p), manifest.LocalFileSystem(), str(p)))
    (tmp_path / "m1.parquet").unlink()
    digests = manifest.InputDigests(files, "sha256")
    handle = digests.of(3)
    assert handle.result() == ("sha256:" + hashlib.sha256(bytes([3]) * 103).hexdigest(), 103)
    assert handle.done() and all(digests.done(i) for i in range(4))
    assert digests.result(0) == ("sha256:" + hashlib.sha256(bytes(100)).hexdigest(), 100)
    with pytest.raises(InputError, match=r"m1\.parquet"):
        digests.result(1)
    digests.close()

    # cancelled: the input being digested finishes, no other starts, and asking for
    # one that never will be is an error, not a wait
    started, release = threading.Event(), threading.Event()
    real = manifest.digest_file

    def slow(f: manifest.InputFile, algorithm: str, **kw: Any) -> tuple[str, int]:
        started.set()
        release.wait(5)
        return real(f, algorithm, **kw)

    monkeypatch.setattr(manifest, "digest_file", slow)
    digests = manifest.InputDigests([files[0], files[2], files[3]], "sha256")
    assert started.wait(5)
    digests.cancel()
    release.set()
    digests.close()
    assert digests.done(0) and not digests.done(1)
    with pytest.raises(InputError, match=r"m2\.parquet: its digest was not computed"):
        digests.result(1)


def test_the_coverage_read_counts_rows_from_the_footer_it_read_or_reads_a_large_one_again(
        tmp_path: Path) -> None:
    """One read gives the digest, size and row count; a footer over the kept tail (1 MiB
    of key-value metadata here) is read again rather than miscounted."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from datahygiene.audit import verify

    for name, meta in (("small", {}), ("large", {b"padding": b"x" * (2 << 20)})):
        path = tmp_path / f"{name}.parquet"
        table = pa.table({"md5": [f"{i:032x}" for i in range(1000)]}).replace_schema_metadata(meta)
        pq.write_table(table, path, row_group_size=300)
        digest, size, rows = verify._read_input(str(path), "sha256")
        assert (digest, size, rows) == (hashlib.sha256(path.read_bytes()).hexdigest(),
                                        path.stat().st_size, 1000)
