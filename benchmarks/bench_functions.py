"""Function gateway benchmark: invocations per second through HTTP, event → function start
latency, and file arrival → function start latency, against a floor measured in the same run.

    .venv/bin/python benchmarks/bench_functions.py [--seconds 8] [--concurrency 48] [--json OUT]

Everything runs on loopback, one server at a time, each in its own process (one uvicorn
worker, access log off); the load comes from this process, with a small HTTP/1.1 client on
raw sockets (keep-alive connections, closed loop), so that the client is cheaper than any
server it drives. Durability is on everywhere: SQLite in WAL mode, synchronous=NORMAL.

* floor: a bare FastAPI endpoint (``async def``) that inserts one SQLite row and commits.
* hexflow sync: ``POST /api/v1/functions/noop/invoke`` (bearer token checked against the
  database on every request, arguments checked against the function's JSON Schema, the
  invocation and its events group-committed, run by a warm worker process, the result
  committed, then answered).
* hexflow async: the same with ``mode=async`` (answered once the invocation is committed).
* event → start: signed webhooks at ``--rate`` per second (open loop) to a trigger whose
  function returns when it started; latency = function start − the event's ``at``.
* file → start: files written (with a marker) into a watched inbox at 20 per second;
  latency = function start − when the marker was written.

The figures are bounded in count and time (``--seconds`` per phase) and printed with their
ratio to the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

FLOOR_APP = r"""
import sqlite3, sys
from fastapi import FastAPI, Request
import uvicorn
db = sqlite3.connect(sys.argv[2], isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, body TEXT)")
app = FastAPI()
@app.post("/call")
async def call(request: Request) -> dict:
    body = await request.body()
    cur = db.execute("INSERT INTO calls (body) VALUES (?)", (body.decode(),))
    return {"id": cur.lastrowid}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

HEXFLOW_APP = r"""
import sys
from pathlib import Path
import uvicorn
from hexflow.events import EventsConfig
from hexflow.service import ServiceConfig
from hexflow.service.api import create_app
from hexflow.settings import Settings
port, home, db = sys.argv[1:4]
settings = Settings.from_env(env={"HEXFLOW_HOME": home, "HEXFLOW_DB": db}, cwd=Path(home).parent)
config = ServiceConfig(settings=settings, events=EventsConfig(rate=0, poll_interval=0.02),
                       freeze_gc=True)  # as `hexflow server` does
app = create_app(config)
import gc; gc.collect(); gc.freeze()  # as `hexflow server` does
uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning", access_log=False)
"""

FUNCTIONS = r"""
import time

def noop() -> int:
    return 1

def started(event: dict | None = None) -> dict:
    return {"started": time.time(), "at": event["at"] if event else None,
            "name": (event or {}).get("data", {}).get("name")}
"""


