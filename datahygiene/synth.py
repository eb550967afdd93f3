"""Synthetic manifests and placeholder lists with a known set of planted matches.

Everything here is random bytes and made-up words: no real hash of anything, no
real URL (``example.invalid`` is reserved and never resolves), no image. The output
directory holds the ground truth in ``planted.json`` so that tests, the demo and the
benchmarks can check that a scan found exactly what was planted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_WORDS = pa.array([
    "red", "blue", "green", "small", "large", "wooden", "glass", "paper", "bridge", "river",
    "chair", "table", "lamp", "cloud", "stone", "garden", "bicycle", "teapot", "window",
    "mountain", "kite", "boat", "tree", "clock", "book", "street", "sunset", "field", "fence",
    "flower", "bowl", "cup", "roof", "train", "tower", "beach", "shell", "leaf", "road", "map",
])
URL_PREFIX = "https://example.invalid/synthetic/"


def hex_matrix(values: np.ndarray, newline: bool = False) -> np.ndarray:
    """(n, w) bytes -> (n, 2w[+1]) ASCII hex characters (vectorised)."""
    n, w = values.shape
    out = np.empty((n, 2 * w + (1 if newline else 0)), dtype=np.uint8)
    out[:, 0 : 2 * w : 2] = _HEX[values >> 4]
    out[:, 1 : 2 * w : 2] = _HEX[values & 15]
    if newline:
        out[:, -1] = 10
    return out


def hex_array(values: np.ndarray) -> pa.Array:
    """(n, w) bytes -> Arrow string array of lower-case hex, without per-row Python."""
    n, w = values.shape
    chars = hex_matrix(values)
    offsets = np.arange(0, n * 2 * w + 1, 2 * w, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()),
                                       pa.py_buffer(chars.tobytes()))


@dataclass
class SynthSpec:
    rows: int = 100_000
    files: int = 4
    list_size: int = 10_000
    planted: int = 25
    malformed: int = 5
    seed: int = 0
    row_group_size: int = 131_072
    binary: bool = False
    sha256: bool = False
    url_list: bool = False
    # the manifest files' parquet codec: zstd here; pyarrow's default, which
    # img2dataset's shards get, is snappy (the benchmark measures both)
    compression: str = "zstd"


def _keys(start: int, n: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(np.arange(start, start + n)).cast(pa.string()), 9, "0")


def write_synthetic(out: str | Path, spec: SynthSpec) -> dict[str, Any]:
    """Write ``out/manifest/*.parquet``, ``out/lists/*`` and ``out/planted.json``."""
    out = Path(out)
    (out / "manifest").mkdir(parents=True, exist_ok=True)
    (out / "lists").mkdir(parents=True, exist_ok=True)
    # The seed and the size together seed the data, and rows and the list's filler
    # entries come from separate streams. From one stream seeded by the seed alone, two
    # runs of different sizes shared their first rows, and a list made with fewer rows
    # drew its fillers where the larger run drew its rows' digests: it matched thousands.
    row_seed, list_seed = np.random.SeedSequence([spec.seed, spec.rows]).spawn(2)
    rng = np.random.default_rng(row_seed)
    list_rng = np.random.default_rng(list_seed)
    n = spec.rows
    planted_n = min(spec.planted, n)
    chosen = rng.choice(n, size=planted_n + min(spec.malformed, n - planted_n), replace=False) \
        if n else np.zeros(0, dtype=np.int64)
    planted_rows = np.sort(chosen[:planted_n])
    malformed_rows = np.sort(chosen[planted_n:])
    planted_md5 = np.zeros((planted_n, 16), dtype=np.uint8)
    planted_url: list[str] = []
    # URLs name the dataset (seed and size), like its digests: one run's URL list must
    # not match another run's rows. Keys are row numbers in every run, as two
    # img2dataset runs' keys are.
    url_prefix = f"{URL_PREFIX}{spec.seed}-{spec.rows}/"
    per_file = -(-n // spec.files) if spec.files else n
    start = 0
    file_names = []
    for fi in range(max(spec.files, 1)):
        cnt = max(0, min(per_file, n - start))
        md5 = rng.integers(0, 256, size=(cnt, 16), dtype=np.uint8)
        keys = _keys(start, cnt)
        words = [_WORDS.take(pa.array(rng.integers(0, len(_WORDS), cnt))) for _ in range(4)]
        cols: dict[str, pa.Array] = {
            "key": keys,
            "url": pc.binary_join_element_wise(url_prefix, keys, ".jpg", ""),
            "caption": pc.binary_join_element_wise(*words, " "),
        }
        in_file = (planted_rows >= start) & (planted_rows < start + cnt)
        planted_md5[in_file] = md5[planted_rows[in_file] - start]
        planted_url.extend(f"{url_prefix}{k:09d}.jpg" for k in planted_rows[in_file])
        md5_col: pa.Array = (pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), cnt, [None, pa.py_buffer(md5.tobytes())]) if spec.binary
            else hex_array(md5))
        bad = malformed_rows[(malformed_rows >= start) & (malformed_rows < start + cnt)] - start
        if bad.size:
            mask = np.zeros(cnt, dtype=bool)
            mask[bad] = True
            md5_col = pc.if_else(pa.array(mask), pa.scalar(None, md5_col.type), md5_col)
        cols["md5"] = md5_col
        if spec.sha256:
            cols["sha256"] = hex_array(rng.integers(0, 256, size=(cnt, 32), dtype=np.uint8))
        name = f"part-{fi:05d}.parquet"
        pq.write_table(pa.table(cols), out / "manifest" / name,
                       row_group_size=spec.row_group_size, compression=spec.compression)
        file_names.append(name)
        start += cnt

    noise = max(spec.list_size - planted_n, 0)
    entries = np.concatenate([planted_md5, list_rng.integers(0, 256, size=(noise, 16), dtype=np.uint8)])
    entries = entries[list_rng.permutation(entries.shape[0])]
    list_path = out / "lists" / "md5.txt"
    with open(list_path, "wb") as fh:
        fh.write(b"# synthetic placeholder list: random values, not a real partner list\n\n")
        fh.write(hex_matrix(entries, newline=True).tobytes())
    (out / "lists" / "md5.txt.meta.toml").write_text(
        'partner = "synthetic"\nname = "placeholder-md5"\nversion = "1"\nsignal = "md5"\n')
    lists = {"md5": str(list_path)}
    if spec.url_list:
        import hashlib

        digests = [hashlib.sha256(u.encode()).hexdigest() for u in planted_url]
        url_path = out / "lists" / "urls.csv"
        url_path.write_text("id,hash,category\n" + "".join(
            f"U{i:05d},{d},placeholder\n" for i, d in enumerate(digests)))
        (out / "lists" / "urls.csv.meta.toml").write_text(
            'partner = "synthetic"\nname = "placeholder-urls"\nversion = "1"\n'
            'signal = "url-sha256"\n')
        lists["url-sha256"] = str(url_path)
    truth = {
        "rows": n,
        "files": file_names,
        "planted_keys": [f"{k:09d}" for k in planted_rows],
        "malformed_keys": [f"{k:09d}" for k in malformed_rows],
        "lists": lists,
        "seed": spec.seed,
    }
    (out / "planted.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth
