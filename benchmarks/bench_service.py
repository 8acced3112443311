"""Service-mode throughput and latency (issue 4), against a real ``hexflow server``.

Starts, on loopback: a ``hexflow server`` (uvicorn, durability on: every submission is
committed before the answer) on a database prefilled with RUNS x TASKS tasks, and a bare
FastAPI app on the same stack (uvicorn + FastAPI, one JSON route) as the floor. This
process is the load generator (asyncio + httpx, bounded in count and time):

* submissions/s: POST /api/v1/runs (one-task YAML, each with an Idempotency-Key) and the
  SFAPI facade's POST /api/v1.2/compute/jobs/perlmutter, vs POST /echo of the floor;
* status query latency (p50/p99, one request at a time): GET /api/v1/runs/{id} and
  GET /api/v1.2/compute/jobs/perlmutter?kwargs=jobid=ID, vs GET /ping of the floor;
* list requests/s: GET /api/v1/runs (50 newest), vs GET /ping.

    .venv/bin/python benchmarks/bench_service.py [--db sqlite|URL] [--runs 1000 --tasks 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

FLOOR_APP = """
import sys, uvicorn
from fastapi import FastAPI, Request
app = FastAPI()
@app.get("/ping")
def ping() -> dict:
    return {"ok": True}
@app.post("/echo", status_code=201)
async def echo(request: Request) -> dict:
    body = await request.body()
    return {"size": len(body)}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
ONE_TASK = b"name: bench\ntasks:\n  t:\n    command: [true]\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"server did not answer:\n{log.read_text()}")


def prefill(home: Path, db: str, runs: int, tasks: int) -> tuple[str, list[str]]:
    """Accounts, a token, and RUNS service runs of TASKS tasks each (as the server stores
    them); returns the token and the run ids."""
    from hexflow.engine import Engine
    from hexflow.executors.local import LocalExecutor
    from hexflow.model import Resources, TaskKind, TaskSpec
    from hexflow.model.access import Role, parse_scopes
    from hexflow.service import Admin
    from hexflow.store import open_store
    from hexflow.store.service_db import ServiceDb

    with ServiceDb(db) as sdb:
        admin = Admin(sdb)
        admin.create_user("bench")
        admin.create_project("p1", [("bench", Role.MEMBER)])
        token = admin.create_token("bench", "p1", parse_scopes("read,submit")).secret
    store = open_store(db)
    engine = Engine(store, LocalExecutor(cpus=1))
    ids = []
    started = time.perf_counter()
    for i in range(runs):
        specs = [
            TaskSpec(id=f"t{j}", name=f"t{j}", kind=TaskKind.SHELL, command=("true",),
                     resources=Resources(cpus=1))
            for j in range(tasks)
        ]  # fmt: skip
        run_id = f"fill{i:07d}"
        engine.create_run(
            "prefill",
            specs,
            workdir=str(home / "work" / "p1" / run_id),
            run_id=run_id,
            config={"home": str(home), "project": "p1", "submitted_by": "bench", "sfapi": "job"},
        )
        ids.append(run_id)
    # the runs are done: no server should try to drive them
    from sqlalchemy import update

    from hexflow.store.schema import runs as runs_table
    from hexflow.store.schema import tasks as tasks_table

    with store._engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(update(runs_table).values(state="succeeded", owner=None))
        conn.execute(update(tasks_table).values(state="succeeded", attempt=1))
    store.close()
    print(f"prefilled {runs} runs x {tasks} tasks in {time.perf_counter() - started:.1f} s")
    return token, ids


async def rate(
    client: httpx.AsyncClient, make: Any, *, count: int, seconds: float, concurrency: int
) -> tuple[float, int, int]:
    """(requests/s, done, failed) of ``make(i)`` requests from ``concurrency`` workers."""
    done = failed = 0
    next_i = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, failed, next_i
        while next_i < count and time.monotonic() < deadline:
            i = next_i
            next_i += 1
            r = await make(client, i)
            if r.status_code < 300:
                done += 1
            else:
                failed += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start), done, failed


async def latencies(client: httpx.AsyncClient, make: Any, *, count: int) -> tuple[float, float]:
    """(p50, p99) in ms of ``count`` requests, one at a time."""
    times = []
    for i in range(count):
        start = time.perf_counter()
        r = await make(client, i)
        times.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, r.text
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