# ---------------------------------------------------------------------- HTTP on raw sockets
class Conn:
    """One keep-alive HTTP/1.1 connection; requests one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError(f"{method} {path}: the server closed the connection")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return int(status_line.split()[1]), data

    def close(self) -> None:
        self.writer.close()


async def closed_loop(
    port: int, path: str, body: bytes, headers: dict[str, str], *, seconds: float, conns: int
) -> tuple[float, int, int]:
    """(requests per second answered 2xx, 2xx count, other count) over ``seconds``."""
    ok = bad = 0
    stop = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal ok, bad
        conn = await Conn.open(port)
        try:
            while time.perf_counter() < stop:
                status, _ = await conn.request("POST", path, body, headers)
                if 200 <= status < 300:
                    ok += 1
                else:
                    bad += 1
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conns)))
    return ok / (time.perf_counter() - t0), ok, bad


# ---------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(code: str, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=out,
            stderr=out,
            cwd=args[-1] if env else None,
            env=env,
        )


def wait_up(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# ---------------------------------------------------------------------- phases
async def bench_floor(tmp: Path, args: argparse.Namespace) -> float:
    port = free_port()
    log = tmp / "floor.log"
    proc = start(FLOOR_APP, str(port), str(tmp / "floor.db"), log=log)
    try:
        wait_up(port, proc, log)
        await closed_loop(port, "/call", b'{"x":1}', {}, seconds=1, conns=4)  # warm up
        rate, ok, bad = await closed_loop(
            port, "/call", b'{"x":1}', {"Content-Type": "application/json"},
            seconds=args.seconds, conns=args.concurrency,
        )  # fmt: skip
        print(f"  floor  POST /call (1 SQLite row)      {rate:8.0f} /s   ({ok} ok, {bad} errors)")
        return rate
    finally:
        stop(proc)


def setup_hexflow(tmp: Path) -> tuple[str, str, Path]:
    """Database with a user, a project and a token; returns (db url, token, home)."""
    home, db = tmp / "home", f"sqlite:///{tmp / 'hexflow.db'}"
    from hexflow.model.access import Role, parse_scopes
    from hexflow.service import Admin
    from hexflow.store.service_db import ServiceDb

    sdb = ServiceDb(db)
    admin = Admin(sdb, actor="bench")
    admin.create_user("bench")
    admin.create_project("bench", [("bench", Role.MEMBER)])
    token = admin.create_token("bench", "bench", parse_scopes("read,submit,invoke")).secret
    sdb.close()
    (tmp / "benchfns.py").write_text(FUNCTIONS)
    return db, token, home


async def bench_hexflow(tmp: Path, args: argparse.Namespace, floor: float) -> dict[str, Any]:
    db, token, home = setup_hexflow(tmp)
    port = free_port()
    log = tmp / "hexflow.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT / "src")])}
    proc = start(HEXFLOW_APP, str(port), str(home), db, str(tmp), log=log, env=env)
    if os.environ.get("BENCH_PYSPY"):  # profile the server (py-spy, collapsed stacks)
        seconds = os.environ.get("BENCH_PYSPY_SECONDS", "12")
        rate = os.environ.get("BENCH_PYSPY_RATE", "40")
        spy = [
            "py-spy", "record", "-o", os.environ["BENCH_PYSPY"], "-d", seconds, "-p", str(proc.pid),
            "--threads", "-r", rate, "--nonblocking", "-f", "raw",
        ]  # fmt: skip
        subprocess.Popen(spy)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    out: dict[str, Any] = {}
    try:
        wait_up(port, proc, log)
        conn = await Conn.open(port)
        for name, target, workers in (
            ("noop", "benchfns:noop", 2),
            ("started", "benchfns:started", 2),
        ):
            body = {"name": name, "import_path": target, "min_workers": workers,
                    "max_workers": workers}  # fmt: skip
            status, data = await conn.request(
                "POST", "/api/v1/functions", json.dumps(body).encode(), auth
            )
            assert status == 201, data
        await asyncio.sleep(1.0)  # the pools' workers boot
        path = "/api/v1/functions/noop/invoke"
        await closed_loop(port, path, b"{}", auth, seconds=1, conns=4)  # warm up
        for mode in ("sync", "async"):
            rate, ok, bad = await closed_loop(
                port, f"{path}?mode={mode}", b"{}", auth,
                seconds=args.seconds, conns=args.concurrency,
            )  # fmt: skip
            out[f"invoke_{mode}_per_s"] = rate
            print(f"  hexflow POST .../invoke ({mode:5})      {rate:8.0f} /s   ({ok} ok, {bad} "
                  f"errors)  {rate / floor:.2f} of the floor")  # fmt: skip
        await asyncio.sleep(2.0)  # let the async backlog drain before the latency phases
        conn.close()
        conn = await Conn.open(port)
        out.update(await bench_event_latency(port, conn, auth, args))
        conn.close()
        conn = await Conn.open(port)
        out.update(await bench_file_latency(port, conn, auth, tmp))
        conn.close()
        return out
    except Exception:
        print(log.read_text()[-3000:])
        raise
    finally:
        stop(proc)


async def _results(port: int, auth: dict[str, str], since: float, count: int) -> list[dict]:
    """The results of the newest ``count`` invocations of ``started`` (waits for them)."""
    conn = await Conn.open(port)  # a fresh one: an idle one may have been closed
    deadline = time.monotonic() + 60
    found: list[dict] = []
    while time.monotonic() < deadline:
        found, cursor = [], None
        while True:
            q = "/api/v1/invocations?function=started&limit=500" + (
                f"&cursor={cursor}" if cursor else ""
            )
            _, data = await conn.request("GET", q, b"", auth)
            page = json.loads(data)
            found += [i for i in page["items"] if i["created_at"] >= since]
            cursor = page["next_cursor"]
            if not cursor or (page["items"] and page["items"][-1]["created_at"] < since):
                break
        if len(found) >= count and all(i["state"] == "succeeded" for i in found):
            return found
        await asyncio.sleep(0.5)
    return found


async def bench_event_latency(
    port: int, conn: Conn, auth: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    from hexflow.events import signed_headers

    status, data = await conn.request(
        "POST",
        "/api/v1/triggers",
        json.dumps({"kind": "webhook", "function": "started"}).encode(),
        auth,
    )
    assert status == 201, data
    hook = json.loads(data)
    count = int(args.rate * args.latency_seconds)
    since = time.time()
    conns = [await Conn.open(port) for _ in range(16)]
    t0 = time.perf_counter()

    async def send(i: int) -> None:
        await asyncio.sleep(max(0.0, t0 + i / args.rate - time.perf_counter()))
        body = b"{}"
        headers = signed_headers(
            hook["secret"], body, timestamp=time.time(), nonce=uuid.uuid4().hex
        )
        c = conns[i % len(conns)]
        async with locks[i % len(conns)]:
            await c.request(
                "POST", hook["hook_url"], body, {**headers, "Content-Type": "application/json"}
            )

    locks = [asyncio.Lock() for _ in conns]
    await asyncio.gather(*(send(i) for i in range(count)))
    sent_rate = count / (time.perf_counter() - t0)
    for c in conns:
        c.close()
    results = await _results(port, auth, since, count)
    lat = [1000 * (i["result"]["started"] - i["result"]["at"]) for i in results if i["result"]]
    p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
    print(f"  event -> function start at {sent_rate:5.0f}/s   p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
          f"  ({len(lat)} of {count} calls)")  # fmt: skip
    return {"event_rate": sent_rate, "event_p50_ms": p50, "event_p99_ms": p99, "event_n": len(lat)}


async def bench_file_latency(
    port: int, conn: Conn, auth: dict[str, str], tmp: Path
) -> dict[str, Any]:
    inbox = tmp / "inbox"
    inbox.mkdir()
    body = {"kind": "file", "function": "started",
            "config": {"path": str(inbox), "marker": ".done"}}  # fmt: skip
    status, data = await conn.request("POST", "/api/v1/triggers", json.dumps(body).encode(), auth)
    assert status == 201, data
    await asyncio.sleep(1.0)  # the watch starts
    since = time.time()
    written: dict[str, float] = {}
    count = 100
    for i in range(count):
        name = f"shot{i:04d}.dat"
        (inbox / name).write_bytes(os.urandom(4096))
        (inbox / (name + ".done")).touch()
        written[name] = time.time()
        await asyncio.sleep(0.05)
    results = await _results(port, auth, since, count)
    lat = [
        1000 * (i["result"]["started"] - written[i["result"]["name"]])
        for i in results
        if i["result"] and i["result"]["name"] in written
    ]
    p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
    print(f"  file -> function start (20/s)        p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
          f"  ({len(lat)} of {count} files)")  # fmt: skip
    return {"file_p50_ms": p50, "file_p99_ms": p99, "file_n": len(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per throughput phase")
    ap.add_argument("--concurrency", type=int, default=48, help="keep-alive connections")
    ap.add_argument("--rate", type=float, default=500.0, help="webhooks per second (latency)")
    ap.add_argument("--latency-seconds", type=float, default=6.0, help="seconds of webhooks")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = ap.parse_args()
    print(f"hexflow function gateway benchmark  {time.strftime('%Y-%m-%dT%H:%M:%S')}  "
          f"nproc={os.cpu_count()}  load={os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hx-bench-fn-") as d:
        tmp = Path(d)
        floor = asyncio.run(bench_floor(tmp, args))
        figures = asyncio.run(bench_hexflow(tmp, args, floor))
    figures["floor_per_s"] = floor
    figures["sync_ratio"] = figures["invoke_sync_per_s"] / floor
    figures["async_ratio"] = figures["invoke_async_per_s"] / floor
    figures["load_after"] = os.getloadavg()[0]
    print(
        f"checks: sync {figures['invoke_sync_per_s']:.0f}/s vs target 3000/s; "
        f"event p99 {figures['event_p99_ms']:.1f} ms vs 20 ms; "
        f"file p99 {figures['file_p99_ms']:.1f} ms vs 100 ms; "
        f"load after {figures['load_after']:.2f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
