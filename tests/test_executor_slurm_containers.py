"""Container tasks on the Slurm executor (issue 8): a shell task with ``image=`` runs as the
site's runtime line inside its batch script (``script.render(container=...)``), with the
local executor's request (resources, the run's directory mounted, ``--pull=never``,
``--init``, ``--network=none``, the environment in a 0600 env file, never the command line).

The unit tests read the script the executor hands to a fake ``sbatch``; the last test runs a
shell task in ``localhost/base:test`` (busybox) under a real Slurm with podman, and skips
with the reason when either is missing (``HEXFLOW_TEST_SLURM=1``/``HEXFLOW_TEST_PODMAN=1``
turn the missing one into a failure, as in the other suites).
"""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path
from typing import Any

import pytest

from hexflow.errors import ExecutorError
from hexflow.executors.base import TaskStarted
from hexflow.executors.containers.planning import ContainerConfig
from hexflow.executors.slurm import SlurmConfig, SlurmExecutor
from hexflow.executors.slurm.parse import AcctRecord
from hexflow.model import Resources, TaskKind, TaskSpec
from tests.test_executor_slurm_fake import Harness, launch

EVIL = "$(touch /tmp/hexflow-pwned); `id` 'q' \"d\" ; rm -rf /"
BASE = "localhost/base:test"


def _harness(tmp_path: Path, runtime: str = "podman") -> Harness:
    h = Harness(tmp_path)
    h.executor.containers = ContainerConfig(runtime=runtime)
    return h


def _scripts(h: Harness, tmp_path: Path, *launches: Any) -> list[str]:
    async def scenario() -> None:
        await h.start()
        for item in launches:
            h.executor.submit(item)
        await h.until(
            lambda: len([e for e in h.events if isinstance(e, TaskStarted)]) == len(launches)
        )

    asyncio.run(scenario())
    return h.fake.scripts


