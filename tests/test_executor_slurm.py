"""The Slurm executor against a real Slurm (scripts/ci/slurm-up.sh: one node, 8 CPUs, 4 fake
GPUs, partitions regular/gpu/realtime): the executor contract, then what only a batch
system does — GPUs bound by Slurm, job arrays, one squeue per poll, multi-node requests,
a node going down, preemption by Slurm itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from hexflow.executors.base import Executor
from hexflow.executors.slurm import SlurmConfig, SlurmExecutor
from hexflow.executors.slurm.commands import SlurmCommands
from hexflow.executors.slurm.parse import QueueEntry
from hexflow.flow.runtime import make_store
from hexflow.model import Resources, RetryPolicy
from hexflow.settings import Settings
from hexflow.store import Store
from tests.executor_contract import (
    ExecutorContract,
    drive,
    log_text,
    python_spec,
    shell_spec,
    wait_for_file,
)
from tests.helpers import run_cli, wait_for
from tests.slurm_env import slurm  # noqa: F401 - the fixture

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("slurm")]


def make_executor(tmp_path: Path, **config: object) -> SlurmExecutor:
    options: dict[str, object] = {"job_dir": str(tmp_path / "slurm"), "poll_interval": 0.3}
    options["kill_grace"] = 0.5
    options.update(config)
    return SlurmExecutor(SlurmConfig(**options))  # type: ignore[arg-type]


class TestSlurmExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, tmp_path: Path) -> Executor:
        return make_executor(tmp_path)


class CountingCommands(SlurmCommands):
    """The real seam, counting the calls and the job ids each squeue asked for."""

    def __init__(self) -> None:
        super().__init__(timeout=30)
        self.calls: list[str] = []
        self.squeued: list[int] = []

    def run(self, argv: list[str]) -> str:
        self.calls.append(argv[0])
        return super().run(argv)

    def squeue(self, job_ids: Sequence[str]) -> list[QueueEntry]:
        self.squeued.append(len(job_ids))
        return super().squeue(job_ids)


def test_gpus_are_bound_by_slurm_on_the_gpu_partition(tmp_path: Path) -> None:
    spec = shell_spec(
        "gpu",
        'echo "$CUDA_VISIBLE_DEVICES $SLURM_JOB_PARTITION"',
        resources=Resources(gpus=2),
    )
    run, recs = drive(make_executor(tmp_path, gpu_partition="gpu"), [spec], tmp_path)
    assert recs["gpu"].state.value == "succeeded", recs["gpu"].error
    assert log_text(tmp_path, run, "gpu", "out").split() == ["0,1", "gpu"]


def test_a_burst_is_one_job_array_and_each_poll_is_one_squeue(tmp_path: Path) -> None:
    def square(i: int) -> int:
        return i * i

    commands = CountingCommands()
    executor = SlurmExecutor(
        SlurmConfig(job_dir=str(tmp_path / "slurm"), poll_interval=0.3), commands=commands
    )
    specs = [python_spec(f"sq{i}", square, i) for i in range(30)]
    started = time.monotonic()
    run, recs = drive(executor, specs, tmp_path)
    elapsed = time.monotonic() - started
    assert run.state.value == "succeeded"
    assert sorted(pickle.loads(r.result or b"") for r in recs.values()) == [
        i * i for i in range(30)
    ]
    workers = {r.worker for r in recs.values()}
    assert len({w.split("_")[0] for w in workers if w}) == 1  # one array: slurm:N_0..N_29
    assert commands.calls.count("sbatch") == 1
    assert commands.squeued and set(commands.squeued) == {1}  # the array's id, every time
    # one squeue per interval at most (plus the first), never one per job
    assert commands.calls.count("squeue") <= elapsed / 0.3 + 1


def test_a_multi_node_request_reaches_slurm_and_its_refusal_is_clear(tmp_path: Path) -> None:
    spec = shell_spec("wide", "true", resources=Resources(cpus=1, nodes=2))
    _, recs = drive(make_executor(tmp_path), [spec], tmp_path)
    rec = recs["wide"]
    assert rec.state.value == "failed" and rec.reason == "launch_failed"
    # Slurm queues it (EnforcePartLimits=NO) with a reason that says it can never start
    assert "Slurm cannot run job" in (rec.error or "")
    assert "PartitionNodeLimit" in (rec.error or "") or "PartitionConfig" in (rec.error or "")
    assert rec.worker is not None
    gone_from_squeue(rec.worker.split(":")[1])


def test_sbatch_directives_refuse_unsafe_values(tmp_path: Path) -> None:
    spec = shell_spec("odd", "true", tags={"slurm.partition": "regular --wrap=evil"})
    _, recs = drive(make_executor(tmp_path), [spec], tmp_path)
    rec = recs["odd"]
    assert rec.state.value == "failed" and rec.reason == "launch_failed"
    assert "refusing --partition" in (rec.error or "")


def gone_from_squeue(job_id: str) -> None:
    def state() -> str:
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True
        )
        return out.stdout.strip()

    wait_for(lambda: state() in ("", "CANCELLED"), timeout=20, what=f"job {job_id} cancelled")


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, timeout=30)


def node_state() -> str:
    out = subprocess.run(
        ["sinfo", "-h", "-n", "localhost", "-o", "%t"], capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


async def until(cond: Callable[[], object], timeout: float = 60.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.slow
def test_node_failure_is_retried_and_the_task_finishes_after_the_node_returns(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "started"
    spec = shell_spec(
        "sim",
        f"touch {marker}.$HEXFLOW_ATTEMPT; sleep 2",
        retry=RetryPolicy(retries=1, backoff=0),
    )

    async def fail_the_node(store: Store, run_id: str, workdir: Path) -> None:
        await wait_for_file(Path(f"{marker}.1"))
        try:
            await asyncio.to_thread(
                scontrol, "update", "NodeName=localhost", "State=DOWN", "Reason=hexflow-test"
            )
            # the job ends NODE_FAIL; hexflow submits attempt 2, which waits for the node
            await until(
                lambda: store.get_task(run_id, "sim").attempt == 2, what="the second attempt"
            )
            assert not Path(f"{marker}.2").exists()
        finally:
            await asyncio.to_thread(scontrol, "update", "NodeName=localhost", "State=RESUME")

    try:
        _, recs = drive(make_executor(tmp_path), [spec], tmp_path, during=fail_the_node)
    finally:
        if "down" in node_state() or "drain" in node_state():
            scontrol("update", "NodeName=localhost", "State=RESUME")
    rec = recs["sim"]
    assert rec.state.value == "succeeded", (rec.reason, rec.error)
    assert rec.attempt == 2 and Path(f"{marker}.2").exists()


@pytest.mark.slow
def test_preemption_by_slurm_requeues_the_task_without_charging_a_retry(
    tmp_path: Path,
) -> None:
    """A realtime job takes the whole node: Slurm preempts hexflow's regular job (no requeue
    in Slurm: the executor reports PREEMPTED); hexflow requeues it, and it runs again."""
    marker = tmp_path / "started"
    spec = shell_spec(
        "batch",
        f"touch {marker}.$HEXFLOW_ATTEMPT; sleep 3",
        resources=Resources(cpus=8),
        tags={"slurm.partition": "regular"},
    )
    urgent: list[str] = []

    async def preempt(store: object, run_id: str, workdir: Path) -> None:
        await wait_for_file(Path(f"{marker}.1"))
        out = subprocess.run(
            ["sbatch", "--parsable", "-p", "realtime", "-c", "8", "-o", "/dev/null"]
            + ["--wrap", "sleep 1"],
            capture_output=True,
            text=True,
            check=True,
        )
        urgent.append(out.stdout.strip())

    _, recs = drive(make_executor(tmp_path), [spec], tmp_path, during=preempt)
    rec = recs["batch"]
    assert rec.state.value == "succeeded", (rec.reason, rec.error)
    assert rec.preemptions == 1 and rec.attempt == 2  # requeued, not a retry (retries=0)
    assert urgent


@pytest.mark.slow
def test_hexflow_run_on_slurm_end_to_end(tmp_path: Path) -> None:
    """`hexflow run flow.py` with HEXFLOW_EXECUTOR=slurm: the CLI, settings, runtime."""
    flow = tmp_path / "flow.py"
    flow.write_text(
        "import os\n"
        "import hexflow as hx\n\n"
        "@hx.task(cpus=1, memory='256M', walltime='5m')\n"
        "def where(n: int) -> str:\n"
        "    return f\"{n}:{os.environ.get('SLURM_JOB_ID', 'none')}\"\n\n"
        "@hx.shell\n"
        "def report(value: str) -> list[str]:\n"
        "    return ['echo', 'got', value]\n\n"
        "with hx.Workflow('e2e') as wf:\n"
        "    report(where(3))\n"
        "wf.run()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEXFLOW_")}
    env.update(
        HEXFLOW_HOME=str(tmp_path / ".hexflow"),
        HEXFLOW_EXECUTOR="slurm",
        HEXFLOW_SLURM_PARTITION="regular",
        HEXFLOW_SLURM_POLL="0.3",
    )
    done = run_cli(tmp_path, env, "run", str(flow), "--json", timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    store = make_store(Settings.from_env(env=env, cwd=tmp_path))
    try:
        tasks = {t.name.split("-")[0]: t for t in store.load_tasks(run_id)}
    finally:
        store.close()
    assert {t.worker.split(":")[0] for t in tasks.values() if t.worker} == {"slurm"}
    out = tmp_path / ".hexflow" / "runs" / run_id / "logs" / f"{tasks['report'].id}.1.out"
    got, value = out.read_text().split()
    assert got == "got" and value.startswith("3:") and value != "3:none"  # ran in a Slurm job


def squeue_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.mark.slow
def test_a_resumed_run_cancels_the_job_its_killed_engine_left(tmp_path: Path) -> None:
    """kill -9 of `hexflow run` leaves its job in Slurm; `hexflow resume` cancels that job
    (recorded as the task's worker when sbatch returned) and runs the task again."""
    ids = tmp_path / "ids"
    flow = tmp_path / "flow.py"
    flow.write_text(
        "import hexflow as hx\n\n"
        "@hx.shell\n"
        "def step() -> list[str]:\n"
        f"    return ['sh', '-c', 'echo $SLURM_JOB_ID >> {ids}; "
        f"[ -e {tmp_path}/once ] && exit 0; touch {tmp_path}/once; sleep 120']\n\n"
        "with hx.Workflow('crash') as wf:\n"
        "    step()\n"
        "wf.run()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEXFLOW_")}
    env.update(
        HEXFLOW_HOME=str(tmp_path / ".hexflow"),
        HEXFLOW_EXECUTOR="slurm",
        HEXFLOW_SLURM_POLL="0.3",
    )
    engine = subprocess.Popen(
        [sys.executable, "-m", "hexflow.cli.main", "run", str(flow)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: ids.exists() and ids.read_text().strip(), timeout=60, what="the job")
    finally:
        engine.kill()  # SIGKILL: no shutdown, the job stays in Slurm
        engine.wait(timeout=30)
    first = ids.read_text().split()[0]
    assert squeue_state(first) == "RUNNING"

    listing = run_cli(tmp_path, env, "status", "--json")
    run_id = json.loads(listing.stdout)[0]["run_id"]
    done = run_cli(tmp_path, env, "resume", run_id, "--json", timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: squeue_state(first) in ("", "CANCELLED"), timeout=20, what="the old job")
    second = ids.read_text().split()
    assert len(second) == 2 and second[1] != first  # a new job ran the task to its end
