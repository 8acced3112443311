"""The Slurm executor's logic without a Slurm: a fake command seam plays the batch system.

What a job's end becomes (``outcome.ending``: NODE_FAIL, TIMEOUT, OUT_OF_MEMORY, PREEMPTED,
CANCELLED... and the runner's answer), and how the executor batches: one sbatch for a
burst (a job array), one squeue per poll for every job, sacct only for jobs squeue forgot.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from hexflow.executors.base import ExecutorEvent, Launch, TaskEnded, TaskStarted
from hexflow.executors.slurm import SlurmConfig, SlurmExecutor
from hexflow.executors.slurm.commands import SlurmCommandError
from hexflow.executors.slurm.outcome import ending
from hexflow.executors.slurm.parse import AcctRecord, PartitionInfo, QueueEntry
from hexflow.executors.slurm.runner import write_answer
from hexflow.model import Resources, TaskKind, TaskSpec

OK_PY = (1, True, pickle.dumps(42), None, None, None, 0.0, None, None, None)
FAILED_PY = (1, False, None, "ValueError", "ValueError: bad", "Traceback...", 0.0, None, None, None)
CMD_3 = (1, False, None, None, None, None, 0.0, 3, None, None)


# ---------------------------------------------------------------- outcome (pure)
@pytest.mark.parametrize(
    "state,reason,retryable",
    [
        ("NODE_FAIL", "node_fail", True),
        ("BOOT_FAIL", "node_fail", True),
        ("OUT_OF_MEMORY", "out_of_memory", False),
        ("PREEMPTED", "preempted", True),
        ("TIMEOUT", "walltime", True),
        ("DEADLINE", "deadline", False),
        ("CANCELLED", "cancelled", False),
        ("FAILED", "worker_lost", True),
        ("COMPLETED", "worker_lost", True),
    ],
)
def test_a_job_that_ended_without_an_answer(state: str, reason: str, retryable: bool) -> None:
    event = ending(7, state, None, now=1.0, exit_code=1, signal=9)
    assert (event.ok, event.reason, event.retryable) == (False, reason, retryable)
    assert event.token == 7 and event.exit_code == 1
    assert event.extra["slurm_state"] == state
    if reason == "worker_lost":
        assert "without the runner's answer" in (event.error or "") and "signal 9" in (
            event.error or ""
        )


def test_a_system_cause_wins_over_a_failed_answer_but_not_over_success() -> None:
    oom = ending(1, "OUT_OF_MEMORY", CMD_3, now=1.0)
    assert (oom.reason, oom.retryable, oom.exit_code) == ("out_of_memory", False, 3)
    assert ending(1, "NODE_FAIL", FAILED_PY, now=1.0).reason == "node_fail"
    ok = ending(1, "OUT_OF_MEMORY", OK_PY, now=1.0)
    assert ok.ok and pickle.loads(ok.result or b"") == 42


def test_answers_become_the_events_a_local_task_would_give() -> None:
    assert ending(1, "COMPLETED", OK_PY, now=1.0).ok
    failed = ending(1, "FAILED", FAILED_PY, now=1.0)
    assert (failed.reason, failed.error, failed.traceback) == (
        "error",
        "ValueError: bad",
        "Traceback...",
    )
    assert failed.extra["error_type"] == "ValueError"
    code = ending(1, "FAILED", CMD_3, now=1.0, stderr_tail="oops")
    assert (code.reason, code.exit_code, code.traceback) == ("exit_code", 3, "oops")
    zero = ending(
        1, "COMPLETED", (1, True, pickle.dumps(0), None, None, None, 0, 0, None, None), now=1
    )
    assert zero.ok and zero.exit_code == 0
    limit = ending(
        1,
        "TIMEOUT",
        (1, False, None, None, None, None, 0, -15, None, None),
        now=1.0,
        limit=(2.0, "timeout"),
        runner_limit="timeout",
    )
    assert (limit.reason, limit.error) == ("timeout", "killed after exceeding its timeout of 2s")
    launch = ending(
        1, "FAILED", (1, False, None, "launch_failed", "no sh", None, 0, 127, None, None), now=1
    )
    assert (launch.reason, launch.retryable, launch.exit_code) == ("launch_failed", False, 127)


def test_what_the_engine_asked_for_names_the_end() -> None:
    assert ending(1, "CANCELLED", None, now=1.0, requested="cancelled").reason == "cancelled"
    pre = ending(1, "FAILED", CMD_3, now=1.0, requested="preempted")
    assert pre.reason == "preempted" and pre.exit_code == 3
    assert ending(1, "COMPLETED", OK_PY, now=1.0, requested="preempted").ok  # done in time
    timeout = ending(1, "TIMEOUT", None, now=1.0, limit=(60.0, "timeout"))
    assert timeout.reason == "timeout" and "60s" in (timeout.error or "")


# ---------------------------------------------------------------- the executor, faked Slurm
class FakeSlurm:
    """The command seam's shape; jobs live in ``queue`` (what squeue shows) and ``acct``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.queue: dict[str, QueueEntry] = {}
        self.acct: dict[str, AcctRecord] = {}
        self.next_id = 100
        self.fail_sbatch: SlurmCommandError | None = None
        self.scripts: list[str] = []

    def sbatch(self, script: str) -> str:
        self.calls.append(("sbatch", (script,)))
        if self.fail_sbatch is not None:
            raise self.fail_sbatch
        self.scripts.append(Path(script).read_text())
        self.next_id += 1
        return str(self.next_id)

    def squeue(self, job_ids: Sequence[str]) -> list[QueueEntry]:
        self.calls.append(("squeue", tuple(job_ids)))
        return [e for k, e in self.queue.items() if k.split("_")[0] in job_ids]

    def sacct(self, job_ids: Sequence[str]) -> list[AcctRecord]:
        self.calls.append(("sacct", tuple(job_ids)))
        return [r for k, r in self.acct.items() if k.split("_")[0] in job_ids]

    def scancel(self, job_ids: Sequence[str], signal: str | None = None) -> None:
        self.calls.append(("scancel", (tuple(job_ids), signal)))

    def sinfo(self) -> list[PartitionInfo]:
        return []

    def count(self, name: str) -> int:
        return sum(1 for c, _ in self.calls if c == name)

    def set(self, job_id: str, state: str, reason: str = "None") -> None:
        self.queue[job_id] = QueueEntry(job_id, job_id.split("_")[0], state, reason)


