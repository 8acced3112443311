"""Engine benchmark: hexflow against Parsl, Dask distributed and a bare process pool.

    .venv/bin/python benchmarks/bench_engine.py [--quick] [--json out.json]

Workloads (full sizes; ``--quick`` shrinks them ~10x):

a) 10,000 independent no-op Python tasks: throughput (tasks/s)
b) a chain of 200 dependent no-op tasks: per-hop latency
c) 1,000 ``/bin/true`` shell tasks: throughput
d) a 5,000-task random DAG (each task depends on up to 3 earlier ones): wall time, memory

Every system gets 2 workers. Each (system, workload) runs in its own fresh Python
subprocess, one after the other, and each system is shut down before the next starts, so
the systems never share a machine at the same time.

Timed regions, the same for every system:

* ``cold``: from the moment the system is asked to start until it has shut down again:
  start the workers, run the workload, stop. For hexflow this is exactly the
  ``wf.run()`` call (opening the store, persisting the run and every task, starting the
  worker pool, running, persisting every state change, stopping the pool); building the
  workflow (``with hx.Workflow(...)``) is timed separately as ``build``. The store's
  schema is created once per fresh HEXFLOW_HOME by a 1-task warm-up run that is not
  counted (a user's home has its schema already).
* ``warm``: the workload alone, with the workers started and warmed up beforehand. hexflow
  has no API to pre-start its pool, so its warm figure is an estimate:
  ``cold(N tasks) - cold(1 task)``, i.e. the fixed start/stop cost of ``wf.run()`` is
  subtracted. This estimate is labelled ``warm*`` in the table.

The task functions live in this file and are imported by name in every worker (the
workers get this directory on PYTHONPATH), so no system pays for shipping code by value.
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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKERS = 2
FULL = {"a": 10_000, "b": 200, "c": 1_000, "d": 5_000}
QUICK = {"a": 1_000, "b": 50, "c": 100, "d": 500}
SEED = 20240601
MARK = "BENCH-RESULT "


# ---------------------------------------------------------------------- task functions
def noop(*args: Any) -> None:
    """The no-op task (takes its dependencies' results as arguments and ignores them)."""
    return None


def hop(prev: Any = None) -> float:
    """A chain link: returns when it started (wall clock of the worker)."""
    return time.time()


def true_argv() -> list[str]:
    """The hexflow shell task's command."""
    return ["/bin/true"]


def run_true() -> int:
    """The shell floor: one ``/bin/true`` from a pool worker."""
    return subprocess.run(["/bin/true"], check=True).returncode  # noqa: S603


# ---------------------------------------------------------------------- helpers
def random_dag(n: int, seed: int = SEED) -> list[list[int]]:
    """deps[i]: up to 3 distinct earlier tasks, chosen uniformly among all earlier ones."""
    import random

    rng = random.Random(seed)
    deps: list[list[int]] = []
    for i in range(n):
        k = min(i, rng.randint(0, 3))
        deps.append(sorted(rng.sample(range(i), k)) if k else [])
    return deps


def dag_depth(deps: list[list[int]]) -> int:
    level = [0] * len(deps)
    for i, ds in enumerate(deps):
        level[i] = 1 + max((level[d] for d in ds), default=0)
    return max(level, default=0)


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def vm_hwm(pid: int | str = "self") -> int:
    """Peak RSS (VmHWM) of a process, in bytes (0 if unknown).

    Not ``ru_maxrss``: that one also counts the memory a process had before its last exec,
    so a worker started with vfork+exec would report the size of the engine that spawned it.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ChildPeaks:
    """Samples the peak RSS of this process's children (hexflow's workers) in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        import threading

        self.peaks: dict[int, int] = {}
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children(self) -> list[int]:
        me = os.getpid()
        try:
            with open(f"/proc/{me}/task/{me}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._children():
                self.peaks[pid] = max(self.peaks.get(pid, 0), vm_hwm(pid))
            self._stop.wait(self._interval)

    def __enter__(self) -> ChildPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def hop_stats(stamps: list[float]) -> dict[str, float]:
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return {"hop_median_s": statistics.median(gaps), "hop_p95_s": pct(gaps, 0.95)}


# ---------------------------------------------------------------------- hexflow
def _hx_warmup(shell: bool) -> tuple[float, float]:
    """Two 1-task runs of the workload's kind of task: the first creates the store's
    schema, the second is the fixed cost of ``wf.run()`` (subtracted for ``warm*``)."""
    import hexflow as hx

    times = []
    for _ in range(2):
        with hx.Workflow("bench-warmup") as wf:
            (hx.shell(true_argv) if shell else hx.task(noop))()
        t0 = time.perf_counter()
        wf.run()
        times.append(time.perf_counter() - t0)
    return times[0], times[1]


def hexflow_case(workload: str, n: int) -> dict[str, Any]:
    import pickle

    import hexflow as hx

    first_s, fixed_s = _hx_warmup(shell=workload == "c")
    t_noop = hx.task(noop)
    out: dict[str, Any] = {"first_run_s": first_s, "fixed_s": fixed_s}
    rss_before_build = rss()
    t0 = time.perf_counter()
    with hx.Workflow(f"bench-{workload}") as wf:
        if workload == "a":
            futs = [t_noop() for _ in range(n)]
        elif workload == "b":
            t_hop = hx.task(hop)
            f = t_hop(None)
            futs = [f]
            for _ in range(n - 1):
                f = t_hop(f)
                futs.append(f)
        elif workload == "c":
            t_true = hx.shell(true_argv)
            futs = [t_true() for _ in range(n)]
        elif workload == "d":
            deps = random_dag(n)
            futs = []
            for ds in deps:
                futs.append(t_noop(*[futs[d] for d in ds]))
            out["dag_depth"] = dag_depth(deps)
            out["dag_edges"] = sum(map(len, deps))
    build_s = time.perf_counter() - t0
    rss_before_run = rss()
    with ChildPeaks() as workers:  # samples /proc 20 times a second, in a thread
        t0, c0 = time.perf_counter(), time.process_time()
        run = wf.run()
        cold_s = time.perf_counter() - t0
        cpu_s = time.process_time() - c0
    assert run.ok, run
    peak = vm_hwm()
    recs = [run.tasks[f.task_id] for f in futs]
    out.update(
        n=n,
        build_s=build_s,
        cold_s=cold_s,
        engine_cpu_s=cpu_s,
        warm_s=max(cold_s - fixed_s, 1e-9),
        span_s=max(r.ended_at for r in recs) - min(r.started_at for r in recs),
        rss_before_build=rss_before_build,
        rss_before_run=rss_before_run,
        peak_rss=peak,
        worker_peak_rss=max(workers.peaks.values(), default=0),
    )
    if workload == "b":
        stamps = [pickle.loads(r.result) for r in recs]
        out.update(hop_stats(stamps))
        gaps = [b.started_at - a.ended_at for a, b in zip(recs, recs[1:], strict=False)]
        out["stored_gap_median_s"] = statistics.median(gaps)
        out["stored_gap_p95_s"] = pct(gaps, 0.95)
    return out


# ---------------------------------------------------------------------- dask
def dask_case(workload: str, n: int) -> dict[str, Any]:
    import logging

    from distributed import Client, LocalCluster, wait

    logging.getLogger("distributed").setLevel(logging.ERROR)
    out: dict[str, Any] = {"n": n}
    t_cold = time.perf_counter()
    cluster = LocalCluster(
        n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    client.gather([client.submit(noop, i, pure=False) for i in range(4 * WORKERS)])
    out["startup_s"] = time.perf_counter() - t_cold
    rss_before_run = rss()
    t0, c0 = time.perf_counter(), time.process_time()
    if workload == "a":
        futs = [client.submit(noop, pure=False) for _ in range(n)]
        wait(futs)
    elif workload == "b":
        f = client.submit(hop, None, pure=False)
        futs = [f]
        for _ in range(n - 1):
            f = client.submit(hop, f, pure=False)
            futs.append(f)
        stamps = client.gather(futs)
    elif workload == "d":
        deps = random_dag(n)
        futs = []
        for ds in deps:
            futs.append(client.submit(noop, *[futs[d] for d in ds], pure=False))
        wait(futs)
    warm_s = time.perf_counter() - t0
    out["driver_cpu_s"] = time.process_time() - c0
    assert all(f.status == "finished" for f in futs)
    peak = vm_hwm()
    out["worker_peak_rss"] = max(client.run(vm_hwm).values())
    del futs
    t1 = time.perf_counter()
    client.close()
    cluster.close()
    out["shutdown_s"] = time.perf_counter() - t1
    out.update(
        warm_s=warm_s,
        cold_s=out["startup_s"] + warm_s + out["shutdown_s"],
        rss_before_run=rss_before_run,
        peak_rss=peak,
    )
    if workload == "b":
        out.update(hop_stats(stamps))
    return out


# ---------------------------------------------------------------------- parsl
def parsl_case(workload: str, n: int) -> dict[str, Any]:
    import parsl
    from parsl.app.app import python_app
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    out: dict[str, Any] = {"n": n}
    run_dir = tempfile.mkdtemp(prefix="bench-parsl-")
    config = Config(
        executors=[
            HighThroughputExecutor(
                label="htex",
                max_workers_per_node=WORKERS,
                cores_per_worker=1,
                encrypted=False,  # loopback only; encryption would only slow it down
                provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
            )
        ],
        run_dir=run_dir,
        strategy="none",
        # the first block is launched on the first strategy tick: the default period (5 s)
        # would add up to 5 s to Parsl's start-up
        strategy_period=0.5,
        initialize_logging=False,
        usage_tracking=0,
    )
    p_noop = python_app(noop, executors=["htex"])
    p_hop = python_app(hop, executors=["htex"])
    p_hwm = python_app(vm_hwm, executors=["htex"])
    t_cold = time.perf_counter()
    dfk = parsl.load(config)
    [f.result() for f in [p_noop(i) for i in range(4 * WORKERS)]]
    out["startup_s"] = time.perf_counter() - t_cold
    rss_before_run = rss()
    t0, c0 = time.perf_counter(), time.process_time()
    if workload == "a":
        futs = [p_noop() for _ in range(n)]
        for f in futs:
            f.result()
    elif workload == "b":
        f = p_hop(None)
        futs = [f]
        for _ in range(n - 1):
            f = p_hop(f)
            futs.append(f)
        stamps = [f.result() for f in futs]
    elif workload == "d":
        deps = random_dag(n)
        futs = []
        for ds in deps:
            futs.append(p_noop(*[futs[d] for d in ds]))
        for f in futs:
            f.result()
    warm_s = time.perf_counter() - t0
    out["driver_cpu_s"] = time.process_time() - c0
    peak = vm_hwm()
    out["worker_peak_rss"] = max(f.result() for f in [p_hwm() for _ in range(4 * WORKERS)])
    del futs
    t1 = time.perf_counter()
    dfk.cleanup()
    parsl.clear()
    out["shutdown_s"] = time.perf_counter() - t1
    out.update(
        warm_s=warm_s,
        cold_s=out["startup_s"] + warm_s + out["shutdown_s"],
        rss_before_run=rss_before_run,
        peak_rss=peak,
    )
    if workload == "b":
        out.update(hop_stats(stamps))
    return out


# ---------------------------------------------------------------------- bare pool
def pool_case(workload: str, n: int) -> dict[str, Any]:
    import queue
    from concurrent.futures import ProcessPoolExecutor

    out: dict[str, Any] = {"n": n}
    t_cold = time.perf_counter()
    pool = ProcessPoolExecutor(max_workers=WORKERS)
    [f.result() for f in [pool.submit(noop, i) for i in range(4 * WORKERS)]]
    out["startup_s"] = time.perf_counter() - t_cold
    rss_before_run = rss()
    t0, c0 = time.perf_counter(), time.process_time()
    if workload == "a":
        futs = [pool.submit(noop) for _ in range(n)]
        for f in futs:
            f.result()
    elif workload == "b":
        stamps = [pool.submit(hop, None).result()]
        for _ in range(n - 1):
            stamps.append(pool.submit(hop, stamps[-1]).result())
    elif workload == "c":
        futs = [pool.submit(run_true) for _ in range(n)]
        for f in futs:
            f.result()
    elif workload == "d":
        # a minimal dependency-counting dispatcher over the pool: the scheduling floor
        deps = random_dag(n)
        children: list[list[int]] = [[] for _ in range(n)]
        left = [len(ds) for ds in deps]
        for i, ds in enumerate(deps):
            for d in ds:
                children[d].append(i)
        done: queue.SimpleQueue[int] = queue.SimpleQueue()

        def launch(i: int) -> None:
            pool.submit(noop).add_done_callback(lambda _f, i=i: done.put(i))

        for i in range(n):
            if not left[i]:
                launch(i)
        for _ in range(n):
            i = done.get()
            for c in children[i]:
                left[c] -= 1
                if not left[c]:
                    launch(c)
    warm_s = time.perf_counter() - t0
    out["driver_cpu_s"] = time.process_time() - c0
    peak = vm_hwm()
    out["worker_peak_rss"] = max(f.result() for f in [pool.submit(vm_hwm) for _ in range(8)])
    t1 = time.perf_counter()
    pool.shutdown()
    out["shutdown_s"] = time.perf_counter() - t1
    out.update(
        warm_s=warm_s,
        cold_s=out["startup_s"] + warm_s + out["shutdown_s"],
        rss_before_run=rss_before_run,
        peak_rss=peak,
    )
    if workload == "b":
        out.update(hop_stats(stamps))
    return out


CASES = {"hexflow": hexflow_case, "dask": dask_case, "parsl": parsl_case, "pool": pool_case}
PLAN = {  # workload -> systems, in the order they run
    "a": ["hexflow", "parsl", "dask", "pool"],
    "b": ["hexflow", "parsl", "dask", "pool"],
    "c": ["hexflow", "pool"],
    "d": ["hexflow", "parsl", "dask", "pool"],
}


# ---------------------------------------------------------------------- orchestration
def child_main(system: str, workload: str, n: int) -> None:
    result = CASES[system](workload, n)
    print(MARK + json.dumps(result), flush=True)


def run_child(system: str, workload: str, n: int, timeout: float) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix=f"bench-{system}-{workload}-")
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        HEXFLOW_HOME=os.path.join(home, ".hexflow"),
        HEXFLOW_CPUS=str(WORKERS),
        PYTHONHASHSEED="0",
        # Parsl starts its interchange and worker pool as scripts found on PATH
        PATH=os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]),
    )
    env.pop("HEXFLOW_DB", None)
    code = f"import bench_engine; bench_engine.child_main({system!r}, {workload!r}, {n})"
    load_before = os.getloadavg()[0]
    try:
        proc = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            result: dict[str, Any] = json.loads(line[len(MARK) :])
            result["loadavg_before"] = load_before
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[:200]}


