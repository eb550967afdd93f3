"""Benchmark: PDQ range matching and hashing from image bytes (issue 3's performance section).

Run with ``make bench-pdq`` (1M list hashes, 100K queries) or
``python -m datahygiene.bench.pdq --quick`` (100K / 10K). Needs the PDQ plugin and its
``bench`` extra (faiss-cpu, psutil): ``pip install -e 'plugins/datahygiene-pdq[bench]'``.

Range matching, in two distributions of synthetic hashes -- ``uniform`` (random bits)
and ``clustered`` (bases with few-bit flips; queries near the same bases, as real PDQ
hashes are not uniform) -- with 1% of queries planted within distance 31 of a list
entry and 0.5% at 32-40. Each contender runs in its own process, one after another,
with the same thread count, and reports build time, queries/s, peak RSS (VmHWM of
that process, including the 32 MB list and the queries) and the pairs it found:

  ours              datahygiene_pdq's multi-index-hashing index (the one the scan uses)
  faiss-flat        faiss IndexBinaryFlat range_search: exhaustive, the recall reference
  faiss-multihash   faiss IndexBinaryMultiHash, 16 tables x 16 bits, nflip=1 (exact at 31;
                    python-threatexchange's PDQ index setting)
  numpy-brute       numpy popcount over every entry (on a sample of queries: it is slow)

Recall is the share of faiss-flat's pairs a contender found on the same queries (1.0
required); "extra" counts pairs it returned that faiss-flat did not (0 expected).

Hashing: images/s on synthetic 1024x768 JPEGs (``--images``) from bytes, for the
decode floor (Pillow decode alone), our hashing in one process, across a process pool
(what the scan does) and across threads (to show the GIL), and full-resolution
``pdqhash`` without the size cap; and the hash shift that reduced-size JPEG decoding
(draft mode) causes on larger images. Figures are only comparable on an idle machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

THRESHOLD = 31
CONTENDERS = ["ours", "faiss-flat", "faiss-multihash", "numpy-brute"]


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- synthetic hashes ------------------------------------------------------------------


def _flip(rows: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row with exactly ``counts[i]`` distinct bits flipped."""
    bits = np.unpackbits(rows, axis=1)
    order = np.argsort(rng.random((rows.shape[0], 256)), axis=1)
    mask = np.zeros_like(bits)
    sel = np.arange(256)[None, :] < counts[:, None]
    np.put_along_axis(mask, order, sel.astype(np.uint8), axis=1)
    return np.packbits(bits ^ mask, axis=1)