async def measure(
    args: argparse.Namespace, hx: str, floor: str, token: str, ids: list[str]
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as c:
        # warm up every route once
        await c.get(floor + "/ping")
        await c.get(f"{hx}/api/v1/runs/{ids[0]}", headers=auth)

        async def submit(cl: httpx.AsyncClient, i: int) -> httpx.Response:
            headers = {
                **auth,
                "Content-Type": "application/yaml",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            return await cl.post(f"{hx}/api/v1/runs", content=ONE_TASK, headers=headers)

        async def sfapi_submit(cl: httpx.AsyncClient, i: int) -> httpx.Response:
            data = {"job": "#!/bin/bash\ntrue\n", "isPath": "false"}
            return await cl.post(f"{hx}/api/v1.2/compute/jobs/perlmutter", data=data, headers=auth)

        async def echo(cl: httpx.AsyncClient, i: int) -> httpx.Response:
            return await cl.post(floor + "/echo", content=ONE_TASK)

        async def status(cl: httpx.AsyncClient, i: int) -> httpx.Response:
            return await cl.get(f"{hx}/api/v1/runs/{random.choice(ids)}", headers=auth)

        async def sfapi_status(cl: httpx.AsyncClient, i: int) -> httpx.Response:
            params = {"sacct": "true", "kwargs": f"jobid={random.choice(ids)}"}
            return await cl.get(
                f"{hx}/api/v1.2/compute/jobs/perlmutter", params=params, headers=auth
            )

        async def ping(cl: httpx.AsyncClient, i: int) -> httpx.Response:
            return await cl.get(floor + "/ping")

        async def list_runs(cl: httpx.AsyncClient, i: int) -> httpx.Response:
            return await cl.get(f"{hx}/api/v1/runs", headers=auth)

        # Reads first, on the prefilled database alone; then submissions, while the server
        # also drives the runs submitted so far (--max-runs 1), as it would in production.
        print(f"\nstatus latency, one at a time, {args.queries} queries, "
              f"{len(ids) * args.tasks:,} tasks in the database:")  # fmt: skip
        p50f, p99f = await latencies(c, ping, count=args.queries)
        print(f"  floor GET /ping               p50 {p50f:6.2f} ms  p99 {p99f:6.2f} ms")
        reads = (("GET /api/v1/runs/{id}", status), ("SFAPI GET compute/jobs?jobid", sfapi_status))
        for name, fn in reads:
            p50, p99 = await latencies(c, fn, count=args.queries)
            print(f"  {name:<29} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                  f"(p99 {p99 / p99f:.1f}x the floor)")  # fmt: skip
        kw = {"count": args.queries * 4, "seconds": args.seconds, "concurrency": args.concurrency}
        ping_rate, *_ = await rate(c, ping, **kw)
        list_rate, *_ = await rate(c, list_runs, **kw)
        print(f"\nGET requests/s (concurrency {args.concurrency}):")
        print(f"  floor GET /ping               {ping_rate:8.0f} /s")
        print(f"  GET /api/v1/runs (50 newest)  {list_rate:8.0f} /s  "
              f"({list_rate / ping_rate:.2f} of the floor)")  # fmt: skip
        kw = {"count": args.submits, "seconds": args.seconds, "concurrency": args.concurrency}
        floor_rate, *_ = await rate(c, echo, **kw)
        print(f"\nsubmissions (concurrency {args.concurrency}, at most {args.submits} "
              f"or {args.seconds:g} s each):")  # fmt: skip
        print(f"  floor POST /echo              {floor_rate:8.0f} /s")
        for name, fn in (("SFAPI POST compute/jobs", sfapi_submit), ("POST /api/v1/runs", submit)):
            per_s, done, failed = await rate(c, fn, **kw)
            print(f"  {name:<29} {per_s:8.0f} /s  ({done} ok, {failed} failed; "
                  f"{per_s / floor_rate:.2f} of the floor)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", default="sqlite", help="sqlite, or a postgresql+psycopg:// URL")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--tasks", type=int, default=100, help="tasks per prefilled run")
    p.add_argument("--submits", type=int, default=3000)
    p.add_argument("--seconds", type=float, default=10.0, help="bound of each rate phase")
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hexflow-bench-service-"))
    home = tmp / "home"
    db = f"sqlite:///{tmp / 'service.db'}" if args.db == "sqlite" else args.db
    print(f"database: {db.split('@')[-1]}; host: {os.cpu_count()} cpus")
    token, ids = prefill(home, db, args.runs, args.tasks)
    hx_port, floor_port = free_port(), free_port()
    log = tmp / "server.log"
    env = {**os.environ, "HEXFLOW_CPUS": "1"}
    with open(log, "ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "hexflow.cli.main", "--home", str(home), "server",
             "--port", str(hx_port), "--db", db, "--max-runs", "1", "--log-level", "warning"],
            stdout=out, stderr=out, env=env,
        )  # fmt: skip
        floor = subprocess.Popen(
            [sys.executable, "-c", FLOOR_APP, str(floor_port)], stdout=out, stderr=out
        )
    try:
        hx, fl = f"http://127.0.0.1:{hx_port}", f"http://127.0.0.1:{floor_port}"
        wait_up(hx + "/", server, log)
        wait_up(fl + "/ping", floor, log)
        asyncio.run(measure(args, hx, fl, token, ids))
    finally:
        for proc in (server, floor):
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