def test_an_image_task_runs_the_runtime_line_in_its_batch_script(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    boxed = launch(tmp_path, 1)
    boxed.spec = TaskSpec(  # noqa: S604 - a script for /bin/sh -c, inside the image
        id="t1",
        name="t1",
        kind=TaskKind.SHELL,
        command=("echo hi > out.txt",),
        shell=True,
        image=BASE,
        resources=Resources.parse(cpus=2, memory="1G"),
    )
    boxed.env = {"HEXFLOW_TASK_ID": "t1", "TOKEN": EVIL}
    bare = launch(tmp_path, 2)
    scripts = _scripts(h, tmp_path, boxed, bare)
    assert len(scripts) == 2  # an image task is never an element of another job's array
    script = next(s for s in scripts if "podman run" in s)
    lines = script.splitlines()
    assert f"#SBATCH --output={boxed.stdout}" in lines
    assert f"#SBATCH --error={boxed.stderr}" in lines
    assert "#SBATCH --cpus-per-task=2" in lines and "#SBATCH --mem=1024M" in lines
    assert "HEXFLOW_WORKER_PATH" not in script  # no runner: nothing of hexflow in the job
    last = shlex.split(lines[-1])
    assert last[:3] == ["exec", "podman", "run"]
    for flag in ("--pull=never", "--network=none", "--init", "--rm"):
        assert flag in last
    assert last[last.index("--cpus") + 1] == "2"
    assert last[last.index("--memory") + 1] == str(2**30)
    cwd = os.path.realpath(tmp_path)
    assert f"{cwd}:{cwd}:rw" in last and last[last.index("--workdir") + 1] == cwd
    assert last[-4:] == [BASE, "/bin/sh", "-c", "echo hi > out.txt"]
    env_file = last[last.index("--env-file") + 1]
    assert env_file.endswith(".state/env") and os.path.isdir(os.path.dirname(env_file))
    assert EVIL not in lines[-1]  # the task's environment: in the 0600 env file only
    assert script.count("(umask 077 && printf") == 1
    assert f"> {shlex.quote(env_file)})" in script


def test_an_image_task_ends_with_its_exit_code(tmp_path: Path) -> None:
    h = _harness(tmp_path)

    async def scenario() -> None:
        await h.start()
        h.executor.submit(launch(tmp_path, 1, image=BASE))
        h.executor.submit(launch(tmp_path, 2, image=BASE))
        await h.until(lambda: len([e for e in h.events if isinstance(e, TaskStarted)]) == 2)
        one, two = h.worker(1), h.worker(2)
        state_dir = f"{h.executor._jobs[1].stem}.state"
        h.fake.set(one, "COMPLETED")
        h.fake.set(two, "FAILED")
        h.fake.acct[two] = AcctRecord(two, None, "FAILED", 3, 0)
        await h.executor.poll()
        assert not os.path.exists(state_dir)  # the env file goes with the job

    asyncio.run(scenario())
    ended = h.ended()
    assert ended[1].ok and ended[1].exit_code == 0
    assert not ended[2].ok and ended[2].exit_code == 3 and ended[2].reason == "exit_code"


def test_apptainer_sites_get_their_own_line(tmp_path: Path) -> None:
    h = _harness(tmp_path, runtime="apptainer")
    item = launch(tmp_path, 1, image="/images/tool.sif")
    item.env = {"TOKEN": EVIL}
    (script,) = _scripts(h, tmp_path, item)
    last = shlex.split(script.splitlines()[-1])
    assert last[:4] == ["exec", "apptainer", "exec", "--cleanenv"]
    assert last[-2:] == ["/images/tool.sif", "true"]
    assert f"export APPTAINERENV_TOKEN={shlex.quote(EVIL)}" in script


@pytest.mark.parametrize(
    "kw,why",
    [
        ({"kind": TaskKind.PYTHON}, "runs only shell tasks in an image"),
        ({"resources": Resources(cpus=1, gpus=1)}, "does not bind GPUs"),
    ],
)
def test_what_it_refuses_says_why(tmp_path: Path, kw: dict[str, Any], why: str) -> None:
    h = _harness(tmp_path)
    item = launch(tmp_path, 1)
    fields = {"id": "t1", "name": "t1", "kind": TaskKind.SHELL, "command": ("true",)}
    fields.update(kw)
    if fields["kind"] is TaskKind.PYTHON:
        fields.pop("command")
        fields["payload"] = b"x"
    item.spec = TaskSpec(image=BASE, **fields)  # type: ignore[arg-type]

    async def scenario() -> None:
        await h.start()
        with pytest.raises(ExecutorError, match=why):
            h.executor.submit(item)

    asyncio.run(scenario())


# ---------------------------------------------------------------- real Slurm and podman
def test_a_shell_task_runs_in_busybox_under_slurm(tmp_path: Path) -> None:
    from tests.executor_contract import drive, log_text, shell_spec
    from tests.slurm_env import REQUIRED as SLURM_REQUIRED
    from tests.slurm_env import SKIP_REASON, slurm_problem
    from tests.test_container_tasks import SETUP_HINT, container_env, podman_missing

    problem = slurm_problem()
    if problem is not None:
        if SLURM_REQUIRED:
            pytest.fail(f"HEXFLOW_TEST_SLURM=1 but Slurm does not answer: {problem}")
        pytest.skip(f"{SKIP_REASON} ({problem})")
    missing = podman_missing()
    if missing is not None:
        if os.environ.get("HEXFLOW_TEST_PODMAN") == "1":
            pytest.fail(f"HEXFLOW_TEST_PODMAN=1 but {missing}")
        pytest.skip(f"{missing}: {SETUP_HINT}")
    saved = dict(os.environ)
    os.environ.update(container_env())  # sbatch passes the submitter's environment on
    try:
        executor = SlurmExecutor(
            SlurmConfig(job_dir=str(tmp_path / "slurm"), poll_interval=0.3, kill_grace=0.5),
            containers=ContainerConfig(runtime="podman"),
        )
        specs = [
            shell_spec(
                "boxed",
                'echo "in $(cat /etc/hostname) as $HEXFLOW_TASK_ID"; busybox | head -1; '
                "echo made > made.txt",
                image=BASE,
            ),
            shell_spec("fails", "exit 7", image=BASE),
        ]
        run, recs = drive(executor, specs, tmp_path, timeout=150)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    boxed = recs["boxed"]
    assert boxed.state.value == "succeeded", (boxed.error, boxed.traceback)
    out = log_text(tmp_path, run, "boxed", "out")
    assert "as boxed" in out and "BusyBox" in out
    assert (tmp_path / "made.txt").read_text() == "made\n"  # the run's directory, mounted
    fails = recs["fails"]
    assert fails.state.value == "failed" and fails.exit_code == 7 and fails.reason == "exit_code"
