"""Pilot jobs against one Slurm job per task, on the same Slurm cluster, in one command.

    .venv/bin/python benchmarks/bench_pilots.py [--tasks 2000] [--seconds 1]
        [--slurm-conf /tmp/hexflow-slurm-sites/etc/slurm.conf] [--pilots 2 --pilot-cpus 8]
        [--skip-per-job] [--json out.json]

N independent Python tasks of ``--seconds`` each (``time.sleep``: they occupy a core's
slot without using it, so a 2-core machine can stand in for a 16-core node) run twice,
through ``wf.run()`` with a sites file of one site each:

- ``pilots``: a pilot site (``executor: pilot``, provider Slurm), ``--pilots`` allocations
  of ``--pilot-cpus`` cpus at most;
- ``per-job``: a Slurm site: each task its own job (in job arrays, as the Slurm executor
  submits them).

Makespan is the run's wall time as stored (engine start to the last task's end, pilot
start-up included). The ideal is ``N x seconds / cores``, ``cores`` being the pilots'
cpus in all (the node's, by default). Printed: each makespan, its ratio to the ideal, and
pilots against per-job. The target of issue 5: pilots within 15 % of the ideal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hexflow as hx

PRIVATE = Path("/tmp/hexflow-slurm-sites/etc/slurm.conf")


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def sites_file(kind: str, conf: str, pilots: int, cpus: int, tasks: int, seconds: float) -> str:
    if kind == "pilots":
        walltime = max(600, int(tasks * seconds / max(1, pilots * cpus) * 3) + 120)
        body = (
            "    executor: pilot\n"
            f"    pilot: {{provider: slurm, conf: {conf}, partition: regular, cpus: {cpus}, "
            f"max_pilots: {pilots}, walltime: {walltime}s, idle_timeout: 30s, "
            f"task_walltime: 60s}}\n"
        )
    else:
        body = f"    executor: slurm\n    slurm: {{conf: {conf}, partition: regular, poll: 1s}}\n"
    return f"check_interval: 5s\nsites:\n  bench:\n{body}"


def run_once(kind: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    workdir = root / kind
    workdir.mkdir(parents=True)
    (workdir / "sites.yaml").write_text(
        sites_file(kind, args.slurm_conf, args.pilots, args.pilot_cpus, args.tasks, args.seconds)
    )
    settings = hx.Settings.from_env(
        {"HEXFLOW_HOME": str(workdir / ".hexflow"), "HEXFLOW_SITES": str(workdir / "sites.yaml")},
        cwd=workdir,
    )
    task = hx.task(walltime=f"{max(60, int(args.seconds * 10))}s")(sleep_for)
    with hx.Workflow(f"bench-{kind}", workdir=workdir) as wf:
        for _ in range(args.tasks):
            task(args.seconds)
    t0 = time.time()
    run = wf.run(settings=settings)
    wall = time.time() - t0
    rec = run.record
    makespan = (rec.ended_at or 0.0) - (rec.started_at or 0.0)
    workers = {t.worker.rpartition("@")[2] for t in run.tasks.values() if t.worker}
    return {
        "kind": kind,
        "ok": run.ok,
        "counts": run.counts(),
        "makespan": makespan,
        "wall": wall,
        "allocations": len(workers) if kind == "pilots" else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=1.0)
    default_conf = str(PRIVATE) if PRIVATE.exists() else "/etc/slurm/slurm.conf"
    p.add_argument("--slurm-conf", default=default_conf)
    p.add_argument("--pilots", type=int, default=2)
    p.add_argument("--pilot-cpus", type=int, default=8)
    p.add_argument("--skip-per-job", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    cores = args.pilots * args.pilot_cpus
    ideal = args.tasks * args.seconds / cores
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pilots-") as tmp:
        for kind in ("pilots", "per-job"):
            if kind == "per-job" and args.skip_per_job:
                continue
            print(
                f"== {kind}: {args.tasks} tasks of {args.seconds:g} s on {cores} cores", flush=True
            )
            res = run_once(kind, args, Path(tmp))
            res["ratio_to_ideal"] = res["makespan"] / ideal
            results.append(res)
            print(
                f"   makespan {res['makespan']:.1f} s (ideal {ideal:.1f} s): "
                f"x{res['ratio_to_ideal']:.3f} of ideal; ok={res['ok']} {res['counts']}"
                + (f"; {res['allocations']} allocations" if res["allocations"] else ""),
                flush=True,
            )
    summary: dict[str, Any] = {
        "machine": f"{platform.node()} {os.cpu_count()} cpus, {platform.python_version()}",
        "tasks": args.tasks,
        "seconds": args.seconds,
        "cores": cores,
        "ideal": ideal,
        "results": results,
        "target_pilots_within_15_percent": results[0]["ratio_to_ideal"] <= 1.15,
    }
    if len(results) == 2:
        summary["per_job_over_pilots"] = results[1]["makespan"] / results[0]["makespan"]
        print(f"== per-job makespan / pilot makespan: x{summary['per_job_over_pilots']:.2f}")
    print(
        f"== target (pilots within 15% of ideal): "
        f"{'met' if summary['target_pilots_within_15_percent'] else 'missed'}"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