def launch(tmp_path: Path, token: int, **kw: Any) -> Launch:
    spec = TaskSpec(id=f"t{token}", name=f"t{token}", kind=TaskKind.SHELL, command=("true",), **kw)
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    return Launch(
        token=token,
        run_id="run1",
        spec=spec,
        attempt=1,
        inputs={},
        env={"HEXFLOW_TASK_ID": spec.id},
        cwd=str(tmp_path),
        stdout=str(logs / f"{spec.id}.out"),
        stderr=str(logs / f"{spec.id}.err"),
    )


class Harness:
    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.fake = FakeSlurm()
        options: dict[str, Any] = {"job_dir": str(tmp_path / "jobs"), "poll_interval": 3600}
        options.update(config)
        self.executor = SlurmExecutor(SlurmConfig(**options), commands=self.fake)  # type: ignore[arg-type]
        self.events: list[ExecutorEvent] = []
        self.tmp_path = tmp_path

    async def start(self) -> None:
        self.executor.start(asyncio.get_running_loop(), self.events.append)

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0.01)

    async def until(self, cond: Any, what: str = "it", timeout: float = 10.0) -> None:
        """Wait (bounded) for what worker threads do: sbatch, scancel."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not cond():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    def worker(self, token: int) -> str:
        started = [e for e in self.events if isinstance(e, TaskStarted) and e.token == token]
        return started[0].worker.split(":")[1]

    def ended(self) -> dict[int, TaskEnded]:
        return {e.token: e for e in self.events if isinstance(e, TaskEnded)}

    def answer(self, token: int, answer: tuple[Any, ...]) -> None:
        job = self.executor._jobs[token]
        write_answer(f"{job.stem}.answer", answer, None)


def test_a_burst_is_one_array_and_each_poll_one_squeue(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario() -> None:
        await h.start()
        for token in range(1, 6):
            h.executor.submit(launch(tmp_path, token))
        await h.until(lambda: len([e for e in h.events if isinstance(e, TaskStarted)]) == 5)
        assert h.fake.count("sbatch") == 1
        assert "#SBATCH --array=0-4" in h.fake.scripts[0]
        started = [e for e in h.events if isinstance(e, TaskStarted)]
        assert [(e.worker, e.persist) for e in started] == [
            (f"slurm:101_{i}", True) for i in range(5)
        ]
        for i in range(5):
            h.fake.set(f"101_{i}", "RUNNING")
        await h.executor.poll()
        await h.executor.poll()
        assert h.fake.count("squeue") == 2 and h.fake.count("sacct") == 0
        assert [c for c in h.fake.calls if c[0] == "squeue"][0][1] == ("101",)

        # 1: done with an answer; 2: killed for memory; 3: forgotten by squeue, known to
        # sacct as NODE_FAIL; 4: forgotten by both; 5: waits for a limit it can never meet
        h.answer(1, (1, True, pickle.dumps(0), None, None, None, 0.0, 0, None, None))
        h.fake.set("101_0", "COMPLETED")
        h.fake.set("101_1", "OUT_OF_MEMORY")
        del h.fake.queue["101_2"], h.fake.queue["101_3"]
        h.fake.acct["101_2"] = AcctRecord("101_2", None, "NODE_FAIL", 0, 0, raw_id="103")
        h.fake.set("101_4", "PENDING", "PartitionTimeLimit")
        await h.executor.poll()
        await h.until(lambda: ("scancel", (("101_4",), None)) in h.fake.calls, "the scancel")
        ended = h.ended()
        assert ended[1].ok and ended[1].exit_code == 0
        assert (ended[2].reason, ended[2].retryable) == ("out_of_memory", False)
        assert (ended[3].reason, ended[3].retryable) == ("node_fail", True)
        assert (ended[5].reason, ended[5].retryable) == ("launch_failed", False)
        assert "PartitionTimeLimit" in (ended[5].error or "")
        assert ("scancel", (("101_4",), None)) in h.fake.calls
        assert 4 not in ended
        for _ in range(2):  # lost after 3 polls without news (lost_after)
            assert 4 not in h.ended()
            await h.executor.poll()
        assert h.ended()[4].reason == "worker_lost"
        assert h.fake.count("sacct") == 3  # only for the jobs squeue had forgotten

    asyncio.run(scenario())
    h.executor.shutdown()


def test_node_fail_waits_for_the_runner_of_a_job_that_reached_its_node(tmp_path: Path) -> None:
    """Slurm declares NODE_FAIL at once (a node set DOWN) and kills the job's processes
    afterwards: a job whose runner had begun is reported only once the runner answered (or
    after ``stop_wait``), so that its command cannot still be running when the task moves."""
    h = Harness(tmp_path, stop_wait=30.0)

    async def scenario() -> None:
        await h.start()
        for token in (1, 2, 3):
            h.executor.submit(launch(tmp_path, token))
        await h.until(lambda: len([e for e in h.events if isinstance(e, TaskStarted)]) == 3)
        jobs = h.executor._jobs
        for token in (1, 2):  # 1 and 2 reached the node; 3 was still queued
            Path(f"{jobs[token].stem}.began").touch()
        for i in range(3):
            h.fake.set(f"101_{i}", "NODE_FAIL")
        h.executor.cancel(1, "moved")
        await h.executor.poll()
        ended = h.ended()
        assert (ended[3].reason, ended[3].retryable) == ("node_fail", True)  # never ran
        assert 1 not in ended and 2 not in ended  # their commands may still be running
        await h.executor.poll()
        assert 1 not in h.ended() and 2 not in h.ended()
        h.answer(1, (1, False, None, None, None, None, 0.0, -15, None, None))  # killed
        h.answer(2, (2, True, pickle.dumps(0), None, None, None, 0.0, 0, None, None))  # done
        await h.until(lambda: 1 in h.ended() and 2 in h.ended(), "the answers' polls")
        ended = h.ended()
        assert ended[1].reason == "moved"  # the engine's request names it: the task moves
        assert ended[2].ok  # it finished before the node was killed: it is not run again

    asyncio.run(scenario())
    h.executor.shutdown()


def test_node_fail_without_an_answer_ends_after_stop_wait(tmp_path: Path) -> None:
    h = Harness(tmp_path, stop_wait=0.3)

    async def scenario() -> None:
        await h.start()
        h.executor.submit(launch(tmp_path, 1))
        await h.until(lambda: any(isinstance(e, TaskStarted) for e in h.events))
        Path(f"{h.executor._jobs[1].stem}.began").touch()
        h.fake.set("101", "NODE_FAIL")
        await h.executor.poll()
        assert 1 not in h.ended()
        await h.until(lambda: 1 in h.ended(), "the end after stop_wait")  # a dead node
        assert h.ended()[1].reason == "node_fail"

    asyncio.run(scenario())
    h.executor.shutdown()


def test_sbatch_failures_fail_the_tasks_with_the_right_retry(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario() -> None:
        await h.start()
        h.fake.fail_sbatch = SlurmCommandError(
            "sbatch failed", stderr="Socket timed out on send/recv operation", transient=True
        )
        h.executor.submit(launch(tmp_path, 1))
        await h.until(lambda: 1 in h.ended())
        h.fake.fail_sbatch = SlurmCommandError(
            "sbatch failed: Invalid account", stderr="Invalid account", transient=False
        )
        h.executor.submit(launch(tmp_path, 2))
        await h.until(lambda: 2 in h.ended())

    asyncio.run(scenario())
    ended = h.ended()
    assert (ended[1].reason, ended[1].retryable) == ("slurm_unavailable", True)
    assert (ended[2].reason, ended[2].retryable) == ("launch_failed", False)
    assert "Invalid account" in (ended[2].error or "")
    h.executor.shutdown()


def test_cancel_preempt_and_shutdown(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario() -> None:
        await h.start()
        h.executor.submit(launch(tmp_path, 1))
        h.executor.cancel(1)  # before sbatch: it never reaches Slurm
        await h.settle()
        assert h.fake.count("sbatch") == 0 and h.ended()[1].reason == "cancelled"

        h.executor.submit(launch(tmp_path, 2, resources=Resources(cpus=2)))
        h.executor.submit(launch(tmp_path, 3))
        h.executor.submit(launch(tmp_path, 4))
        await h.until(lambda: len(h.fake.scripts) == 2, "two submissions")
        await h.until(lambda: len([e for e in h.events if isinstance(e, TaskStarted)]) == 3)
        # t2 differs in shape: a job of its own; t3 and t4 an array of 2
        alone, array = h.worker(2), h.worker(3).split("_")[0]
        assert "_" not in alone and {h.worker(3), h.worker(4)} == {f"{array}_0", f"{array}_1"}
        h.executor.preempt(2, grace=0.05)
        await h.until(lambda: ("scancel", ((alone,), "TERM")) in h.fake.calls, "SIGTERM")
        # after the grace: cancelled
        await h.until(lambda: ("scancel", ((alone,), None)) in h.fake.calls, "the scancel")
        h.fake.set(alone, "CANCELLED")
        await h.executor.poll()
        assert h.ended()[2].reason == "preempted"
        left.extend([f"{array}_0", f"{array}_1"])

    left: list[str] = []
    asyncio.run(scenario())
    h.executor.shutdown()
    assert ("scancel", (tuple(left), None)) in h.fake.calls  # nothing outlives the run


def test_reap_cancels_a_job_a_dead_engine_left(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    assert h.executor.reap("slurm:555_3")
    assert ("scancel", (("555_3",), None)) in h.fake.calls
    assert not h.executor.reap("pid:12:34")


def test_a_scancel_still_pending_when_the_run_ends_is_done_by_shutdown(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario() -> None:
        await h.start()
        h.executor.submit(launch(tmp_path, 1))
        await h.until(lambda: any(isinstance(e, TaskStarted) for e in h.events))
        h.fake.set("101", "PENDING", "PartitionNodeLimit")
        await h.executor.poll()  # the task ends at once; its scancel is still to run
        assert h.ended()[1].reason == "launch_failed"
        h.executor.shutdown()  # the run is over before the scancel task had a turn

    asyncio.run(scenario())
    assert ("scancel", (("101",), None)) in h.fake.calls
