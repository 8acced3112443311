"""`hexflow queue`: waiting tasks in priority order with the scheduler's reasons.

Pure reasons first (hand-built clusters and queues), then the real CLI against a live run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hexflow.model import QoS, Resources
from hexflow.scheduler.cluster import Cluster, Node, Slot
from hexflow.scheduler.decisions import PendingTask, PolicyConfig, RunningTask
from hexflow.scheduler.reasons import wait_reasons
from tests.helpers import run_cli, wait_for

pytestmark = pytest.mark.timeout(120)

NOW = 1000.0


def one_node(cpus: float = 4) -> Cluster:
    return Cluster.single_pool([Node("n1", cpus)])


def pending(tid: str, cpus: float, walltime: float = 100, **kw: object) -> PendingTask:
    return PendingTask(tid, Resources(cpus=cpus), walltime=walltime, **kw)  # type: ignore[arg-type]


def running(tid: str, cpus: float, end: float, qos: QoS = QoS.REGULAR) -> RunningTask:
    return RunningTask(tid, (Slot("n1", cpus),), 0.0, end, qos=qos, preemptible=qos is QoS.PREEMPT)


def kinds(reasons: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {r.task_id: r.kind for r in reasons}


def test_fitting_tasks_start_and_the_blocked_head_holds_a_reservation() -> None:
    queue = [
        pending("small", 1, submit_time=1),
        pending("big", 4, submit_time=2),
        pending("long", 1, walltime=10_000, submit_time=3),
        pending("short", 1, walltime=50, submit_time=4),
    ]
    reasons = wait_reasons(one_node(), queue, [running("r", 2, NOW + 300)], {}, NOW)
    assert [r.task_id for r in reasons] == ["small", "big", "long", "short"]
    assert kinds(reasons) == {
        "small": "starting",
        "big": "reservation",
        "long": "reservation",  # fits now, but would delay big's reservation
        "short": "starting",  # backfilled: ends before big's reservation
    }
    big = reasons[1]
    assert "holds n1 in 300 s" in big.text
    assert "would delay big's reservation" in reasons[2].text


def test_a_task_larger_than_what_is_free_waits_for_resources_without_backfill() -> None:
    queue = [pending("a", 3, submit_time=1), pending("b", 1, submit_time=2)]
    config = PolicyConfig(backfill=False)
    reasons = wait_reasons(one_node(), queue, [running("r", 2, NOW + 300)], {}, NOW, config)
    assert kinds(reasons) == {"a": "resources", "b": "priority"}
    assert "needs cpus=3 per node; largest free now: cpus=2" in reasons[0].text
    assert "waits behind a (strict order)" in reasons[1].text


def test_realtime_work_waiting_on_preemption_and_rejects_and_deadline_risk() -> None:
    queue = [
        pending("rt", 4, qos=QoS.REALTIME, deadline=NOW + 500, submit_time=1),
        pending("late", 1, qos=QoS.URGENT, deadline=NOW + 10, submit_time=2),
        pending("risky", 1, qos=QoS.URGENT, deadline=NOW + 10, best_effort=True, submit_time=3),
    ]
    run = [running("p1", 2, NOW + 3000, QoS.PREEMPT), running("p2", 2, NOW + 3000, QoS.PREEMPT)]
    reasons = wait_reasons(one_node(), queue, run, {}, NOW, PolicyConfig(preempt_grace=20))
    by_id = {r.task_id: r for r in reasons}
    assert by_id["rt"].kind == "preempting"
    assert "waits for 2 preempt-class tasks" in by_id["rt"].text and "grace 20 s" in str(
        by_id["rt"]
    )
    assert by_id["late"].kind == "rejected" and "cannot be met" in by_id["late"].text
    assert by_id["risky"].at_risk and str(by_id["risky"]).endswith("deadline at risk")


def test_the_same_input_gives_the_same_reasons() -> None:
    queue = [pending(f"t{i}", 1 + i % 3, submit_time=i) for i in range(20)]
    run = [running("r", 3, NOW + 100)]
    assert wait_reasons(one_node(), queue, run, {}, NOW) == wait_reasons(
        one_node(), queue, run, {}, NOW
    )


# ---------------------------------------------------------------- the real CLI
FLOW = textwrap.dedent(
    """
    import time
    import hexflow as hx

    @hx.task(cpus=1, walltime="5m")
    def hold(path: str) -> None:
        open(path, "w").close()
        while not __import__("os").path.exists(path + ".go"):
            time.sleep(0.05)

    @hx.task(cpus=1, qos="{qos}", walltime="1m")
    def work(i: int) -> int:
        return i

    @hx.task(cpus=1, walltime="1m")
    def after(x: None) -> None:
        return None

    with hx.Workflow("queued") as wf:
        h = hold("{flag}")
        for i in range(2):
            work(i)
        after(h)
    wf.run()
    """
)


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEXFLOW_")}
    env.update(HEXFLOW_HOME=str(tmp_path / ".hexflow"), HEXFLOW_CPUS="1")
    return env


def test_queue_lists_waiting_tasks_with_reasons_for_a_live_run(tmp_path: Path) -> None:
    flag = tmp_path / "started"
    script = tmp_path / "flow.py"
    script.write_text(FLOW.replace("{qos}", "preempt").replace("{flag}", str(flag)))
    env = cli_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hexflow.cli.main", "run", str(script), "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(flag.exists, 30, "the holding task to start")
        res = run_cli(tmp_path, env, "queue", "--json")
        assert res.returncode == 0, res.stderr
        rows = json.loads(res.stdout)
        assert [r["position"] for r in rows] == list(range(1, len(rows) + 1))
        by_name = {r["name"]: r for r in rows}
        assert by_name["work-1"]["qos"] == "preempt"
        # the first blocked task holds the machine from when the holder's walltime ends
        assert by_name["work-1"]["reason_kind"] == "reservation"
        assert "holds" in by_name["work-1"]["reason"]
        assert by_name["work-2"]["reason_kind"] == "resources"
        assert by_name["after-1"]["reason_kind"] == "dependency"
        assert "hold-1" in by_name["after-1"]["reason"]
        assert rows[-1]["name"] == "after-1"  # ready work first, then what waits upstream
        table = run_cli(tmp_path, env, "queue")
        assert table.returncode == 0 and "work-2" in table.stdout and "resources" in table.stdout
        run_id = rows[0]["run_id"]
        again = json.loads(run_cli(tmp_path, env, "queue", run_id[:6], "--json").stdout)
        assert [(r["task_id"], r["reason_kind"]) for r in again] == [
            (r["task_id"], r["reason_kind"]) for r in rows
        ]
    finally:
        Path(str(flag) + ".go").touch()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    done = run_cli(tmp_path, env, "queue", "--json")
    assert json.loads(done.stdout) == []
    assert "no waiting tasks" in run_cli(tmp_path, env, "queue").stdout


def test_queue_rejects_bad_input(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    res = run_cli(tmp_path, env, "queue", "nosuchrun")
    assert res.returncode == 2 and "no run" in res.stderr
    res = run_cli(tmp_path, env, "queue", "--limit", "0")
    assert res.returncode == 2 and "--limit" in res.stderr
