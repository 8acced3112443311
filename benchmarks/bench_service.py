"""Service-mode throughput and latency (issue 4), against a real ``hexflow server``.

Starts, on loopback: a ``hexflow server`` (uvicorn, durability on: every submission is
committed before the answer; ``--max-runs 1``, so it drives the runs submitted meanwhile)
on a database prefilled with RUNS x TASKS tasks, and a bare FastAPI app on the same stack
(uvicorn + FastAPI, one JSON route) as the floor; with ``--servers N``, N of each (the
hexflow servers on one database). The load comes from other processes (``--procs``, a
lean keep-alive HTTP/1.1 client on asyncio streams, ``--concurrency`` connections in all),
the same for the floor and for hexflow, bounded in count and time:

* submissions/s: POST /api/v1/runs (one-task YAML, each with an Idempotency-Key) and the
  SFAPI facade's POST /api/v1.2/compute/jobs/perlmutter, vs POST /echo of the floor; with
  the servers' CPU time per request and their group commits (from /metrics);
* status query latency (p50/p99, one request at a time): GET /api/v1/runs/{id} and
  GET /api/v1.2/compute/jobs/perlmutter?kwargs=jobid=ID, vs GET /ping of the floor;
* list requests/s: GET /api/v1/runs (50 newest), vs GET /ping.

    .venv/bin/python benchmarks/bench_service.py [--db sqlite|URL] [--runs 1000 --tasks 100]
        [--servers 1] [--procs 2 --concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from urllib.parse import urlencode

import httpx
import psutil

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
    if db.startswith("postgresql"):  # as autovacuum would soon: measure a settled database
        from sqlalchemy import text

        auto = store._engine.execution_options(isolation_level="AUTOCOMMIT")  # type: ignore[attr-defined]
        with auto.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
    store.close()
    print(f"prefilled {runs} runs x {tasks} tasks in {time.perf_counter() - started:.1f} s")
    return token, ids


# ---------------------------------------------------------------------- load generator
# Runs in its own processes (``--loadgen``), never in the server's: each keeps CONNS
# keep-alive HTTP/1.1 connections busy with a lean client on asyncio streams (httpx costs
# several times more CPU per request, which on a small host is CPU the servers lose).
# The floor and hexflow are driven by the same client, so the ratio is fair.


def _request(kind: str, i: int, host: str, token: str, ids: list[str]) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n"
    if kind == "echo":
        return _post("/echo", host, "", "application/yaml", ONE_TASK)
    if kind == "ping":
        return f"GET /ping HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    if kind == "submit":
        key = f"Idempotency-Key: {uuid.uuid4().hex}\r\n"
        return _post("/api/v1/runs", host, auth + key, "application/yaml", ONE_TASK)
    if kind == "sfapi_submit":
        form = urlencode({"job": "#!/bin/bash\ntrue\n", "isPath": "false"}).encode()
        path = "/api/v1.2/compute/jobs/perlmutter"
        return _post(path, host, auth, "application/x-www-form-urlencoded", form)
    if kind == "status":
        path = f"/api/v1/runs/{random.choice(ids)}"
    elif kind == "sfapi_status":
        query = urlencode({"sacct": "true", "kwargs": f"jobid={random.choice(ids)}"})
        path = f"/api/v1.2/compute/jobs/perlmutter?{query}"
    elif kind == "list":
        path = "/api/v1/runs"
    else:
        raise SystemExit(f"unknown request kind {kind!r}")
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()


def _post(path: str, host: str, headers: str, ctype: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    """Send one request, read the whole answer; its status code."""
    writer.write(raw)
    status = int((await reader.readline()).split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    servers: list[tuple[str, int]] = [tuple(s) for s in spec["servers"]]  # type: ignore[misc]
    count, deadline = spec["count"], time.monotonic() + spec["seconds"]
    ids: list[str] = spec["ids"]
    ok = failed = issued = 0
    times: list[float] = []
    statuses: dict[int, int] = {}

    async def connection(n: int) -> None:
        nonlocal ok, failed, issued
        host, port = servers[n % len(servers)]  # connections spread over the servers
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while issued < count and time.monotonic() < deadline:
                issued += 1
                raw = _request(spec["kind"], issued, f"{host}:{port}", spec["token"], ids)
                start = time.perf_counter()
                status = await _exchange(reader, writer, raw)
                times.append(time.perf_counter() - start)
                if status < 300:
                    ok += 1
                else:
                    failed += 1
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start, cpu = time.perf_counter(), time.process_time()
    first = spec["first"]
    await asyncio.gather(*(connection(first + n) for n in range(spec["conns"])))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "ok": ok,
        "failed": failed,
        "elapsed": elapsed,
        "cpu": cpu,
        "times": times,
        "statuses": statuses,
    }


def loadgen_main() -> None:
    """``--loadgen``: read a load spec (JSON) on stdin, print the outcome (JSON)."""
    spec = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_load(spec))))


def drive(
    urls: list[str], kind: str, *, token: str, ids: list[str], count: int, seconds: float,
    procs: int, conns: int,
) -> dict[str, Any]:  # fmt: skip
    """Run ``procs`` load-generator processes with ``conns`` connections each, spread
    over the servers at ``urls``, at most ``count`` requests in all and ``seconds``;
    requests/s over the slowest process."""
    servers = [(h, int(p)) for h, p in (u.removeprefix("http://").rsplit(":", 1) for u in urls)]
    children = []
    for n in range(procs):
        share = count // procs + (1 if n < count % procs else 0)
        spec = {"servers": servers, "kind": kind, "token": token, "ids": ids, "count": share,
                "seconds": seconds, "conns": conns, "first": n * conns}  # fmt: skip
        child = subprocess.Popen(
            [sys.executable, __file__, "--loadgen"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdin is not None
        child.stdin.write(json.dumps(spec))
        child.stdin.close()
        children.append(child)
    outs = []
    for child in children:
        assert child.stdout is not None
        outs.append(json.loads(child.stdout.read()))
        child.wait(seconds + 60)
    ok = sum(o["ok"] for o in outs)
    times = sorted(t * 1000 for o in outs for t in o["times"])
    statuses: dict[str, int] = {}
    for o in outs:
        for code, n in o["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    return {
        "rate": ok / max(o["elapsed"] for o in outs),
        "ok": ok,
        "failed": sum(o["failed"] for o in outs),
        "statuses": statuses,
        "p50": statistics.median(times) if times else 0.0,
        "p99": times[int(0.99 * (len(times) - 1))] if times else 0.0,
        "client_cpu_ms": sum(o["cpu"] for o in outs) * 1000 / max(1, len(times)),
    }


def group_commit(urls: list[str]) -> tuple[float, float, float]:
    """(transactions, writes, seconds) of the servers' group commits so far (/metrics)."""
    values: dict[str, float] = {}
    for url in urls:
        for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
            name, _, value = line.partition(" ")
            if name.startswith("hexflow_group_commit"):
                values[name] = values.get(name, 0.0) + float(value)
    names = ("hexflow_group_commits", "hexflow_group_commit_writes", "hexflow_group_commit_seconds")
    return values.get(names[0], 0.0), values.get(names[1], 0.0), values.get(names[2], 0.0)


