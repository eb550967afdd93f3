"""End to end: scans that hash images (bytes column, HF Image struct, paths, webdataset
shards) against a planted PDQ list, the dihedral option, precomputed hashes with a
quality column, and the ``hash`` command."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent))

from datahygiene_pdq.signal import PDQ
from pdq_images import REFERENCE, encode, flip_bits, jpeg, pattern, reference_hashes

N = 30
PLANTED = {3: 0, 17: 0, 22: 20}  # row -> bits flipped in the list entry (all within 31)
FAR = 25  # listed with 35 bits flipped: must not match
BROKEN = {5: "empty", 8: "truncated", 11: "not-an-image", 14: "null", 26: "low-quality"}


def run(*args: Any, ok: bool = True) -> Result:
    from datahygiene.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"raised {type(result.exception).__name__}: {result.exception}\n"
                             f"{result.output}") from result.exception
    if ok:
        assert result.exit_code == 0, result.output
    return result


def images() -> list[bytes | None]:
    out: list[bytes | None] = [jpeg(100 + i) for i in range(N)]
    out[5] = b""
    out[8] = jpeg(8)[:300]
    out[11] = b"<html>not an image</html>"
    out[14] = None
    out[26] = encode(np.full((80, 80, 3), 90, np.uint8), "PNG")  # flat: quality < 50
    return out


def write_list(path: Path, imgs: list[bytes | None]) -> None:
    sig = PDQ()
    rng = np.random.default_rng(9)
    lines = [flip_bits(sig.hash_bytes(imgs[r])[0], f, seed=r).hex()  # type: ignore[arg-type]
             for r, f in PLANTED.items()]
    lines.append(flip_bits(sig.hash_bytes(imgs[FAR])[0], 35, seed=1).hex())  # type: ignore[arg-type]
    lines += [bytes(v).hex() for v in rng.integers(0, 256, (3000, 32), dtype=np.uint8)]
    path.write_text("\n".join(lines) + "\n")


def exclusions(out: Path) -> dict[int, tuple[str, list[int], list[str]]]:
    t = pq.read_table(out / "restricted" / "exclusions.parquet").to_pylist()
    return {r["row_index"]: (r["decision"], [m["distance"] for m in r["matches"]], r["reasons"])
            for r in t}


def expect_planted(found: dict[int, tuple[str, list[int], list[str]]], broken: dict[int, str]) -> None:
    excluded = {r: d for r, (dec, d, _) in found.items() if dec == "excluded"}
    assert excluded == {r: [f] for r, f in PLANTED.items()}
    unverified = {r: reasons for r, (dec, _, reasons) in found.items() if dec == "unverified"}
    assert unverified == {r: [f"pdq:{why}"] for r, why in broken.items()}


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    imgs = images()
    manifest = tmp_path / "part-00000.parquet"
    pq.write_table(pa.table({
        "key": [f"{i:09d}" for i in range(N)],
        "url": [f"https://example.invalid/{i}.jpg" for i in range(N)],
        "jpg": pa.array(imgs, pa.binary()),
    }), manifest, row_group_size=12)
    write_list(tmp_path / "pdq-list.txt", imgs)
    return manifest, tmp_path / "pdq-list.txt"


def test_scan_bytes_column_excludes_exactly_the_planted_rows(planted: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    manifest, lst = planted
    out = tmp_path / "run"
    res = run("scan", "--manifest", manifest, "--list", f"pdq={lst}", "--image-column", "jpg",
              "--out", out, "--write-clean", "--hash-workers", "1", "-q")
    assert "3 excluded" in res.output
    expect_planted(exclusions(out), BROKEN)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"]["clean"] == N - len(PLANTED) - len(BROKEN)
    assert summary["match_bands"] == {"pdq": {"0": 2, "17-24": 1}}
    assert summary["match_distances"] == {"pdq": {"distance_0": 2, "distance_20": 1}}
    assert pq.read_table(next((out / "clean").glob("*.parquet"))).num_rows == summary["rows"]["clean"]
    public = (out / "summary.json").read_text() + (out / "run.json").read_text()
    assert lst.read_text().split()[0] not in public  # no list value in public outputs

    # deterministic whatever the worker count, batch size or thread count
    out2 = tmp_path / "run2"
    run("scan", "--manifest", manifest, "--list", f"pdq={lst}", "--image-column", "jpg",
        "--out", out2, "--hash-workers", "2", "--batch-size", "7", "--threads", "1", "-q")
    a = (out / "restricted" / "exclusions.parquet").read_bytes()
    assert a == (out2 / "restricted" / "exclusions.parquet").read_bytes()


def test_scan_hf_image_struct_and_path_column(planted: tuple[Path, Path], tmp_path: Path) -> None:
    _, lst = planted
    imgs = images()
    files = []
    for i, data in enumerate(imgs):
        p = tmp_path / "img" / f"{i}.bin"
        p.parent.mkdir(exist_ok=True)
        if data is not None:
            p.write_bytes(data)
        files.append(str(p) if i % 4 else f"file://{p}")  # some as fsspec URLs
        # row 14 (null image) names a file that does not exist
    # HF datasets Image: {bytes, path}; every third row carries only its path
    struct = pa.StructArray.from_arrays(
        [pa.array([d if i % 3 else None for i, d in enumerate(imgs)], pa.binary()),
         pa.array([f if i != 14 else None for i, f in enumerate(files)])], names=["bytes", "path"])
    hf = tmp_path / "hf.parquet"
    pq.write_table(pa.table({"image": struct, "path": files}), hf)
    run("scan", "--manifest", hf, "--list", f"pdq={lst}", "--image-column", "image",
        "--out", tmp_path / "hf-run", "--hash-workers", "1", "-q")
    expect_planted(exclusions(tmp_path / "hf-run"), BROKEN)
    run("scan", "--manifest", hf, "--list", f"pdq={lst}", "--image-path-column", "path",
        "--out", tmp_path / "path-run", "--hash-workers", "1", "-q")
    expect_planted(exclusions(tmp_path / "path-run"), {**BROKEN, 14: "not-found"})


def test_scan_webdataset_shards(planted: tuple[Path, Path], tmp_path: Path) -> None:
    _, lst = planted
    imgs = images()
    shards = tmp_path / "shards"
    shards.mkdir()
    for s in range(2):  # img2dataset: 00000.tar + 00000.parquet
        rows = range(s * 15, s * 15 + 15)
        with tarfile.open(shards / f"{s:05d}.tar", "w") as tar:
            for i in rows:
                if imgs[i] is None:
                    continue  # a failed download has no image in the shard
                for name, data in ((f"{i:09d}.jpg", imgs[i]), (f"{i:09d}.txt", b"a caption")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)  # type: ignore[arg-type]
                    tar.addfile(info, io.BytesIO(data))  # type: ignore[arg-type]
        pq.write_table(pa.table({"key": [f"{i:09d}" for i in rows],
                                 "status": ["success"] * 15}), shards / f"{s:05d}.parquet")
    out = tmp_path / "wds-run"
    run("scan", "--webdataset", shards / "*.tar", "--list", f"pdq={lst}", "--out", out,
        "--hash-workers", "1", "-q")
    found = {}
    for r in pq.read_table(out / "restricted" / "exclusions.parquet").to_pylist():
        found[int(r["key"])] = (r["decision"], [m["distance"] for m in r["matches"]], r["reasons"])
    expect_planted(found, {**BROKEN, 14: "not-in-shard"})


def test_compute_exact_digests_from_image_bytes(planted: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, lst = planted
    imgs = images()
    md5 = tmp_path / "md5.txt"
    md5.write_text(hashlib.md5(imgs[9]).hexdigest() + "\n")  # type: ignore[arg-type]
    out = tmp_path / "run"
    run("scan", "--manifest", manifest, "--list", f"pdq={lst}", "--list", f"md5={md5}",
        "--image-column", "jpg", "--compute", "md5", "--compute", "pdq", "--out", out,
        "--hash-workers", "1", "-q")
    found = exclusions(out)
    assert found[9] == ("excluded", [0], ["md5:match"])
    assert {r for r, (dec, _, _) in found.items() if dec == "excluded"} == {9, *PLANTED}
    assert found[5][2] == ["md5:empty", "pdq:empty"] and found[14][2] == ["md5:null", "pdq:null"]
    assert found[26][2] == ["pdq:low-quality"]  # md5 of a flat image is fine


def test_precomputed_column_with_quality(tmp_path: Path) -> None:
    sig = PDQ()
    values = [sig.hash_bytes(jpeg(200 + i))[0] for i in range(6)]
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"pdq_hex": [v.hex().upper() for v in values[:5]] + ["zz"],
                             "pdq_q": [100, 100, 30, 100, 100, 100]}), manifest)
    lst = tmp_path / "l.txt"
    lst.write_text(f"{flip_bits(values[1], 31).hex()}\n{flip_bits(values[3], 32).hex()}\n"
                   f"{values[2].hex()}\n")
    cfg = tmp_path / "scan.toml"
    cfg.write_text('[scan]\nout = "%s"\n[scan.options.pdq]\nquality_column = "pdq_q"\n'
                   % (tmp_path / "run"))
    run("scan", "--config", cfg, "--manifest", manifest, "--list", f"pdq={lst}",
        "--column", "pdq=pdq_hex", "-q")
    found = exclusions(tmp_path / "run")
    assert found == {1: ("excluded", [31], ["pdq:match"]),
                     2: ("unverified", [], ["pdq:low-quality"]),
                     5: ("unverified", [], ["pdq:wrong-length"])}


@pytest.mark.skipif(not (REFERENCE / "dih").is_dir(), reason=f"no PDQ reference photos at {REFERENCE}")
def test_dihedral_option_finds_rotated_and_flipped_dih_files(tmp_path: Path) -> None:
    names = sorted(reference_hashes())
    manifest = tmp_path / "dih.parquet"
    pq.write_table(pa.table({"key": names, "jpg": [(REFERENCE / n).read_bytes() for n in names]}),
                   manifest)
    lst = tmp_path / "l.txt"  # the C++ reference's own hash of the original photo
    lst.write_text(reference_hashes()["dih/bridge-1-original.jpg"] + "\n")
    run("scan", "--manifest", manifest, "--list", f"pdq={lst}", "--image-column", "jpg",
        "--out", tmp_path / "plain", "--hash-workers", "1", "-q")
    plain = pq.read_table(tmp_path / "plain" / "restricted" / "exclusions.parquet").to_pylist()
    assert [r["key"] for r in plain] == ["dih/bridge-1-original.jpg"]
    run("scan", "--manifest", manifest, "--list", f"pdq={lst}", "--image-column", "jpg",
        "--dihedral", "--out", tmp_path / "dih", "--hash-workers", "2", "-q")
    dih = pq.read_table(tmp_path / "dih" / "restricted" / "exclusions.parquet").to_pylist()
    assert [r["key"] for r in dih] == names
    assert all(r["decision"] == "excluded" and len(r["matches"]) == 1
               and r["matches"][0]["distance"] <= 16 for r in dih)
    assert json.loads((tmp_path / "dih" / "run.json").read_text())["config"]["dihedral"] is True


def test_dihedral_needs_an_image_source(planted: tuple[Path, Path], tmp_path: Path) -> None:
    manifest, lst = planted
    res = run("scan", "--manifest", manifest, "--list", f"pdq={lst}", "--dihedral",
              "--out", tmp_path / "x", ok=False)
    assert res.exit_code == 2 and "--dihedral" in res.output


def test_hash_command(tmp_path: Path) -> None:
    good = tmp_path / "a.png"
    good.write_bytes(encode(pattern(1), "PNG"))
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8\xff broken")
    res = run("hash", "--signal", "pdq", "--signal", "md5", good, bad, tmp_path / "missing.jpg", ok=False)
    assert res.exit_code == 3
    lines = res.stdout.splitlines()
    assert lines[0] == "path,signal,value,quality"
    value, quality = PDQ().hash_bytes(good.read_bytes())
    assert lines[1] == f"{good},pdq,{value.hex()},{quality}"
    assert lines[2] == f"{good},md5,{hashlib.md5(good.read_bytes()).hexdigest()},"
    missing = tmp_path / "missing.jpg"
    assert lines[3:] == [f"{bad},pdq,,", f"{bad},md5,{hashlib.md5(bad.read_bytes()).hexdigest()},",
                         f"{missing},pdq,,", f"{missing},md5,,"]
    errors = [e for e in res.stderr.splitlines() if e]
    assert f"datahygiene: hash: {bad}: pdq: not-an-image" in errors
    assert f"datahygiene: hash: {tmp_path / 'missing.jpg'}: md5: not-found" in errors
    assert all(len(e) < 200 for e in errors)
    ok = run("hash", "--signal", "pdq", good)
    assert ok.stdout.splitlines()[1] == f"{good},pdq,{value.hex()},{quality}"


@pytest.mark.parametrize(("option", "message"), [
    ('low_quality = "bogus"', "low_quality must be 'unverified' or 'match'"),
    ('orientation = "aply"', "orientation must be 'ignore' or 'apply'"),
    ("max_side = 0", "max_side must be at least"),
    ("min_quality = 500", "min_quality must be between 0 and 100"),
])
def test_bad_option_values_are_refused_before_the_scan(tmp_path: Path, option: str,
                                                       message: str) -> None:
    """They used to surface per image (every row 'decode-error', exit 0) or as a traceback."""
    import tomllib

    from datahygiene.errors import ConfigError
    from datahygiene.plugins import discover
    opts = tomllib.loads(option)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        discover().signal("pdq", options=opts)


def test_a_manifest_column_named_like_a_computed_one_is_refused(planted: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    """The hashes computed from images go in ``__content__pdq`` beside the batch's columns:
    a manifest column of that name would be a second one, read in their place."""
    manifest, lst = planted
    t = pq.read_table(manifest)
    p = tmp_path / "dup" / "m.parquet"
    p.parent.mkdir()
    pq.write_table(t.append_column("__content__pdq", pa.array([b"\0" * 32] * t.num_rows)), p)
    res = run("scan", "--manifest", p, "--list", f"pdq={lst}", "--image-column", "jpg",
              "--out", tmp_path / "run", "--hash-workers", "1", ok=False)
    assert res.exit_code == 3
    assert "'__content__pdq' is named like a column datahygiene computes" in res.output
    assert not (tmp_path / "run" / "run.json").exists()


def _shard(path: Path, members: list[tuple[str, bytes]], keys: list[str]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    pq.write_table(pa.table({"key": keys}), path.with_suffix(".parquet"))


def test_webdataset_rows_are_joined_to_their_own_shard_only(planted: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    """Two img2dataset runs both key from 000000000. The index spanned every shard and
    kept the first member per key: run b's row was hashed with run a's image, and b's
    listed image was never looked at (clean). A row whose own shard lacks its image was
    joined to another shard's."""
    _, lst = planted
    imgs = images()
    listed = imgs[3]  # planted at distance 0
    assert listed is not None and imgs[0] is not None
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _shard(tmp_path / "a" / "00000.tar", [("000000000.jpg", imgs[0])], ["000000000", "000000001"])
    _shard(tmp_path / "b" / "00000.tar", [("000000000.jpg", listed), ("000000001.jpg", listed)],
           ["000000000"])
    out = tmp_path / "run"
    run("scan", "--webdataset", tmp_path / "*" / "*.tar", "--list", f"pdq={lst}", "--out", out,
        "--hash-workers", "1", "-q")
    got = {(r["source_file"].split("/")[-2], r["key"]): (r["decision"], r["reasons"])
           for r in pq.read_table(out / "restricted" / "exclusions.parquet").to_pylist()}
    assert got == {("b", "000000000"): ("excluded", ["pdq:match"]),
                   ("a", "000000001"): ("unverified", ["pdq:not-in-shard"])}


