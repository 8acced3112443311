"""Crash safety, for real: ``kill -9`` the process driving a run at random moments, resume,
and check that no recorded success is ever executed again and that the run completes.

Also the run's owner lease: a resume takes over a run whose driver is dead, and is refused
while the driver is alive.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from hexflow.model import TaskState
from hexflow.settings import Settings
from hexflow.store import SqlStore
from tests.helpers import live, run_cli, wait_for

pytestmark = pytest.mark.timeout(300)

# Every task appends "task_id attempt" to the journal (fsynced) when it starts to run.
FLOW = """
import os
import time

import hexflow as hx

JOURNAL = {journal!r}


def journal():
    line = f"{{os.environ['HEXFLOW_TASK_ID']}} {{os.environ['HEXFLOW_ATTEMPT']}}\\n"
    fd = os.open(JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@hx.task
def step(*values, ms=5):
    journal()
    time.sleep(ms / 1000)
    return sum(values) + 1


def build(step):
    root = step(ms=40)
    fan_out = [step(root, ms=20 + i % 4 * 30) for i in range(16)]
    chains = [step(x, ms=40) for x in fan_out]
    joins = [step(*chains[i * 4:(i + 1) * 4], ms=60) for i in range(4)]
    second = [step(joins[i % 4], ms=20 + i % 3 * 40) for i in range(16)]
    tails = [step(x, ms=40) for x in second[:6]]
    return step(*second, *tails, *joins, ms=20)


if __name__ == "__main__":
    with hx.Workflow("crashy") as wf:
        build(step)
    wf.run()
"""
N_TASKS = 60
FINAL_TASK = f"step-{N_TASKS}"


def expected_final() -> int:
    """The value the DAG of FLOW computes, evaluated here without hexflow."""
    namespace: dict[str, Any] = {}
    exec(FLOW.format(journal="/dev/null"), namespace)  # noqa: S102 - our own constant

    def step(*values: int, ms: int = 0) -> int:
        return sum(values) + 1

    return int(namespace["build"](step))


# ---------------------------------------------------------------- helpers
def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEXFLOW_")}
    env.update(HEXFLOW_HOME=str(home), HEXFLOW_KILL_GRACE="0.5", HEXFLOW_CPUS="4")
    return env


def start_cli(where: Path, home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hexflow.cli.main", *args],
        cwd=where,
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli(
    where: Path, home: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_cli(where, cli_env(home), *args, timeout=timeout)


def cli_json(where: Path, home: Path, *args: str) -> Any:
    proc = cli(where, home, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def workers_of(home: Path) -> list[psutil.Process]:
    """Live hexflow worker processes started for ``home`` (their scratch dir is in it)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if "hexflow.executors.local.worker" in cmdline and str(home) in " ".join(cmdline):
            found.append(proc)
    return found


def kill_hard(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def open_store(home: Path) -> SqlStore:
    return SqlStore(Settings.from_env(env={"HEXFLOW_HOME": str(home)}).db_url)


def stored_states(home: Path, run_id: str) -> dict[str, TaskState]:
    store = open_store(home)
    try:
        return {t.id: t.state for t in store.load_tasks(run_id)}
    finally:
        store.close()


def journal_lines(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(t, int(a)) for t, a in (line.split() for line in path.read_text().splitlines())]


@dataclass
class Kill:
    journal_len: int  # journal lines written before the kill (and by its orphans)
    succeeded: set[str]  # tasks the store recorded as succeeded at the kill
    in_flight: set[str]  # tasks the store recorded as running at the kill


# ---------------------------------------------------------------- the randomized test
def crash_and_resume(seed: int, where: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    where.mkdir()
    home = where / ".hexflow"
    journal = where / "journal.txt"
    script = where / "flow.py"
    script.write_text(FLOW.format(journal=str(journal)))

    run_id: str | None = None
    kills: list[Kill] = []
    finished: subprocess.CompletedProcess[str] | None = None
    for _ in range(rng.randint(1, 4)):
        args = ("resume", run_id) if run_id else ("run", str(script))
        proc = start_cli(where, home, *args, "--json")
        try:
            proc.wait(timeout=rng.uniform(0.05, 1.5))
        except subprocess.TimeoutExpired:
            kill_hard(proc)
        else:  # it finished before the kill
            out, err = proc.communicate()
            finished = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            break
        # orphaned workers notice the closed pipe and exit on their own
        wait_for(lambda: not workers_of(home), 10, f"orphan workers to exit (seed {seed})")
        if run_id is None:
            runs = cli_json(where, home, "status") if home.exists() else []
            if not runs:
                continue  # killed before the run was created: start it again
            assert len(runs) == 1, runs
            run_id = str(runs[0]["run_id"])
        # what the store holds now is what the dead process committed (read in-process:
        # a `hexflow tasks` per kill would cost half a second each)
        states = stored_states(home, run_id)
        kills.append(
            Kill(
                journal_len=len(journal_lines(journal)),
                succeeded={t for t, s in states.items() if s is TaskState.SUCCEEDED},
                in_flight={t for t, s in states.items() if s.in_flight},
            )
        )

    if finished is None:
        args = ("resume", run_id) if run_id else ("run", str(script))
        finished = cli(where, home, *args, "--json", timeout=120)
    assert finished.returncode == 0, (seed, finished.stdout, finished.stderr)
    if run_id is None:
        run_id = str(json.loads(finished.stdout)["run_id"])

    # ---- the run completed, every task once in the store
    status = cli_json(where, home, "status", run_id)
    assert status["state"] == "succeeded", (seed, status)
    assert status["owner"] is None
    tasks = cli_json(where, home, "tasks", run_id)
    assert len(tasks) == N_TASKS
    assert {t["state"] for t in tasks} == {"succeeded"}, seed
    store = open_store(home)
    try:
        final = store.get_task(run_id, FINAL_TASK)
    finally:
        store.close()
    assert pickle.loads(final.result or b"") == expected_final(), seed

    # ---- the journal: every task ran; nothing recorded as done ran again
    lines = journal_lines(journal)
    runs_of = Counter(task for task, _ in lines)
    assert set(runs_of) == {t["task_id"] for t in tasks}, seed
    for k, kill in enumerate(kills):
        again = {task for task, _ in lines[kill.journal_len :]} & kill.succeeded
        assert not again, f"seed {seed}: recorded successes ran again after kill {k}: {again}"
    for task, count in runs_of.items():
        allowed = 1 + sum(task in kill.in_flight for kill in kills)
        assert count <= allowed, (
            f"seed {seed}: {task} ran {count} times, in flight at {allowed - 1} kills"
        )
    # a requeue after a crash is not a failed attempt
    assert {a for _, a in lines} == {1}, seed
    assert not workers_of(home), f"seed {seed}: workers left behind"
    mid_run = sum(bool(k.in_flight) or 0 < len(k.succeeded) < N_TASKS for k in kills)
    return {"kills": len(kills), "mid_run": mid_run, "reruns": len(lines) - len(runs_of)}


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tmp_path: Path) -> None:
    seeds = range(9)
    outcomes = [crash_and_resume(seed, tmp_path / f"seed{seed}") for seed in seeds]
    # the random kills did land in the middle of runs, and in-flight tasks were re-run
    # (a typical schedule of 9 seeds gives about 12 mid-run kills; 5 leaves room for a
    # slow machine)
    assert sum(o["mid_run"] for o in outcomes) >= 5, outcomes
    assert any(o["reruns"] for o in outcomes), outcomes


# ---------------------------------------------------------------- the owner lease
GATED = """
import os
import time

import hexflow as hx


@hx.task
def gated(gate, marks):
    with open(marks, "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.02)
    return "through"


@hx.task
def shout(x):
    return x + "!"


with hx.Workflow("gated") as wf:
    shout(gated({gate!r}, {marks!r}))
wf.run()
"""


@dataclass
class Gated:
    where: Path
    home: Path
    gate: Path
    marks: Path
    script: Path

    @classmethod
    def create(cls, where: Path) -> Gated:
        gated = cls(where, where / ".hexflow", where / "gate", where / "marks", where / "flow.py")
        gated.script.write_text(GATED.format(gate=str(gated.gate), marks=str(gated.marks)))
        return gated

    def marks_lines(self) -> list[int]:
        return [int(x) for x in self.marks.read_text().split()] if self.marks.exists() else []

    def start(self) -> tuple[subprocess.Popen[str], str, int]:
        """Start `hexflow run`; wait until the gated task runs; return proc, run id, worker pid."""
        proc = start_cli(self.where, self.home, "run", str(self.script), "--json")
        worker = wait_for(self.marks_lines, 30, "the gated task to start")[0]
        runs = cli_json(self.where, self.home, "status")
        assert len(runs) == 1 and runs[0]["state"] == "running", runs
        return proc, str(runs[0]["run_id"]), worker


def test_resume_is_refused_while_the_owner_is_alive(tmp_path: Path) -> None:
    g = Gated.create(tmp_path)
    proc, run_id, _ = g.start()
    try:
        refused = cli(tmp_path, g.home, "resume", run_id)
        assert refused.returncode == 3, refused
        assert f"run {run_id} is being driven by another live process" in refused.stderr
        assert f":{proc.pid}:" in refused.stderr  # it names the owner
        assert "hexflow cancel" in refused.stderr
        status = cli_json(tmp_path, g.home, "status", run_id)
        assert f":{proc.pid}:" in status["owner"]  # the lease stayed with the owner
        g.gate.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill_hard(proc)
    assert proc.returncode == 0, err
    assert json.loads(out)["state"] == "succeeded"
    assert len(g.marks_lines()) == 1  # the refused resume ran nothing


def test_resume_takes_over_from_a_killed_owner(tmp_path: Path) -> None:
    g = Gated.create(tmp_path)
    proc, run_id, worker = g.start()
    try:
        # kill -9 and leave it unreaped for now: a zombie holds no run
        os.kill(proc.pid, signal.SIGKILL)
        wait_for(lambda: not live(proc.pid), 10, "the owner to die")
        # its worker, busy with the gated task, goes down with it
        wait_for(lambda: not live(worker), 5, "the orphaned worker to exit")
        assert cli_json(tmp_path, g.home, "status", run_id)["owner"]  # stale, still recorded

        resume = start_cli(tmp_path, g.home, "resume", run_id, "--json")
        try:
            wait_for(
                lambda: resume.poll() is not None or len(g.marks_lines()) == 2,
                30,
                "the requeued task to start",
            )
            g.gate.touch()
            out, err = resume.communicate(timeout=60)
        finally:
            if resume.poll() is None:
                kill_hard(resume)
    finally:
        proc.communicate()
    assert resume.returncode == 0, err
    assert json.loads(out)["state"] == "succeeded"
    status = cli_json(tmp_path, g.home, "status", run_id)
    assert status["state"] == "succeeded" and status["owner"] is None
    tasks = {t["name"]: t for t in cli_json(tmp_path, g.home, "tasks", run_id)}
    assert tasks["gated-1"]["state"] == "succeeded"
    assert tasks["gated-1"]["attempt"] == 1  # a requeue after a crash is not a retry
    assert tasks["shout-1"]["state"] == "succeeded"
    assert not workers_of(g.home)


# ---------------------------------------------------------------- orphaned shell tasks
ORPHAN = """
import hexflow as hx


@hx.shell(use_shell=True)
def long_job():
    # the first start records its pid and waits; the restart (marker present) finishes
    return "if [ -f {marker} ]; then exit 0; fi; echo $$ > {pidfile}; touch {marker}; sleep 60"


with hx.Workflow("orphan") as wf:
    long_job()
wf.run()
"""


def test_shell_tasks_die_with_the_engine_and_resume_restarts_them(tmp_path: Path) -> None:
    home, marker, pidfile = tmp_path / ".hexflow", tmp_path / "marker", tmp_path / "pid"
    script = tmp_path / "flow.py"
    script.write_text(ORPHAN.format(marker=marker, pidfile=pidfile))
    proc = start_cli(tmp_path, home, "run", str(script), "--json")
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the job"))
    group = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pid]
    assert len(group) >= 2, "the command and its `sleep` child run in one process group"
    run_id = str(cli_json(tmp_path, home, "status")[0]["run_id"])
    kill_hard(proc)
    # a shell task runs in a session of its own; its worker kills that group when the
    # engine dies, so no stale copy races the one `resume` starts
    for member in group:
        wait_for(lambda m=member: not live(m), 5, f"process {member} of the orphaned task to die")
    done = cli(tmp_path, home, "resume", run_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "succeeded"
    assert not workers_of(home)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
