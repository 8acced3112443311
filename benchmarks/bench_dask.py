"""The Dask executor's no-op throughput against raw ``client.map`` on the same cluster.

    .venv/bin/python benchmarks/bench_dask.py [--tasks 2000] [--workers 2] [--repeat 3]
        [--json out.json]

One ``LocalCluster`` (``--workers`` processes, one thread each, loopback) serves both, in
alternation, ``--repeat`` times:

- ``raw``: ``client.gather(client.map(noop, range(N), pure=False))`` from a warm client;
- ``hexflow``: a workflow of N no-op Python tasks through ``wf.run()`` with
  ``HEXFLOW_EXECUTOR=dask`` at that cluster's address: the engine, its SQLite store (every
  state change persisted) and the executor's futures. Timed as the run's wall time as
  stored (the engine's drive: the executor's client is connected before it starts).
  ``--backlog B``: through a sites file whose Dask site hands Dask up to B times its
  threads (default 16; a large B hands it everything at once, as ``client.map`` does).

Printed: tasks/s of each, and hexflow over raw (target of issue 5: at least 0.8).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hexflow as hx


def noop(*args: Any) -> None:
    return None


def raw(client: Any, n: int) -> float:
    t0 = time.perf_counter()
    client.gather(client.map(noop, range(n), pure=False))
    return time.perf_counter() - t0


def through_hexflow(address: str, n: int, root: Path, backlog: float | None = None) -> float:
    home = Path(tempfile.mkdtemp(prefix="hx-", dir=root))
    env = {
        "HEXFLOW_HOME": str(home / ".hexflow"),
        "HEXFLOW_EXECUTOR": "dask",
        "HEXFLOW_DASK_SCHEDULER": address,
    }
    if backlog is not None:  # a dask site of a sites file, to set its backlog
        block = f"{{scheduler: '{address}', backlog: {backlog}}}"
        sites = f"sites:\n  dask:\n    executor: dask\n    dask: {block}\n"
        (home / "sites.yaml").write_text(sites)
        env["HEXFLOW_SITES"] = str(home / "sites.yaml")
    settings = hx.Settings.from_env(env, cwd=home)
    task = hx.task(noop)
    with hx.Workflow("dask-noop", workdir=home) as wf:
        for i in range(n):
            task(i)
    run = wf.run(settings=settings)
    assert run.ok, run.counts()
    return (run.record.ended_at or 0.0) - (run.record.started_at or 0.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--backlog", type=float, help="the dask site's backlog (default: 16)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    from distributed import Client, LocalCluster

    n = args.tasks
    rows: dict[str, list[float]] = {"raw": [], "hexflow": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp,
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            local_directory=tmp,
        ) as cluster,
        Client(cluster) as client,
    ):
        raw(client, 200)  # warm the workers and the client
        through_hexflow(cluster.scheduler_address, 50, Path(tmp), args.backlog)
        for i in range(args.repeat):
            rows["raw"].append(raw(client, n))
            rows["hexflow"].append(
                through_hexflow(cluster.scheduler_address, n, Path(tmp), args.backlog)
            )
            print(
                f"round {i + 1}: raw {n / rows['raw'][-1]:.0f} tasks/s, hexflow "
                f"{n / rows['hexflow'][-1]:.0f} tasks/s",
                flush=True,
            )
    raw_rate = n / statistics.median(rows["raw"])
    hx_rate = n / statistics.median(rows["hexflow"])
    ratio = hx_rate / raw_rate
    print(
        f"== median: raw client.map {raw_rate:.0f} tasks/s, hexflow {hx_rate:.0f} tasks/s: "
        f"x{ratio:.2f} (target at least 0.80: {'met' if ratio >= 0.8 else 'missed'})"
    )
    if args.json:
        summary = {"tasks": n, "workers": args.workers, "seconds": rows, "ratio": ratio}
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
