"""What the engine does differently for an executor whose backend places work itself
(``places_work``: a batch system) — multi-node tasks are handed over, not refused — and for
a preemption the backend decided on its own (requeued, not charged as a retry)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hexflow.engine import Engine
from hexflow.errors import SpecError
from hexflow.executors.base import Launch, Report, TaskEnded, TaskStarted
from hexflow.model import QoS, Resources, TaskKind, TaskSpec
from hexflow.store import MemoryStore


class ScriptedExecutor:
    """Ends each attempt at once; ``preempt_first`` tasks are preempted by the 'backend'
    on their first attempt."""

    name = "scripted"

    def __init__(self, places_work: bool, preempt_first: frozenset[str] = frozenset()) -> None:
        self.places_work = places_work
        self.capacity = Resources(cpus=4, memory=2**30, gpus=0)
        self.preempt_first = preempt_first
        self.launches: list[Launch] = []
        self._report: Report | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop, report: Report) -> None:
        self._loop, self._report = loop, report

    def submit(self, launch: Launch) -> None:
        assert self._loop is not None
        self.launches.append(launch)
        self._loop.call_soon(self._run, launch)

    def _run(self, launch: Launch) -> None:
        assert self._report is not None
        self._report(TaskStarted(launch.token, f"scripted:{launch.token}", time.time()))
        if launch.spec.id in self.preempt_first and launch.attempt == 1:
            self._report(
                TaskEnded(launch.token, ok=False, ended_at=time.time(), reason="preempted")
            )
        else:
            self._report(TaskEnded(launch.token, ok=True, ended_at=time.time(), result=b"x"))

    def cancel(self, token: int, reason: str = "cancelled") -> None:
        pass

    def preempt(self, token: int, grace: float) -> None:
        pass

    def reap(self, worker: str) -> bool:
        return False

    def shutdown(self) -> None:
        pass


def spec(task_id: str, **kw: object) -> TaskSpec:
    return TaskSpec(id=task_id, name=task_id, kind=TaskKind.SHELL, command=("true",), **kw)  # type: ignore[arg-type]


def run(executor: ScriptedExecutor, specs: list[TaskSpec], tmp_path: Path) -> Engine:
    engine = Engine(MemoryStore(), executor)
    engine.create_run("pw", specs, workdir=str(tmp_path), run_id="r1", config={})
    engine.run("r1")
    return engine


def test_multi_node_tasks_go_to_an_executor_that_places_work(tmp_path: Path) -> None:
    wide = [
        spec("wide", resources=Resources(cpus=2, nodes=16)),
        spec("urgent-wide", resources=Resources(cpus=1, nodes=4), qos=QoS.REALTIME, deadline=60),
    ]
    executor = ScriptedExecutor(places_work=True)
    engine = run(executor, wide, tmp_path)
    assert {r.id: r.state.value for r in engine.records.values()} == {
        "wide": "succeeded",
        "urgent-wide": "succeeded",
    }
    assert {launch.spec.resources.nodes for launch in executor.launches} == {16, 4}


def test_an_executor_of_one_machine_refuses_them(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="nodes=16"):
        run(
            ScriptedExecutor(places_work=False),
            [spec("wide", resources=Resources(nodes=16))],
            tmp_path,
        )


def test_a_preemption_by_the_backend_requeues_without_charging_a_retry(tmp_path: Path) -> None:
    executor = ScriptedExecutor(places_work=True, preempt_first=frozenset({"victim"}))
    engine = run(executor, [spec("victim")], tmp_path)  # retries=0
    rec = engine.records["victim"]
    assert rec.state.value == "succeeded" and rec.result == b"x"
    assert (rec.attempt, rec.preemptions) == (2, 1)
    assert [launch.attempt for launch in executor.launches] == [1, 2]
    assert rec.reason is None  # a success clears the preemption note