def test_a_key_with_several_images_in_its_shard_is_unverified(planted: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    """The same member appended twice, or a .jpg and a .png for one key: only the first
    was hashed, so a listed image second in the shard went to clean/."""
    _, lst = planted
    imgs = images()
    other, listed = imgs[0], imgs[3]
    assert other is not None and listed is not None
    (tmp_path / "s").mkdir()
    _shard(tmp_path / "s" / "00000.tar",
           [("000000000.jpg", other), ("000000000.jpg", listed), ("000000001.jpg", other),
            ("000000001.png", listed), ("000000002.jpg", other)],
           ["000000000", "000000001", "000000002"])
    out = tmp_path / "run"
    run("scan", "--webdataset", tmp_path / "s" / "*.tar", "--list", f"pdq={lst}", "--out", out,
        "--hash-workers", "1", "-q")
    got = {r["key"]: (r["decision"], r["reasons"])
           for r in pq.read_table(out / "restricted" / "exclusions.parquet").to_pylist()}
    assert got == {"000000000": ("unverified", ["pdq:several-images"]),
                   "000000001": ("unverified", ["pdq:several-images"])}


def test_unreadable_images_give_codes_never_text_and_relative_struct_paths_are_not_read(
        planted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path the filesystem layer cannot read (an unknown protocol, a NUL, an fsspec
    filesystem that is not installed) made its exception's text -- naming the row's
    file -- a reason in the public summary.json, or stopped the scan with a traceback.
    A Hugging Face struct without bytes whose path is relative was read from the working
    directory: an unrelated file of that name was hashed and the row called clean."""
    _, lst = planted
    imgs = images()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "00001.jpg").write_bytes(imgs[0])  # type: ignore[arg-type]
    paths = ["nosuchprotocol://x/private-name.jpg", "a\0b.jpg", "zip://private-name.jpg::nope.zip"]
    struct = pa.StructArray.from_arrays([pa.array([None], pa.binary()), pa.array(["00001.jpg"])],
                                        names=["bytes", "path"])
    pq.write_table(pa.table({"key": ["p0", "p1", "p2"], "path": paths}), tmp_path / "p.parquet")
    pq.write_table(pa.table({"key": ["s0"], "image": struct}), tmp_path / "s.parquet")
    for manifest, source in (("p.parquet", "--image-path-column=path"),
                             ("s.parquet", "--image-column=image")):
        out = tmp_path / f"run-{manifest}"
        run("scan", "--manifest", manifest, "--list", f"pdq={lst}", source, "--out", out,
            "--hash-workers", "1", "-q")
        summary = (out / "summary.json").read_text()
        assert "private-name" not in summary and "00001" not in summary
        got = {r["key"]: r["reasons"] for r in
               pq.read_table(out / "restricted" / "exclusions.parquet").to_pylist()}
        want = ({"p0": ["pdq:read-error"], "p1": ["pdq:read-error"], "p2": ["pdq:not-found"]}
                if manifest == "p.parquet" else {"s0": ["pdq:null"]})
        assert got == want


def test_two_image_sources_are_refused(planted: tuple[Path, Path], tmp_path: Path) -> None:
    """With --image-column and --image-path-column the path column was read and the
    bytes column silently ignored, while run.json recorded both."""
    manifest, lst = planted
    res = run("scan", "--manifest", manifest, "--list", f"pdq={lst}", "--image-column", "jpg",
              "--image-path-column", "url", "--out", tmp_path / "run", ok=False)
    assert res.exit_code == 2
    assert "--image-path-column and --image-column both name where the images are" in res.output


def test_an_image_column_of_the_wrong_type_names_the_file(planted: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    manifest, lst = planted
    res = run("scan", "--manifest", manifest, "--list", f"pdq={lst}", "--image-column", "url",
              "--out", tmp_path / "run", "--hash-workers", "1", ok=False)
    assert res.exit_code == 3
    assert f"{manifest}: column 'url' must hold image bytes (binary), not string" in res.output
