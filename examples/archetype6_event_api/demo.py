"""Archetype 6 (event-triggered, API-driven) as demo 6: a hexflow server, an external
experiment posting signed webhooks, functions that submit simulation jobs and react to
their completion, a results database, and the status endpoints showing all of it.

This module owns the demo's steps and its report::

    experiment --signed webhook--> gateway --webhook.received--> on_shot (function)
        on_shot: shots table row; ctx.submit(shower job); ctx.on_completion(run, postprocess)
    shower job (simulate -> reduce) --run.succeeded--> postprocess (function): results row

``run(workdir)``, registered as demo 6, starts ``hexflow server`` on a free loopback port
with its database under ``workdir`` (nothing to start by hand), creates the experiment's
account with ``hexflow admin``, registers the functions and the webhook with the SDK, runs
the experiment as its own process, waits for the results, reads the status endpoints, and
stops the server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from hexflow_examples.archetype6_event_api import results
from hexflow_examples.registry import register

import hexflow as hx

TITLE = "Event-driven API: webhooks, functions, jobs, results"
DESCRIPTION = (
    "An external experiment posts signed webhook events to a hexflow server; the gateway "
    "routes each to a registered function, which records the shot, submits a shower "
    "simulation job and asks to be called back on its completion; the completion event "
    "triggers post-processing, which writes the result to a SQLite results database. A "
    "replayed or unsigned request is refused, a shot that cannot be simulated fails its "
    "function with a traceback, and the status endpoints show every run, invocation and event."
)
PROJECT, USER = "beamline", "experimenter"
ENERGIES = (40.0, 150.0, 600.0, 2500.0)  # GeV, one shot each
BAD_ENERGIES = (0.05,)  # below the shower threshold: on_shot refuses it
FUNCTIONS = "hexflow_examples.archetype6_event_api.functions"
PASS_THROUGH_ENV = ("HEXFLOW_KILL_GRACE",)
WAIT = 120.0  # seconds the demo waits for every result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """``hexflow server`` as a child process on a free loopback port, home under workdir."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.home = workdir / ".hexflow"
        self.db = f"sqlite:///{workdir / 'service.db'}"
        self.log = workdir / "server.log"
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        keep = {k: os.environ[k] for k in PASS_THROUGH_ENV if os.environ.get(k)}
        self.env = {
            **os.environ,
            **keep,
            "HEXFLOW_HOME": str(self.home),
            "HEXFLOW_DB": self.db,
            "HEXFLOW_CPUS": "2",
        }
        self.env.pop("HEXFLOW_SITES", None)  # this machine only

    def hexflow(self, *args: str) -> str:
        """``hexflow ARGS`` against the demo's home and database, as an operator types it."""
        done = subprocess.run(
            [sys.executable, "-m", "hexflow.cli.main", *args],
            env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise hx.HexflowError(f"hexflow {' '.join(args[:3])} failed: {done.stderr[-800:]}")
        return done.stdout

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = [
            sys.executable, "-m", "hexflow.cli.main", "server", "--port", str(port),
            "--db", self.db, "--max-runs", "4", "--log-level", "warning",
        ]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                args, env=self.env, cwd=self.workdir, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise hx.HexflowError(f"the server exited: {self.log.read_text()[-1500:]}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise hx.HexflowError(f"the server did not answer in 60 s (see {self.log})")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def fresh(workdir: Path) -> tuple[Path, Path]:
    """The demo's own files from an earlier run in ``workdir`` go first."""
    for name in (
        "service.db", "service.db-wal", "service.db-shm", "results.db", "sent.json",
        "server.log", "hook.secret",
    ):  # fmt: skip
        (workdir / name).unlink(missing_ok=True)
    outdir = workdir / "showers"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    return workdir / "results.db", outdir


def setup(server: Server, client: hx.Client, results_db: Path, outdir: Path) -> dict[str, Any]:
    """Register the two functions and the experiment's webhook; returns the webhook."""
    client.register_function("on_shot", import_path=f"{FUNCTIONS}:on_shot", timeout="1m")
    client.register_function(
        "postprocess", import_path=f"{FUNCTIONS}:postprocess", timeout="1m", max_workers=2
    )
    hook = client.create_trigger(
        "webhook", "on_shot", name="experiment",
        args={"results_db": str(results_db), "outdir": str(outdir)},
    )  # fmt: skip
    secret = server.workdir / "hook.secret"
    secret.touch(mode=0o600)
    secret.chmod(0o600)
    secret.write_text(hook["secret"] + "\n")
    return hook


def run_experiment(server: Server, hook: dict[str, Any]) -> dict[str, Any]:
    """The experiment, as its own process: it knows the hook's URL and secret only."""
    out = server.workdir / "sent.json"
    energies = ",".join(str(e) for e in ENERGIES)
    done = subprocess.run(
        [sys.executable, "-m", "hexflow_examples.archetype6_event_api.experiment",
         "--url", server.url + hook["hook_url"],
         "--secret-file", str(server.workdir / "hook.secret"),
         "--energies", energies, "--bad", ",".join(str(e) for e in BAD_ENERGIES),
         "--interval", "0.1", "--out", str(out)],
        cwd=server.workdir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if not out.exists():
        raise hx.HexflowError(f"the experiment failed: {done.stderr[-1500:]}")
    sent: dict[str, Any] = json.loads(out.read_text())
    sent["returncode"] = done.returncode
    return sent


def wait_for_results(client: hx.Client, results_db: Path) -> bool:
    """Whether every shot's result is in and no function call is still going on."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        rows = results.read(results_db)["results"] if results_db.exists() else []
        busy = [
            i for i in client.invocations(project=PROJECT) if i["state"] in ("queued", "running")
        ]
        if len(rows) >= len(ENERGIES) and not busy:
            return True
        time.sleep(0.2)
    return False


def status(client: hx.Client) -> dict[str, Any]:
    """What the status endpoints show: runs, invocations, triggers, pools, sites, events."""
    return {
        "runs": [client.get_run(r["id"]) for r in client.runs(project=PROJECT)],
        "invocations": client.invocations(project=PROJECT),
        "triggers": client.triggers(project=PROJECT),
        "pools": client.function_pools(),
        "sites": [{"name": s["name"], "state": s["state"]} for s in client.sites()],
        "events": list(client.iter_events(0, project=PROJECT)),
    }


def report(
    sent: dict[str, Any], seen: dict[str, Any], db: dict[str, list[dict[str, Any]]], done: bool
) -> dict[str, Any]:
    """The figures of the demo, its checks, and the summary table."""
    good = [s for s in sent["sent"] if s["shot"]["energy"] not in BAD_ENERGIES]
    bad = [s for s in sent["sent"] if s["shot"]["energy"] in BAD_ENERGIES]
    runs = {r["id"]: r for r in seen["runs"]}
    by_shot = {r["shot"]: r for r in db["results"]}
    calls = seen["invocations"]
    on_shot = {c["args"].get("shot"): c for c in calls if c["function"] == "on_shot"}
    post = [c for c in calls if c["function"] == "postprocess"]
    kinds = Counter(e["kind"] for e in seen["events"])
    events = {e["seq"]: e for e in seen["events"]}
    sent_at = {s["shot"]["shot"]: s["sent_at"] for s in good}
    latency = {
        shot: round(row["written_at"] - sent_at[shot], 3)
        for shot, row in by_shot.items()
        if shot in sent_at
    }
    refused = [on_shot.get(s["shot"]["shot"]) for s in bad]
    checks = {
        "every_result_in_time": done,
        "every_shot_accepted": bool(good) and all(s["status"] == 202 for s in good),
        "replayed_request_refused": sent["replay_status"] == 401,
        "unsigned_request_refused": sent["unsigned_status"] == 401,
        "one_simulation_job_per_shot": len(runs) == len(good)
        and all(r["state"] == "succeeded" for r in runs.values()),
        "every_result_written": sorted(by_shot) == sorted(sent_at)
        and all(r["run_state"] == "succeeded" for r in by_shot.values()),
        "shower_maximum_within_half_a_radiation_length": bool(by_shot)
        and all(abs(r["deviation"]) < 0.5 for r in by_shot.values()),
        "bad_shot_failed_with_traceback": bool(refused)
        and all(
            c is not None
            and c["state"] == "failed"
            and "critical energy" in (c["error"] or "")
            and "check_energy" in (c["traceback"] or "")
            for c in refused
        ),
        "postprocess_called_by_completion_events": len(post) == len(good)
        and all(
            events.get(int(c["source"].removeprefix("event:")), {}).get("kind") == "run.succeeded"
            for c in post
        ),
        "event_log_complete": kinds["webhook.received"] == len(sent["sent"])
        and kinds["run.succeeded"] == len(good)
        and kinds["function.finished"] >= 2 * len(good) + len(bad),
    }
    rows = []
    for s in sent["sent"]:
        shot = s["shot"]["shot"]
        r = by_shot.get(shot, {})
        call = on_shot.get(shot) or {}
        rows.append(
            [
                shot,
                s["shot"]["energy"],
                s["status"],
                call.get("state", "-"),
                r.get("run_id", "-"),
                r.get("run_state", "-"),
                r.get("t_max", "-"),
                r.get("t_max_expected", "-"),
                latency.get(shot, "-"),
            ]
        )
    latencies = sorted(latency.values())
    return {
        "ok": all(checks.values()),
        "run_id": None,
        "tasks": dict(sum((Counter(r["tasks"]) for r in runs.values()), Counter())),
        "checks": checks,
        "shots": len(good),
        "bad_shots": len(bad),
        "latency_seconds": {
            "webhook_to_result_p50": latencies[len(latencies) // 2] if latencies else None,
            "webhook_to_result_max": latencies[-1] if latencies else None,
        },
        "events": dict(sorted(kinds.items())),
        "invocations": dict(Counter(f"{c['function']}:{c['state']}" for c in calls)),
        "runs": {rid: r["state"] for rid, r in runs.items()},
        "triggers": [
            {k: t[k] for k in ("kind", "function", "fired", "enabled")} for t in seen["triggers"]
        ],
        "pools": seen["pools"],
        "sites": seen["sites"],
        "results": db["results"],
        "table": {
            "title": "demo 6: shots, their jobs and results",
            "columns": [
                "shot",
                "energy GeV",
                "webhook",
                "on_shot",
                "job",
                "job state",
                "t_max X0",
                "expected X0",
                "latency s",
            ],
            "rows": rows,
        },  # fmt: skip
    }


@register(6, TITLE, DESCRIPTION)
def run(workdir: Path) -> dict[str, Any]:
    workdir = Path(workdir).resolve()
    results_db, outdir = fresh(workdir)
    server = Server(workdir)
    server.hexflow("admin", "user", "create", USER)
    server.hexflow("admin", "project", "create", PROJECT, "--member", USER)
    token = json.loads(
        server.hexflow(
            "admin", "token", "create", "--user", USER, "--project", PROJECT,
            "--scopes", "read,submit,invoke", "--label", "demo 6", "--json",
        )
    )["token"]  # fmt: skip
    server.start()
    try:
        with hx.Client(server.url, token, project=PROJECT) as client:
            hook = setup(server, client, results_db, outdir)
            sent = run_experiment(server, hook)
            done = wait_for_results(client, results_db)
            seen = status(client)
    finally:
        server.stop()
    figures = report(sent, seen, results.read(results_db), done)
    figures.update(
        server=server.url,
        results_database=str(results_db),
        server_log=str(server.log),
        experiment_exit_code=sent["returncode"],
    )
    return figures
