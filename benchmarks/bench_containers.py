"""Container task overhead: the same task bare and with ``image=``, in the same run.

    .venv/bin/python benchmarks/bench_containers.py [--tasks 30] [--rounds 3] [--json out.json]

Needs podman and the test images of ``scripts/ci/container-up.sh`` (run it as root first;
this script uses its configuration under /var/tmp/hexflow-containers unless
CONTAINERS_CONF is set).

Each of ``--rounds`` rounds runs one workflow holding ``--tasks / rounds`` tasks of each
kind — a shell task (``true``) and a Python task (``return 1``), each bare and in a
container — chained one after the other in alternation (bare, boxed, bare, boxed...), so
no two tasks share the machine and a drift of the machine's load affects both sides alike;
then as many bare ``podman run --rm --network=none --init ... true`` (the floor any
podman-based executor pays per task, the reference). A task's time is the engine's own:
from its launch to its end as recorded in the store (``ended_at - started_at``). The
overhead of a kind is median(boxed) - median(bare), over all rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hexflow as hx
from hexflow.settings import Settings

BASE = "localhost/base:test"
PYTHON = "localhost/python:test"
STATE = Path(os.environ.get("HEXFLOW_CONTAINER_STATE") or "/var/tmp/hexflow-containers")


def podman_env() -> None:
    if "CONTAINERS_CONF" not in os.environ and (STATE / "containers.conf").exists():
        os.environ["CONTAINERS_CONF"] = str(STATE / "containers.conf")
        os.environ["CONTAINERS_STORAGE_CONF"] = str(STATE / "storage.conf")


def raw_podman(n: int) -> list[float]:
    """Wall time of ``n`` sequential bare ``podman run`` of ``true``."""
    argv = ["podman", "run", "--rm", "--pull=never", "--network=none", "--init", BASE, "true"]
    times = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, cwd=scratch)  # noqa: S603
            times.append(time.perf_counter() - t0)
    return times


def workflow_times(n: int, workdir: Path) -> dict[str, list[float]]:
    """Per-task durations (engine launch to end) by kind, from one alternating chain."""

    @hx.shell
    def sh_bare() -> list[str]:
        return ["true"]

    @hx.task
    def py_bare() -> int:
        return 1

    boxed = {
        "sh_boxed": sh_bare.with_options(image=BASE, name="sh_boxed"),
        "py_boxed": py_bare.with_options(image=PYTHON, name="py_boxed"),
    }
    order = [sh_bare, boxed["sh_boxed"], py_bare, boxed["py_boxed"]]
    with hx.Workflow("bench-containers", workdir=workdir) as wf:
        previous: list[Any] = []
        for _ in range(n):
            for fn in order:
                previous = [fn.with_options(after=previous)()]
    settings = Settings.from_env(env={"HEXFLOW_HOME": str(workdir / ".hexflow")}, cwd=workdir)
    run = wf.run(settings=settings)
    if not run.ok:
        bad = [r for r in run.tasks.values() if r.state.value != "succeeded"]
        raise SystemExit(f"the benchmark run failed: {bad[0].reason}: {bad[0].error}")
    out: dict[str, list[float]] = {}
    for rec in run.tasks.values():
        kind = rec.spec.tags.get("function", rec.name.rsplit("-", 1)[0])
        assert rec.ended_at is not None and rec.started_at is not None
        out.setdefault(kind, []).append(rec.ended_at - rec.started_at)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=30, help="tasks of each kind")
    parser.add_argument("--rounds", type=int, default=3, help="workflow + reference rounds")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    podman_env()
    n = args.tasks
    per_round = max(1, n // args.rounds)
    raw: list[float] = []
    times: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            for kind, values in workflow_times(per_round, Path(tmp)).items():
                times.setdefault(kind, []).extend(values)
        raw += raw_podman(per_round)
    n = per_round * args.rounds
    load = os.getloadavg()[0]

    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        ("shell `true`", med["sh_bare"], med["sh_boxed"]),
        ("python `return 1`", med["py_bare"], med["py_boxed"]),
    ]
    print(
        f"container task overhead, {n} tasks of each kind in {args.rounds} runs "
        f"({platform.node()}, {os.cpu_count()} cpus, load {load:.1f})"
    )
    print(f"{'task':<20} {'bare':>9} {'in podman':>10} {'overhead':>9} {'target':>7}")
    reference = statistics.median(raw)
    result: dict[str, Any] = {"tasks": n, "raw_podman_median_s": reference, "load": load}
    for label, bare, boxed in rows:
        over = boxed - bare
        verdict = "met" if over < 0.3 else "MISSED"
        print(f"{label:<20} {bare:8.3f}s {boxed:9.3f}s {over:8.3f}s {verdict:>7}")
        result[label] = {"bare_median_s": bare, "boxed_median_s": boxed, "overhead_s": over}
    print(f"{'bare podman run':<20} {'':>9} {reference:9.3f}s  (reference, same rounds)")
    for label, _, boxed in rows:
        print(f"{label}: {boxed - reference:+.3f}s beyond a bare podman run")
    p90 = {k: sorted(v)[int(0.9 * (len(v) - 1))] for k, v in times.items()}
    print("p90: " + ", ".join(f"{k} {v:.3f}s" for k, v in sorted(p90.items())))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