def measure(
    args: argparse.Namespace,
    hx: list[str],
    floor: list[str],
    token: str,
    ids: list[str],
    pids: dict[str, int],
) -> None:
    servers = {url: psutil.Process(pid) for url, pid in pids.items()}

    def run(urls: list[str], kind: str, **kw: Any) -> dict[str, Any]:
        """One phase; with the servers' CPU time per request (all their threads)."""
        bounds = {"token": token, "ids": ids, "seconds": args.seconds}
        before = sum(sum(servers[u].cpu_times()[:2]) for u in urls)
        out = drive(urls, kind, **{**bounds, **kw})
        cpu = sum(sum(servers[u].cpu_times()[:2]) for u in urls) - before
        out["server_cpu_ms"] = cpu * 1000 / max(1, out["ok"] + out["failed"])
        return out

    one_hx, one_floor = hx[:1], floor[:1]  # latency: one request at a time, to one server

    one = {"count": args.queries, "procs": 1, "conns": 1}
    many = {"procs": args.procs, "conns": max(1, args.concurrency // args.procs)}
    if args.hold_driver:
        # One long run first: the server's one driver (--max-runs 1) is busy with it, so
        # the runs submitted below only queue: submissions measured without run driving.
        for url in hx:
            held = httpx.post(
                url + "/api/v1/runs",
                content=b"name: hold\ntasks:\n  nap:\n    command: [sleep, '3600']\n",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"},
                timeout=30,
            )
            assert held.status_code == 201, held.text
        print("the servers' run driver is held by a long run: nothing is driven meanwhile")
    for url in floor:  # warm up every server
        run([url], "ping", count=20, procs=1, conns=1)
    for url in hx:
        run([url], "status", count=20, procs=1, conns=1)
    # Reads first, on the prefilled database alone; then submissions, while the server
    # also drives the runs submitted so far (--max-runs 1), as it would in production.
    print(f"\nstatus latency, one at a time from a second process, {args.queries} queries, "
          f"{len(ids) * args.tasks:,} tasks in the database:")  # fmt: skip
    f = run(one_floor, "ping", **one)
    print(f"  floor GET /ping               p50 {f['p50']:6.2f} ms  p99 {f['p99']:6.2f} ms")
    reads = (("GET /api/v1/runs/{id}", "status"), ("SFAPI GET compute/jobs?jobid", "sfapi_status"))
    for name, kind in reads:
        r = run(one_hx, kind, **one)
        assert r["failed"] == 0, r
        print(f"  {name:<29} p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
              f"(p99 {r['p99'] / f['p99']:.1f}x the floor)")  # fmt: skip
    conc = f"{args.procs} processes x {many['conns']} connections"
    if len(hx) > 1:
        conc += f", spread over {len(hx)} server processes"
    ping = run(floor, "ping", count=args.queries * 4, **many)
    lst = run(hx, "list", count=args.queries * 4, **many)
    print(f"\nGET requests/s ({conc}):")
    print(f"  floor GET /ping               {ping['rate']:8.0f} /s")
    print(f"  GET /api/v1/runs (50 newest)  {lst['rate']:8.0f} /s  "
          f"({lst['rate'] / ping['rate']:.2f} of the floor)")  # fmt: skip
    echo = run(floor, "echo", count=args.submits, **many)
    print(f"\nsubmissions ({conc}, at most {args.submits} or {args.seconds:g} s each):")
    print(f"  floor POST /echo              {echo['rate']:8.0f} /s  "
          f"(p50 {echo['p50']:.1f} ms, p99 {echo['p99']:.1f} ms; server CPU "
          f"{echo['server_cpu_ms']:.2f} ms/request)")  # fmt: skip
    posts = [("SFAPI POST compute/jobs", "sfapi_submit"), ("POST /api/v1/runs", "submit")]
    for name, kind in posts:
        before = group_commit(hx)
        r = run(hx, kind, count=args.submits, **many)
        commits, writes, busy = (a - b for a, b in zip(group_commit(hx), before, strict=True))
        print(f"  {name:<29} {r['rate']:8.0f} /s  ({r['ok']} ok, {r['failed']} failed "
              f"{r['statuses'] or ''}; {r['rate'] / echo['rate']:.2f} of the floor; "
              f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms; server CPU "
              f"{r['server_cpu_ms']:.2f} ms/request)")  # fmt: skip
        each = max(commits, 1)
        print(f"  {'':<29} group commit: {commits:.0f} transactions, {writes / each:.1f} "
              f"requests each, {busy * 1000 / each:.2f} ms each")  # fmt: skip
    print(f"  (load generators: {echo['client_cpu_ms']:.2f} ms CPU per request)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", default="sqlite", help="sqlite, or a postgresql+psycopg:// URL")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--tasks", type=int, default=100, help="tasks per prefilled run")
    p.add_argument("--submits", type=int, default=3000)
    p.add_argument("--seconds", type=float, default=10.0, help="bound of each rate phase")
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=16, help="connections in all")
    p.add_argument("--procs", type=int, default=2, help="load-generator processes")
    p.add_argument(
        "--servers",
        type=int,
        default=1,
        help="hexflow server processes on one database (and as many floor processes); "
        "the load generators spread their connections over them",
    )
    p.add_argument(
        "--hold-driver",
        action="store_true",
        help="keep the server's one run driver busy with a long run, so that submissions "
        "are measured without the runs being driven meanwhile",
    )
    p.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.loadgen:
        return loadgen_main()
    tmp = Path(tempfile.mkdtemp(prefix="hexflow-bench-service-"))
    home = tmp / "home"
    db = f"sqlite:///{tmp / 'service.db'}" if args.db == "sqlite" else args.db
    print(f"database: {db.split('@')[-1]}; host: {os.cpu_count()} cpus")
    token, ids = prefill(home, db, args.runs, args.tasks)
    log = tmp / "server.log"
    env = {**os.environ, "HEXFLOW_CPUS": "1"}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    hx: list[str] = []
    fl: list[str] = []
    out = open(log, "ab")  # noqa: SIM115 - the servers write to it until they stop
    try:
        for _ in range(args.servers):
            port = free_port()
            hx.append(f"http://127.0.0.1:{port}")
            procs[hx[-1]] = subprocess.Popen(
                [sys.executable, "-m", "hexflow.cli.main", "--home", str(home), "server",
                 "--port", str(port), "--db", db, "--max-runs", "1", "--log-level", "warning"],
                stdout=out, stderr=out, env=env,
            )  # fmt: skip
            wait_up(hx[-1] + "/", procs[hx[-1]], log)  # one at a time: each resumes nothing
            port = free_port()
            fl.append(f"http://127.0.0.1:{port}")
            procs[fl[-1]] = subprocess.Popen(
                [sys.executable, "-c", FLOOR_APP, str(port)], stdout=out, stderr=out
            )
        for url in fl:
            wait_up(url + "/ping", procs[url], log)
        measure(args, hx, fl, token, ids, {url: proc.pid for url, proc in procs.items()})
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(30)
        out.close()


if __name__ == "__main__":
    main()
