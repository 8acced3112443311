"""Replay benchmark: the KTH-SP2 log through FCFS, EASY and conservative backfilling.

    .venv/bin/python benchmarks/bench_replay.py [--log PATH] [--repeat N] [--json OUT]

Reads the SWF log once (timed separately), then replays it on its own machine size with
each policy, ``--repeat`` times (the median wall time is reported), all in this process.
Prints wall times, the metrics of each policy and the ratio of EASY's mean wait to
FCFS's (the baseline, run in the same process). Target (issue 3): EASY under 5 s wall.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from hexflow.scheduler.swf import read_swf
from hexflow.sim import replay

DEFAULT_LOG = Path(__file__).resolve().parent / "data" / "KTH-SP2-1996-2.1-cln.swf.gz"
POLICIES = ("fcfs", "easy", "conservative")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, dest="json_out")
    args = parser.parse_args()

    began = time.perf_counter()
    trace = read_swf(args.log)
    read_s = time.perf_counter() - began
    nodes = args.nodes or trace.max_procs or max(j.procs for j in trace.jobs)
    print(f"log {args.log.name}: {len(trace.jobs):,} jobs, {nodes} processors, read {read_s:.2f} s")

    results: dict[str, dict[str, float | int | str]] = {}
    for policy in POLICIES:
        walls = []
        for _ in range(max(args.repeat, 1)):
            began = time.perf_counter()
            result = replay(trace.jobs, policy, nodes)
            walls.append(time.perf_counter() - began)
        results[policy] = {**result.metrics(), "wall_s": round(statistics.median(walls), 3)}

    header = (
        f"{'policy':<13}{'wall s':>8}{'mean wait s':>14}{'bsld':>10}{'util':>8}{'makespan s':>14}"
    )
    print(header)
    for policy, m in results.items():
        print(
            f"{policy:<13}{m['wall_s']:>8.2f}{m['mean_wait_s']:>14,.0f}"
            f"{m['mean_bounded_slowdown']:>10.1f}{m['utilization']:>8.3f}{m['makespan_s']:>14,.0f}"
        )
    fcfs_wait = float(results["fcfs"]["mean_wait_s"])
    ratios = {
        p: float(results[p]["mean_wait_s"]) / fcfs_wait if fcfs_wait else float("nan")
        for p in ("easy", "conservative")
    }
    print(f"mean wait EASY/FCFS = {ratios['easy']:.4f} ({1 / ratios['easy']:.1f}x shorter)")
    print(f"mean wait conservative/FCFS = {ratios['conservative']:.4f}")
    easy_wall = float(results["easy"]["wall_s"])
    print(f"EASY replay {easy_wall:.2f} s wall: {'met' if easy_wall < 5 else 'MISSED'} (< 5 s)")
    if args.json_out:
        report = {"log": str(args.log), "read_s": read_s, "results": results, "ratios": ratios}
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
