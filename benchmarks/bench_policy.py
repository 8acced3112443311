"""Facility-policy benchmark: one decision pass, 100,000 queued tasks, 10,000 nodes.

    .venv/bin/python benchmarks/bench_policy.py [--tasks N] [--nodes N] [--repeat N]

A seeded, realistic mix: 64-cpu nodes (one in ten with 4 GPUs) in two sites, 99% of them
busy (some shared by several tasks, some held whole), a few free or partly free; the queue
mostly ``regular`` work from 50 projects, with ``preempt`` and ``interactive`` tasks, a few
``urgent``/``realtime`` ones (0.1%, ``--urgent``; with deadlines) and a few gangs. Prints
the median wall time of ``--repeat`` passes and the decisions made. Target (issue 3):
under 50 ms median.
Baseline in the same process: the same pass with backfilling and preemption off.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from hexflow.model import QoS, Resources
from hexflow.scheduler.cluster import Cluster, Node, NodeState, Pool, Site, Slot
from hexflow.scheduler.decisions import PendingTask, PolicyConfig, RunningTask
from hexflow.scheduler.policy import decide

NOW = 1_000_000.0


def build(
    n_nodes: int, n_tasks: int, urgent: float = 0.001, seed: int = 1
) -> tuple[Cluster, list[PendingTask], list[RunningTask], dict[str, float]]:
    rng = random.Random(seed)
    nodes = []
    for k in range(n_nodes):
        state = NodeState.UP
        roll = rng.random()
        if roll < 0.005:
            state = NodeState.DOWN
        elif roll < 0.01:
            state = NodeState.DRAINING
        leaves = NOW + rng.uniform(0, 86_400) if rng.random() < 0.02 else None
        gpus = 4 if k % 10 == 0 else 0
        nodes.append(
            Node(f"n{k:05d}", 64, gpus=gpus, memory=256 << 30, state=state, leaves_at=leaves)
        )
    half = n_nodes // 2
    cluster = Cluster(
        (
            Site("east", (Pool("batch", tuple(nodes[:half])),)),
            Site("west", (Pool("batch", tuple(nodes[half:])),)),
        )
    )
    running = []
    for k, node in enumerate(nodes):
        if node.state is NodeState.DOWN:
            continue
        if rng.random() < 0.01:  # a few free or partly free nodes
            if rng.random() < 0.5:
                running.append(_run(rng, k, node, 32, QoS.REGULAR))
            continue
        if rng.random() < 0.4:  # held whole
            qos = QoS.PREEMPT if rng.random() < 0.2 else QoS.REGULAR
            running.append(_run(rng, k, node, 64, qos, exclusive=True))
        else:  # shared by several tasks
            for j in range(4):
                qos = QoS.PREEMPT if rng.random() < 0.2 else QoS.REGULAR
                running.append(_run(rng, k, node, 16, qos, j=j))
    queue = []
    classes = [QoS.REGULAR] * 85 + [QoS.PREEMPT] * 10 + [QoS.INTERACTIVE] * 5
    for k in range(n_tasks):
        qos = rng.choice(classes)
        if rng.random() < urgent:
            qos = QoS.REALTIME if rng.random() < 0.2 else QoS.URGENT
        walltime = rng.choice([600.0, 3600.0, 4 * 3600.0, 12 * 3600.0])
        deadline = NOW + walltime * rng.uniform(0.8, 4) if qos.may_preempt else None
        queue.append(
            PendingTask(
                f"t{k:06d}",
                Resources(
                    cpus=rng.choice([1, 4, 16, 64]),
                    nodes=rng.choice([1, 1, 1, 1, 2, 4, 16]),
                    gpus=1 if rng.random() < 0.05 else 0,
                    memory=rng.choice([0, 4 << 30, 64 << 30]),
                ),
                walltime,
                qos=qos,
                project=f"p{rng.randrange(50)}",
                submit_time=NOW - n_tasks + k,
                deadline=deadline,
                exclusive=rng.random() < 0.1,
                gang=f"g{k // 3}" if k % 1000 < 3 else None,
            )
        )
    usage = {f"p{p}": rng.uniform(0, 1e6) for p in range(50)}
    return cluster, queue, running, usage


def _run(
    rng: random.Random,
    k: int,
    node: Node,
    cpus: float,
    qos: QoS,
    *,
    exclusive: bool = False,
    j: int = 0,
) -> RunningTask:
    return RunningTask(
        f"r{k}.{j}",
        (Slot(node.name, cpus, memory=32 << 30, exclusive=exclusive),),
        started=NOW - rng.uniform(0, 40_000),
        expected_end=NOW + rng.uniform(-100, 86_400),
        qos=qos,
        preemptible=qos is QoS.PREEMPT,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--urgent", type=float, default=0.001, help="share of realtime/urgent tasks (may preempt)"
    )
    args = parser.parse_args()
    cluster, queue, running, usage = build(args.nodes, args.tasks, args.urgent)
    print(
        f"{args.tasks:,} queued ({args.urgent:.1%} realtime/urgent), {args.nodes:,} nodes, "
        f"{len(running):,} running"
    )
    for name, config in (
        ("strict order (baseline)", PolicyConfig(backfill=False, preemption=False)),
        ("all policies on", PolicyConfig()),
    ):
        walls = []
        for _ in range(max(args.repeat, 1)):
            began = time.perf_counter()
            decisions = decide(cluster, queue, running, usage, NOW, config)
            walls.append(time.perf_counter() - began)
        kinds: dict[str, int] = {}
        for d in decisions:
            kinds[type(d).__name__] = kinds.get(type(d).__name__, 0) + 1
        median = statistics.median(walls) * 1000
        print(f"{name:<25} median {median:7.1f} ms  min {min(walls) * 1000:7.1f} ms  {kinds}")
    print("target: all policies on < 50 ms median")


if __name__ == "__main__":
    main()