def _noisy(rows: np.ndarray, p: float, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
    """Each bit flipped with probability ``p`` (binomial flip counts)."""
    out = np.empty_like(rows)
    cut = int(p * 256)
    for s in range(0, rows.shape[0], chunk):
        block = rows[s:s + chunk]
        flips = rng.integers(0, 256, (block.shape[0], 256), dtype=np.uint8) < cut
        out[s:s + chunk] = block ^ np.packbits(flips, axis=1)
    return out


def make_data(dist: str, m: int, nq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        entries = rng.integers(0, 256, (m, 32), dtype=np.uint8)
        queries = rng.integers(0, 256, (nq, 32), dtype=np.uint8)
    else:
        bases = rng.integers(0, 256, (max(1, m // 16), 32), dtype=np.uint8)
        entries = _noisy(bases[rng.integers(0, bases.shape[0], m)], 0.03, rng)  # ~8 bits from base
        queries = _noisy(bases[rng.integers(0, bases.shape[0], nq)], 0.15, rng)  # ~38 bits from base
    near, far = nq // 100, nq // 200
    src = rng.integers(0, m, near + far)
    counts = np.concatenate([rng.integers(0, THRESHOLD + 1, near), rng.integers(32, 41, far)])
    slots = rng.choice(nq, near + far, replace=False)
    queries[slots] = _flip(entries[src], counts, rng)
    return entries, queries, {"planted_within_31": near, "planted_32_40": far}


# --- contenders (each in its own process) -----------------------------------------------


def _pairs(q: np.ndarray, e: np.ndarray) -> np.ndarray:
    return np.unique(q.astype(np.int64) << 32 | e.astype(np.int64))


def run_contender(name: str, data: Path, threads: int, sample: int) -> dict[str, Any]:
    entries = np.load(data / "entries.npy")
    queries = np.load(data / "queries.npy")
    base_rss = _peak_rss_mb()
    out: dict[str, Any] = {"name": name, "threads": threads}
    t0 = time.perf_counter()
    if name == "ours":
        from datahygiene_pdq.index import MIHIndex, as_words

        index: Any = MIHIndex(entries, THRESHOLD)  # or faiss / brute force below
        t1 = time.perf_counter()
        qw = as_words(queries)
        block = 4096
        starts = list(range(0, qw.shape[0], block))
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda s: index.query_words(qw[s:s + block]), starts))
        q = np.concatenate([p.query + s for p, s in zip(parts, starts, strict=True)])
        e = np.concatenate([p.entry for p in parts])
        out.update(index_mb=round(index.nbytes() / 2**20, 1), layout=index.describe())
    elif name.startswith("faiss"):
        import faiss

        faiss.omp_set_num_threads(threads)
        if name == "faiss-flat":
            index = faiss.IndexBinaryFlat(256)
        else:
            index = faiss.IndexBinaryMultiHash(256, 16, 16)
            index.nflip = 1
        index.add(entries)
        t1 = time.perf_counter()
        # faiss's binary range search keeps distances strictly below the radius
        lims, _, ids = index.range_search(queries, THRESHOLD + 1)
        q = np.repeat(np.arange(queries.shape[0]), np.diff(lims).astype(np.int64))
        e = ids
    else:
        from datahygiene_pdq.index import BruteForceIndex, as_words

        index = BruteForceIndex(entries, THRESHOLD)
        t1 = time.perf_counter()
        queries = queries[:sample]
        qw = as_words(queries)
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda s: index.query_words(qw[s:s + 64]), range(0, len(qw), 64)))
        q = np.concatenate([p.query + s for p, s in zip(parts, range(0, len(qw), 64), strict=True)])
        e = np.concatenate([p.entry for p in parts])
    t2 = time.perf_counter()
    np.save(data / f"pairs-{name}.npy", _pairs(q, e))
    out.update(build_s=round(t1 - t0, 2), query_s=round(t2 - t1, 2), queries=int(queries.shape[0]),
               qps=round(queries.shape[0] / max(t2 - t1, 1e-9)), pairs=len(q),
               peak_rss_mb=round(_peak_rss_mb()), data_rss_mb=round(base_rss))
    return out


def _spawn(name: str, data: Path, threads: int, sample: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "datahygiene.bench.pdq", "--worker", name, "--data", str(data),
           "--threads", str(threads), "--sample", str(sample)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {"name": name, "error": res.stderr.strip().splitlines()[-1] if res.stderr else "failed"}
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def bench_index(m: int, nq: int, threads: int, sample: int, work: Path,
                contenders: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dist in ("uniform", "clustered"):
        data = work / f"{dist}-{m}-{nq}"
        data.mkdir(parents=True, exist_ok=True)
        entries, queries, planted = make_data(dist, m, nq)
        np.save(data / "entries.npy", entries)
        np.save(data / "queries.npy", queries)
        del entries, queries
        results = {c: _spawn(c, data, threads, sample) for c in contenders}
        ref = np.load(data / "pairs-faiss-flat.npy") if "faiss-flat" in results and \
            "error" not in results["faiss-flat"] else None
        for c, r in results.items():
            r["dist"] = dist
            r.update(planted)
            if ref is not None and "error" not in r:
                got = np.load(data / f"pairs-{c}.npy")
                want = ref if r["queries"] == nq else ref[(ref >> 32) < r["queries"]]
                found = np.isin(want, got, assume_unique=True)
                r["recall"] = round(float(found.mean()) if want.size else 1.0, 6)
                r["missed"] = int((~found).sum())
                r["extra"] = int((~np.isin(got, want, assume_unique=True)).sum())
                r["reference_pairs"] = int(want.size)
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    return rows


# --- hashing throughput ----------------------------------------------------------------


def _photo(seed: int, w: int, h: int) -> bytes:
    """A synthetic photo-like JPEG: smooth random waves plus fine noise."""
    from PIL import Image

    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        for _ in range(4):
            fx, fy = r.uniform(0.3, 6, 2)
            a[:, :, c] += np.sin((x / w * fx + y / h * fy) * 6.283 + r.uniform(0, 6.283))
    a = (a - a.min()) / (a.max() - a.min()) * 230 + r.normal(0, 8, a.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=88)
    return buf.getvalue()


def _decode_floor(items: list[bytes]) -> int:
    from PIL import Image

    for d in items:
        im = Image.open(io.BytesIO(d))
        im.load()
    return len(items)


def _full_res(items: list[bytes]) -> int:
    import pdqhash
    from PIL import Image

    for d in items:
        pdqhash.compute(np.asarray(Image.open(io.BytesIO(d)).convert("RGB")))
    return len(items)


def bench_hashing(n: int, workers: int) -> dict[str, Any]:
    import pyarrow as pa
    from datahygiene_pdq.hashing import HashConfig, pdq_bytes
    from datahygiene_pdq.signal import PDQ

    from datahygiene.content import BytesColumn, ContentHashes

    imgs = [_photo(i, 1024, 768) for i in range(n)]
    out: dict[str, Any] = {"images": n, "size": "1024x768", "workers": workers}

    def rate(fn: Any, *args: Any) -> float:
        t = time.perf_counter()
        fn(*args)
        return round(n / (time.perf_counter() - t), 1)

    sig = PDQ()
    out["decode_floor_1proc"] = rate(_decode_floor, imgs)
    out["ours_1proc"] = rate(lambda: [sig.hash_bytes(d) for d in imgs])
    out["pdqhash_full_res_1proc"] = rate(_full_res, imgs)
    with ThreadPoolExecutor(workers) as pool:
        out[f"ours_{workers}threads"] = rate(lambda: list(pool.map(sig.hash_bytes, imgs)))
        out[f"decode_floor_{workers}threads"] = rate(
            lambda: list(pool.map(_decode_floor, [imgs[i::workers] for i in range(workers)])))
    batch = pa.table({"jpg": pa.array(imgs, pa.binary())})
    transform = ContentHashes(BytesColumn("jpg"), [sig], workers=workers)
    transform(batch.slice(0, min(n, 4 * workers)))  # start the pool outside the timing
    out[f"ours_scan_transform_{workers}procs"] = rate(transform, batch)
    transform.close()

    # reduced-size JPEG decoding (draft mode): hash shift against a full decode
    shifts: dict[str, list[int]] = {}
    for w, h in ((2048, 1536), (3000, 2000)):
        key = f"{w}x{h}"
        shifts[key] = []
        for i in range(max(4, n // 8)):
            d = _photo(1000 + i, w, h)
            a = pdq_bytes(d, HashConfig(draft=False))[0][0]
            b = pdq_bytes(d, HashConfig(draft=True))[0][0]
            shifts[key].append(int.bit_count(int.from_bytes(a, "big") ^ int.from_bytes(b, "big")))
    out["draft_shift_bits"] = {k: {"median": float(np.median(v)), "max": int(max(v)), "n": len(v)}
                               for k, v in shifts.items()}
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["dist", "name", "threads", "queries", "qps", "recall", "missed", "extra", "build_s",
            "peak_rss_mb", "data_rss_mb", "index_mb"]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in rows:
        lines.append(" | ".join(str(r.get(c, r.get("error", "")) if c != "name" else r["name"])
                                for c in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m datahygiene.bench.pdq", description=__doc__.split("\n")[0])
    ap.add_argument("--list-size", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--sample", type=int, default=2000, help="queries timed for numpy brute force")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="100K list, 10K queries, 40 images")
    ap.add_argument("--only", choices=["index", "hashing"], default=None)
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--work", type=Path, default=None, help="scratch directory [a temporary one]")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_contender(args.worker, args.data, args.threads, args.sample)))
        return
    if args.quick:
        args.list_size, args.queries, args.images = 100_000, 10_000, 40
    result: dict[str, Any] = {"list_size": args.list_size, "queries": args.queries,
                              "threads": args.threads, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="dh-bench-pdq-") as tmp:
        work = args.work or Path(tmp)
        if args.only in (None, "index"):
            rows = bench_index(args.list_size, args.queries, args.threads, args.sample, work,
                               args.contenders.split(","))
            result["index"] = rows
            print(_table(rows))
            for dist in ("uniform", "clustered"):
                by = {r["name"]: r for r in rows if r["dist"] == dist}
                if "ours" in by and "faiss-flat" in by and "qps" in by["faiss-flat"]:
                    print(f"{dist}: ours / faiss-flat queries/s = "
                          f"{by['ours']['qps'] / max(by['faiss-flat']['qps'], 1):.1f}x")
        if args.only in (None, "hashing"):
            h = bench_hashing(args.images, args.threads)
            result["hashing"] = h
            print(json.dumps(h, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
