"""Replay benchmark: the KTH-SP2 log and a 300,000-job synthetic trace, batch and facility.

    .venv/bin/python benchmarks/bench_replay.py [--log PATH] [--repeat N] [--json OUT]
        [--synthetic-jobs 300000] [--synthetic-cores 90000] [--seed 1] [--load 0.85]
        [--skip-synthetic] [--skip-facility]

All in this process, one after another (wall and process CPU time are both printed: the
CPU time is the steadier figure on a shared machine):
1. the KTH-SP2 log (read once, timed apart) through FCFS, EASY and conservative on its own
   machine size, ``--repeat`` times each (median wall); EASY's mean wait against FCFS's
   (the baseline). Target (issue 3): EASY under 5 s wall.
2. a seeded synthetic trace (``hexflow.sim.synthesize``; generation timed apart) through
   EASY and FCFS (the baseline), ``--synthetic-repeat`` times each. Target (issue 3): EASY
   under 60 s wall for 300,000 jobs on 90,000 cores.
3. the KTH-SP2 log through the facility policy (``replay_facility``: 100 nodes of 1 core,
   EASY backfilling, fair share between groups), once; its wall time against the batch
   EASY replay of the same log.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from hexflow.scheduler.swf import SwfJob, read_swf
from hexflow.sim import SynthConfig, replay, replay_facility, synthesize

DEFAULT_LOG = Path(__file__).resolve().parent / "data" / "KTH-SP2-1996-2.1-cln.swf.gz"
POLICIES = ("fcfs", "easy", "conservative")
Metrics = dict[str, float | int | str]


def _timed(jobs: Sequence[SwfJob], policy: str, nodes: int, repeat: int) -> Metrics:
    walls, cpus = [], []
    result = None
    for _ in range(max(repeat, 1)):
        began, began_cpu = time.perf_counter(), time.process_time()
        result = replay(jobs, policy, nodes)
        walls.append(time.perf_counter() - began)
        cpus.append(time.process_time() - began_cpu)
    assert result is not None
    return {
        **result.metrics(),
        "wall_s": round(statistics.median(walls), 3),
        "cpu_s": round(statistics.median(cpus), 3),
    }


def _table(results: dict[str, Metrics]) -> None:
    print(
        f"{'policy':<13}{'wall s':>8}{'cpu s':>8}{'mean wait s':>14}{'bsld':>10}{'util':>8}"
        f"{'makespan s':>14}"
    )
    for policy, m in results.items():
        print(
            f"{policy:<13}{m['wall_s']:>8.2f}{m['cpu_s']:>8.2f}{m['mean_wait_s']:>14,.0f}"
            f"{m['mean_bounded_slowdown']:>10.1f}{m['utilization']:>8.3f}{m['makespan_s']:>14,.0f}"
        )


def _kth(log: Path, repeat: int, nodes: int | None) -> tuple[dict[str, object], list[SwfJob], int]:
    began = time.perf_counter()
    trace = read_swf(log)
    read_s = time.perf_counter() - began
    size = nodes or trace.max_procs or max(j.procs for j in trace.jobs)
    print(f"log {log.name}: {len(trace.jobs):,} jobs, {size} processors, read {read_s:.2f} s")
    results = {p: _timed(trace.jobs, p, size, repeat) for p in POLICIES}
    _table(results)
    fcfs_wait = float(results["fcfs"]["mean_wait_s"])
    ratios = {
        p: float(results[p]["mean_wait_s"]) / fcfs_wait if fcfs_wait else float("nan")
        for p in ("easy", "conservative")
    }
    print(f"mean wait EASY/FCFS = {ratios['easy']:.4f} ({1 / ratios['easy']:.1f}x shorter)")
    print(f"mean wait conservative/FCFS = {ratios['conservative']:.4f}")
    easy_wall = float(results["easy"]["wall_s"])
    print(f"EASY replay {easy_wall:.2f} s wall: {'met' if easy_wall < 5 else 'MISSED'} (< 5 s)")
    report = {"log": str(log), "read_s": read_s, "results": results, "ratios": ratios}
    return report, list(trace.jobs), size


def _synthetic(args: argparse.Namespace) -> dict[str, object]:
    config = SynthConfig(args.synthetic_jobs, args.synthetic_cores, args.seed, args.load)
    began = time.perf_counter()
    trace = synthesize(config)
    gen_s = time.perf_counter() - began
    span = trace.jobs[-1].submit / 86_400
    print(
        f"\nsynthetic: {len(trace.jobs):,} jobs on {config.cores:,} cores "
        f"(seed {config.seed}, load {config.load}, {span:,.0f} days), generated in {gen_s:.2f} s"
    )
    results = {
        p: _timed(trace.jobs, p, config.cores, args.synthetic_repeat) for p in ("fcfs", "easy")
    }
    _table(results)
    easy, fcfs = float(results["easy"]["wall_s"]), float(results["fcfs"]["wall_s"])
    waits = float(results["easy"]["mean_wait_s"]) / float(results["fcfs"]["mean_wait_s"])
    print(f"wall EASY/FCFS = {easy / fcfs:.2f}; mean wait EASY/FCFS = {waits:.4f}")
    print(f"EASY replay {easy:.2f} s wall: {'met' if easy < 60 else 'MISSED'} (< 60 s)")
    return {
        "config": {
            "jobs": config.jobs,
            "cores": config.cores,
            "seed": config.seed,
            "load": config.load,
        },  # fmt: skip
        "generate_s": gen_s,
        "results": results,
        "wall_ratio_easy_fcfs": easy / fcfs,
        "wait_ratio_easy_fcfs": waits,
    }


def _facility(jobs: list[SwfJob], nodes: int, batch_easy_wall: float) -> dict[str, object]:
    began, began_cpu = time.perf_counter(), time.process_time()
    result = replay_facility(jobs, nodes, 1)
    wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    m = result.metrics()
    print(
        f"\nfacility policy on the KTH log ({nodes} nodes x 1 core, EASY, fair share): "
        f"{wall:.2f} s wall ({cpu:.2f} s cpu), {result.passes:,} passes "
        f"({wall / max(result.passes, 1) * 1e6:,.0f} us/pass); "
        f"{wall / batch_easy_wall:.0f}x the batch EASY replay"
    )
    print(
        f"  mean wait {m['mean_wait_s']:,.0f} s, bsld {m['mean_bounded_slowdown']:.1f}, "
        f"util {m['utilization']:.3f}, makespan {m['makespan_s']:,.0f} s"
    )
    return {"wall_s": wall, "cpu_s": cpu, "metrics": m}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, dest="json_out")
    parser.add_argument("--synthetic-jobs", type=int, default=300_000)
    parser.add_argument("--synthetic-cores", type=int, default=90_000)
    parser.add_argument("--synthetic-repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--load", type=float, default=0.85)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-facility", action="store_true")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    kth, jobs, size = _kth(args.log, args.repeat, args.nodes)
    report: dict[str, object] = {"kth": kth}
    if not args.skip_synthetic:
        report["synthetic"] = _synthetic(args)
    if not args.skip_facility:
        easy_wall = float(kth["results"]["easy"]["wall_s"])  # type: ignore[index]
        report["facility_kth"] = _facility(jobs, size, easy_wall)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
