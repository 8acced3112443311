"""Data-layer benchmark: a large verified copy, many small files, catalog search at scale.

    .venv/bin/python benchmarks/bench_data.py [--big-mib 512] [--small 10000]
        [--versions 100000] [--queries 400] [--repeat 2] [--dir DIR] [--json OUT]

All in this process, one after another:
1. one large file POSIX→POSIX with hexflow (hashed while read, the copy read back and
   checked, atomic rename) against the baseline measured in the same run: ``cp`` then a
   separate ``b3sum`` (``sha256sum`` where b3sum is missing) of the copy. Best of
   ``--repeat`` for each, the two interleaved. Target (issue 6): hexflow ≥ 80% of the
   baseline's throughput (time ratio baseline/hexflow ≥ 0.8).
2. ``--small`` files of 4 KiB from a local directory into a tier; then every copy is read
   back and compared with its source. Target: ≥ 1,000 files/s.
3. a SQLite catalog filled with ``--versions`` versions (bulk, timed apart), then
   ``--queries`` searches (full text, name, metadata, mixed) timed one by one.
   Target: p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from hexflow.data import open_data
from hexflow.data.manifest import manifest_digest, search_text, version_pid
from hexflow.data.tiers import parse_storage
from hexflow.model.datasets import FileEntry
from hexflow.store.sql import sqlite_url

WORDS = [
    "ocean",
    "temperature",
    "salinity",
    "ice",
    "sheet",
    "aerosol",
    "cloud",
    "precipitation",
    "wind",
    "carbon",
    "soil",
    "forest",
    "glacier",
    "river",
    "drought",
    "flood",
    "storm",
    "plasma",
    "fusion",
    "neutron",
    "detector",
    "beamline",
    "genome",
    "protein",
    "lattice",
    "catalyst",
    "turbine",
    "combustion",
    "galaxy",
    "quasar",
    "supernova",
    "seismic",
]


def _storage(root: Path) -> Any:
    tiers = {t: {"path": str(root / t)} for t in ("qss", "pss", "archive")}
    return parse_storage({"tiers": tiers}, home=str(root / ".hexflow"))


def _sync() -> None:
    os.sync()  # each timed step starts with nothing dirty in the page cache


def bench_big(root: Path, mib: int, repeat: int) -> dict[str, Any]:
    src = root / "big.src"
    with open(src, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(mib):
            f.write(block[:-8] + i.to_bytes(8, "little"))
    summer = shutil.which("b3sum") or shutil.which("sha256sum") or "sha256sum"
    base_times, ours_times = [], []
    data = open_data(sqlite_url(root / "bench.db"), _storage(root))
    try:
        for i in range(repeat):
            _sync()
            dst = root / f"cp-{i}.bin"
            t0 = time.perf_counter()
            subprocess.run(["cp", str(src), str(dst)], check=True)
            subprocess.run([summer, str(dst)], check=True, capture_output=True)
            base_times.append(time.perf_counter() - t0)
            dst.unlink()
            _sync()
            t0 = time.perf_counter()
            data.transfers.copy(str(src), f"pss:big-{i}.bin")
            ours_times.append(time.perf_counter() - t0)
            (root / "pss" / "default" / f"big-{i}.bin").unlink()
    finally:
        data.close()
        src.unlink()
    base, ours = min(base_times), min(ours_times)
    return {
        "size_mib": mib,
        "baseline": f"cp + {Path(summer).name}",
        "baseline_s": round(base, 3),
        "hexflow_s": round(ours, 3),
        "baseline_mib_s": round(mib / base, 1),
        "hexflow_mib_s": round(mib / ours, 1),
        "ratio": round(base / ours, 3),
        "target_met": base / ours >= 0.8,
    }


def bench_small(root: Path, count: int) -> dict[str, Any]:
    src = root / "small-src"
    for i in range(count):
        d = src / f"d{i // 1000:02d}"
        if i % 1000 == 0:
            d.mkdir(parents=True)
        (d / f"f{i:05d}.dat").write_bytes(os.urandom(4096))
    _sync()
    data = open_data(sqlite_url(root / "bench.db"), _storage(root), workers=8)
    try:
        t0 = time.perf_counter()
        rec = data.transfers.copy(str(src), "qss:small")
        took = time.perf_counter() - t0
    finally:
        data.close()
    dst = root / "qss" / "default" / "small"
    verified = sum(
        1 for p in src.rglob("*.dat") if (dst / p.relative_to(src)).read_bytes() == p.read_bytes()
    )
    shutil.rmtree(src)
    shutil.rmtree(dst)
    return {
        "files": count,
        "seconds": round(took, 3),
        "files_per_s": round(count / took, 1),
        "done": rec.files_done,
        "verified_identical": verified,
        "target_met": count / took >= 1000 and verified == count,
    }


def bench_search(root: Path, versions: int, queries: int) -> dict[str, Any]:
    import random

    rng = random.Random(6)
    data = open_data(sqlite_url(root / "catalog.db"), _storage(root))
    try:
        t0 = time.perf_counter()
        batch: list[dict[str, Any]] = []
        for i in range(versions):
            name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i % 5000}"
            entries = [
                FileEntry(f"part-{j}.h5", 1000 + j, f"blake3:{i:056x}{j:08x}") for j in range(2)
            ]
            meta = {
                "title": " ".join(rng.choices(WORDS, k=4)),
                "description": " ".join(rng.choices(WORDS, k=12)),
                "keywords": rng.sample(WORDS, 3),
                "creators": [f"author{rng.randrange(500)}"],
                "campaign": f"c{rng.randrange(100)}",
            }
            digest = manifest_digest(entries)
            batch.append(
                {
                    "project": "bench",
                    "name": name,
                    "entries": entries,
                    "digest": digest,
                    "pid": version_pid("bench", name, digest),
                    "metadata": meta,
                    "search_text": search_text(name, meta, entries),
                }
            )
            if len(batch) == 10_000:
                data.db.catalog.add_versions_bulk(batch, now=time.time())
                batch = []
        if batch:
            data.db.catalog.add_versions_bulk(batch, now=time.time())
        load = time.perf_counter() - t0
        cat = data.db.catalog
        kinds = {"text": [], "two words": [], "name": [], "metadata": [], "text+metadata": []}
        for q in range(queries):
            kind = list(kinds)[q % len(kinds)]
            t0 = time.perf_counter()
            if kind == "text":
                cat.search(project="bench", words=rng.choice(WORDS), limit=50)
            elif kind == "two words":
                cat.search(project="bench", words=" ".join(rng.sample(WORDS, 2)), limit=50)
            elif kind == "name":
                cat.search(project="bench", name=rng.choice(WORDS), limit=50)
            elif kind == "metadata":
                cat.search(project="bench", meta={"campaign": f"c{rng.randrange(100)}"}, limit=50)
            else:
                cat.search(
                    project="bench",
                    words=rng.choice(WORDS),
                    meta={"keywords": rng.choice(WORDS)},
                    limit=50,
                )
            kinds[kind].append(time.perf_counter() - t0)
    finally:
        data.close()
    every = sorted(t for ts in kinds.values() for t in ts)

    def pct(ts: list[float], p: float) -> float:
        ts = sorted(ts)
        return ts[min(len(ts) - 1, int(round(p * (len(ts) - 1))))] * 1000

    return {
        "versions": versions,
        "load_s": round(load, 1),
        "queries": queries,
        "p50_ms": round(pct(every, 0.5), 2),
        "p99_ms": round(pct(every, 0.99), 2),
        "max_ms": round(every[-1] * 1000, 2),
        "by_kind_p99_ms": {k: round(pct(v, 0.99), 2) for k, v in kinds.items() if v},
        "mean_ms": round(statistics.mean(every) * 1000, 2),
        "target_met": pct(every, 0.99) < 50,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big-mib", type=int, default=512)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (a disk)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip", action="append", default=[], choices=["big", "small", "search"])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hexflow-bench-data-", dir=args.dir))
    results: dict[str, Any] = {}
    try:
        if "big" not in args.skip:
            results["big_file"] = bench_big(root, args.big_mib, args.repeat)
            print(json.dumps({"big_file": results["big_file"]}), flush=True)
        if "small" not in args.skip:
            results["small_files"] = bench_small(root, args.small)
            print(json.dumps({"small_files": results["small_files"]}), flush=True)
        if "search" not in args.skip:
            results["search"] = bench_search(root, args.versions, args.queries)
            print(json.dumps({"search": results["search"]}), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