def median_result(results: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The repetition whose ``key`` is the median (so all its fields belong together)."""
    ok = [r for r in results if "error" not in r]
    if not ok:
        return results[-1]
    ok.sort(key=lambda r: r[key])
    chosen = dict(ok[(len(ok) - 1) // 2])
    chosen["repeats"] = len(ok)
    chosen[f"all_{key}"] = [r[key] for r in ok]
    return chosen


def machine_info() -> dict[str, Any]:
    import psutil

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod in ("hexflow", "parsl", "dask", "distributed", "sqlalchemy"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:  # noqa: BLE001
            versions[mod] = "not installed"
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "workers": WORKERS,
    }


# ---------------------------------------------------------------------- report
def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1e-3:
        return f"{x * 1e6:.0f} us"
    if x < 1:
        return f"{x * 1e3:.2f} ms"
    return f"{x:.2f} s"


def fmt_mib(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.1f} MiB"


def build_report(
    res: dict[str, dict[str, dict[str, Any]]], sizes: dict[str, int]
) -> dict[str, Any]:
    """Figures, ratios and verdicts from the raw results."""
    rows: list[list[str]] = []
    checks: list[dict[str, Any]] = []

    def systems(w: str) -> list[str]:
        return [s for s in PLAN[w] if s in res.get(w, {})]

    def get(w: str, s: str) -> dict[str, Any] | None:
        r = res.get(w, {}).get(s)
        return None if (r is None or "error" in r) else r

    def tps(r: dict[str, Any] | None, key: str) -> float | None:
        return None if r is None else r["n"] / r[key]

    def cpu(r: dict[str, Any]) -> str:
        if "engine_cpu_s" not in r:
            return ""
        return f", engine CPU {r['engine_cpu_s'] / r['n'] * 1e6:.0f} us/task"

    def check(name: str, value: float | None, target: str, ok: bool | None) -> None:
        checks.append({"check": name, "value": value, "target": target, "ok": ok})

    # a) throughput
    if "a" in res:
        n = sizes["a"]
        for s in systems("a"):
            r = get("a", s)
            if r is None:
                rows.append([f"a) {n} no-op", s, "error", res["a"].get(s, {}).get("error", ""), ""])
                continue
            warm_lbl = "warm*" if s == "hexflow" else "warm"
            rows.append(
                [
                    f"a) {n} no-op",
                    s,
                    f"{tps(r, 'cold_s'):,.0f} tasks/s cold",
                    f"{tps(r, 'warm_s'):,.0f} tasks/s {warm_lbl}",
                    f"cold {fmt_s(r['cold_s'])}"
                    + (f", build {fmt_s(r['build_s'])}" if "build_s" in r else "")
                    + cpu(r),
                ]
            )
        hx_r = get("a", "hexflow")
        peers = [p for p in (get("a", "parsl"), get("a", "dask")) if p]
        if hx_r and peers:
            for key, peer_key, label in (
                ("cold_s", "cold_s", "cold vs cold"),
                ("warm_s", "warm_s", "warm* vs warm"),
                ("cold_s", "warm_s", "hexflow cold vs peer warm"),
            ):
                best = max(tps(p, peer_key) or 0 for p in peers)
                ratio = (tps(hx_r, key) or 0) / best
                check(f"a) hexflow / best(parsl, dask), {label}", ratio, ">= 3x", ratio >= 3)
        pool = get("a", "pool")
        if hx_r and pool:
            for key, label in (("cold_s", "cold vs cold"), ("warm_s", "warm* vs warm")):
                ratio = (tps(hx_r, key) or 0) / (tps(pool, key) or 1)
                check(f"a) hexflow / bare pool, {label}", ratio, "(reference)", None)

    # b) chain latency
    if "b" in res:
        n = sizes["b"]
        for s in systems("b"):
            r = get("b", s)
            if r is None:
                rows.append([f"b) chain {n}", s, "error", res["b"].get(s, {}).get("error", ""), ""])
                continue
            extra = ""
            if "stored_gap_median_s" in r:
                extra = (
                    f"; stored gap median {fmt_s(r['stored_gap_median_s'])}"
                    f" p95 {fmt_s(r['stored_gap_p95_s'])}"
                )
            rows.append(
                [
                    f"b) chain {n}",
                    s,
                    f"hop median {fmt_s(r['hop_median_s'])}, p95 {fmt_s(r['hop_p95_s'])}",
                    f"warm/{n} = {fmt_s(r['warm_s'] / n)}; cold/{n} = {fmt_s(r['cold_s'] / n)}",
                    f"cold {fmt_s(r['cold_s'])}{extra}",
                ]
            )
        hx_r = get("b", "hexflow")
        if hx_r:
            v = hx_r["hop_median_s"]
            check("b) hexflow median hop latency (in-worker start to start)", v, "< 1 ms", v < 1e-3)
            v = hx_r["cold_s"] / n
            check("b) hexflow cold total / hops", v, "< 1 ms", v < 1e-3)
            v = hx_r["stored_gap_median_s"]
            check("b) hexflow median stored gap (start i+1 - end i)", v, "< 1 ms", v < 1e-3)

    # c) shell throughput
    if "c" in res:
        n = sizes["c"]
        for s in systems("c"):
            r = get("c", s)
            if r is None:
                rows.append(
                    [f"c) {n} /bin/true", s, "error", res["c"].get(s, {}).get("error", ""), ""]
                )
                continue
            warm_lbl = "warm*" if s == "hexflow" else "warm"
            rows.append(
                [
                    f"c) {n} /bin/true",
                    s,
                    f"{tps(r, 'cold_s'):,.0f} tasks/s cold",
                    f"{tps(r, 'warm_s'):,.0f} tasks/s {warm_lbl}",
                    f"cold {fmt_s(r['cold_s'])}" + cpu(r),
                ]
            )
        hx_r, pool = get("c", "hexflow"), get("c", "pool")
        if hx_r and pool:
            for key, label in (("cold_s", "cold vs cold"), ("warm_s", "warm* vs warm")):
                ratio = (tps(hx_r, key) or 0) / (tps(pool, key) or 1)
                check(f"c) hexflow / pool+subprocess floor, {label}", ratio, ">= 0.9", ratio >= 0.9)

    # d) random DAG
    if "d" in res:
        n = sizes["d"]
        for s in systems("d"):
            r = get("d", s)
            if r is None:
                rows.append([f"d) DAG {n}", s, "error", res["d"].get(s, {}).get("error", ""), ""])
                continue
            mem = f"peak RSS {fmt_mib(r['peak_rss'])}"
            per_task = (r["peak_rss"] - r["rss_before_run"]) / n
            mem += f", +{per_task / 1024:.1f} KiB/task during run"
            if "rss_before_build" in r:
                total = (r["peak_rss"] - r["rss_before_build"]) / n
                mem += f" ({total / 1024:.1f} KiB/task incl. build)"
            if "worker_peak_rss" in r:
                mem += f"; worker peak RSS {fmt_mib(r['worker_peak_rss'])}"
            mem += cpu(r)
            rows.append(
                [
                    f"d) DAG {n}",
                    s,
                    f"cold {fmt_s(r['cold_s'])}",
                    f"warm{'*' if s == 'hexflow' else ''} {fmt_s(r['warm_s'])}"
                    + (f", build {fmt_s(r['build_s'])}" if "build_s" in r else ""),
                    mem,
                ]
            )
        hx_r = get("d", "hexflow")
        if hx_r:
            check(
                "d) hexflow wall time (wf.run(), cold)",
                hx_r["cold_s"],
                "< 1.5 s",
                hx_r["cold_s"] < 1.5,
            )
            for s in ("parsl", "dask"):
                p = get("d", s)
                if p:
                    ratio = p["warm_s"] / hx_r["cold_s"]
                    check(f"d) {s} warm time / hexflow cold time", ratio, "(reference)", None)
    return {"rows": rows, "checks": checks}


def print_report(report: dict[str, Any], info: dict[str, Any]) -> None:
    print()
    print(
        f"hexflow engine benchmark  {info['date']}  nproc={info['nproc']}  "
        f"python {info['python']}  workers={info['workers']}"
    )
    print(f"cpu: {info['cpu']}  versions: {info['versions']}")
    headers = ["workload", "system", "figure", "figure", "details"]
    table = [headers] + report["rows"]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    print()
    print("checks (warm* = hexflow cold minus the cost of a 1-task wf.run(); see docstring)")
    for c in report["checks"]:
        v = c["value"]
        shown = (
            "-"
            if v is None
            else (fmt_s(v) if "ms" in c["target"] or " s" in c["target"] else f"{v:.2f}x")
        )
        verdict = {True: "PASS", False: "MISS", None: ""}[c["ok"]]
        print(f"  {c['check']:<62} {shown:>10}  target {c['target']:<12} {verdict}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition (smoke run)")
    ap.add_argument("--json", metavar="OUT", help="write raw results and the report as JSON")
    ap.add_argument(
        "--repeat", type=int, default=None, help="repetitions per case (default 3, quick 1)"
    )
    ap.add_argument("--only", default="abcd", help="workloads to run, e.g. 'ab' (default abcd)")
    ap.add_argument("--systems", default="hexflow,parsl,dask,pool", help="systems to run")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per case before giving up")
    args = ap.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    repeat = args.repeat or (1 if args.quick else 3)
    systems = set(args.systems.split(","))
    info = machine_info()
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    res: dict[str, dict[str, dict[str, Any]]] = {}
    for w in args.only:
        for s in PLAN[w]:
            if s not in systems:
                continue
            runs = []
            for i in range(repeat):
                t0 = time.perf_counter()
                r = run_child(s, w, sizes[w], args.timeout)
                runs.append(r)
                status = r.get("error") or (
                    f"cold {fmt_s(r['cold_s'])}, warm {fmt_s(r['warm_s'])}, "
                    f"load before {r['loadavg_before']:.2f}"
                )
                print(
                    f"[{w}] {s:<8} n={sizes[w]:<6} rep {i + 1}/{repeat}: {status} "
                    f"({time.perf_counter() - t0:.1f}s incl. process start)",
                    flush=True,
                )
                if "error" in r:
                    break
            raw.setdefault(w, {})[s] = runs
            res.setdefault(w, {})[s] = median_result(runs, "cold_s")
    report = build_report(res, sizes)
    print_report(report, info)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": info,
                    "sizes": sizes,
                    "repeat": repeat,
                    "results": res,
                    "raw": raw,
                    **report,
                },
                indent=2,
            )
        )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
