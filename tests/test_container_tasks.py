"""Container tasks end to end: the local executor runs ``image=`` tasks in real podman
containers, and they behave as the same tasks bare do.

The contract tests run twice, bare and with ``image=`` (``variant``), and assert the same
outcome: success, failure exit code, retries, timeout, cancel (SIGTERM, then kill after the
grace), environment. Container-only behaviour follows: out of memory (reason ``oom``),
read-only and read-write mounts, provenance (image name and digest stored), and the bad
inputs (unknown image, a mount outside the allowed roots, a runtime not installed).

The podman tests need podman and the two test images that ``scripts/ci/container-up.sh``
builds without a registry (``scripts/test.sh`` runs it when root, as CI does, and sets
``HEXFLOW_TEST_PODMAN=1``, which turns a missing podman into a failure, not a skip).
Task functions are defined inside the tests, so they are serialized by value.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hexflow as hx
from hexflow.executors.containers.tools import run_tool
from hexflow.flow.runtime import make_engine, make_store
from hexflow.model import TaskRecord, TaskSpec, TaskState
from hexflow.settings import Settings
from hexflow.store import MemoryStore
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(180)

BASE = "localhost/base:test"  # static busybox
PYTHON = "localhost/python:test"  # Debian minbase + python3
STATE = Path(os.environ.get("HEXFLOW_CONTAINER_STATE") or "/var/tmp/hexflow-containers")
SETUP_HINT = 'run `eval "$(bash scripts/ci/container-up.sh)"` as root (scripts/test.sh does)'
_status: list[str | None] = []


def podman_missing() -> str | None:
    """Why podman containers cannot run here, or None. Computed once."""
    if _status:
        return _status[0]
    why: str | None = None
    if shutil.which("podman") is None:
        why = "podman is not installed"
    elif "CONTAINERS_CONF" not in os.environ and not (STATE / "containers.conf").exists():
        why = f"no podman configuration for this host ({STATE}/containers.conf)"
    else:
        env_backup = dict(os.environ)
        os.environ.update(container_env())
        try:
            for image in (BASE, PYTHON):
                if run_tool(["podman", "image", "exists", image]).returncode != 0:
                    why = f"the test image {image} is missing"
                    break
        finally:
            os.environ.clear()
            os.environ.update(env_backup)
    _status.append(why)
    return why


def container_env() -> dict[str, str]:
    """podman's private configuration (container-up.sh), unless the caller set one."""
    if "CONTAINERS_CONF" in os.environ:
        return {}
    return {
        "CONTAINERS_CONF": str(STATE / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(STATE / "storage.conf"),
    }


@pytest.fixture
def podman(monkeypatch: pytest.MonkeyPatch) -> None:
    why = podman_missing()
    if why is not None:
        if os.environ.get("HEXFLOW_TEST_PODMAN") == "1":
            pytest.fail(f"HEXFLOW_TEST_PODMAN=1 but {why}")
        pytest.skip(f"{why}: {SETUP_HINT}")
    for key, value in container_env().items():
        monkeypatch.setenv(key, value)  # the executor's workers inherit it


@pytest.fixture(params=["bare", "podman"])
def variant(request: pytest.FixtureRequest) -> str:
    if request.param == "podman":
        request.getfixturevalue("podman")
    return str(request.param)


def image_of(variant: str, python: bool = False) -> str | None:
    return None if variant == "bare" else PYTHON if python else BASE


def make_settings(tmp_path: Path, **env: str) -> Settings:
    base = {"HEXFLOW_HOME": str(tmp_path / ".hexflow"), "HEXFLOW_KILL_GRACE": "1"}
    return Settings.from_env(env={**base, **env}, cwd=tmp_path)


def run_flow(tmp_path: Path, build: Callable[[], Any], **env: str) -> hx.Run:
    with hx.Workflow("boxed", workdir=tmp_path) as wf:
        build()
    return wf.run(settings=make_settings(tmp_path, **env))


def only(run: hx.Run) -> TaskRecord:
    (record,) = run.tasks.values()
    return record


def log(tmp_path: Path, run: hx.Run, task: str, stream: str = "out", attempt: int = 1) -> str:
    path = tmp_path / ".hexflow" / "runs" / run.id / "logs" / f"{task}.{attempt}.{stream}"
    return path.read_text() if path.exists() else ""


def containers_named(prefix: str) -> list[str]:
    found = run_tool(["podman", "ps", "--all", "--format", "{{.Names}}"])
    return [n for n in found.stdout.split() if n.startswith(prefix)]


# ================================================================ the contract, bare and boxed
def test_shell_success_output_and_provenance(tmp_path: Path, variant: str) -> None:
    @hx.shell(image=image_of(variant), cpus=1, memory="64M")
    def greet(name: str) -> list[str]:
        return ["sh", "-c", 'echo "hello $1 from $(pwd)"; echo warn >&2', "sh", name]

    run = run_flow(tmp_path, lambda: greet("you; rm -rf /"))

    rec = only(run)
    assert run.ok and rec.exit_code == 0
    assert log(tmp_path, run, "greet-1") == f"hello you; rm -rf / from {tmp_path}\n"
    assert log(tmp_path, run, "greet-1", "err") == "warn\n"
    if variant == "bare":
        assert rec.image is None and rec.image_digest is None
    else:
        assert rec.image == BASE and (rec.image_digest or "").startswith("sha256:")


def test_python_success_result_and_checkpoint_dir(tmp_path: Path, variant: str) -> None:
    @hx.task(image=image_of(variant, python=True), checkpoint=True)
    def compute(x: int) -> dict[str, Any]:
        import os
        import sys

        (hx.checkpoint_dir() / "state.txt").write_text("saved")
        print("computing", flush=True)
        return {"double": 2 * x, "cwd": os.getcwd(), "python": sys.version_info[:2]}

    futures: list[Any] = []
    run = run_flow(tmp_path, lambda: futures.append(compute(21)))

    assert run.ok, run.tasks
    value = futures[0].result()
    assert value["double"] == 42 and value["cwd"] == str(tmp_path)
    assert log(tmp_path, run, "compute-1") == "computing\n"
    checkpoints = tmp_path / ".hexflow" / "runs" / run.id / "checkpoints" / "compute-1"
    assert (checkpoints / "state.txt").read_text() == "saved"
    if variant == "podman":
        assert only(run).image == PYTHON


def test_failure_exit_code_and_retry(tmp_path: Path, variant: str) -> None:
    @hx.shell(image=image_of(variant), retries=1, backoff=0)
    def flaky() -> list[str]:
        return ["sh", "-c", 'echo "attempt $HEXFLOW_ATTEMPT" >&2; exit 3']

    run = run_flow(tmp_path, flaky)

    rec = only(run)
    assert rec.state is TaskState.FAILED and rec.attempt == 2
    assert (rec.reason, rec.exit_code, rec.error) == ("exit_code", 3, "command exited with code 3")
    assert rec.traceback == "attempt 2\n"  # the stderr tail, as bare
    assert log(tmp_path, run, "flaky-1", "err", attempt=1) == "attempt 1\n"


def test_python_exception_is_the_result(tmp_path: Path, variant: str) -> None:
    @hx.task(image=image_of(variant, python=True))
    def boom() -> None:
        raise ValueError("no good")

    futures: list[Any] = []
    run = run_flow(tmp_path, lambda: futures.append(boom()))

    rec = only(run)
    assert (rec.state, rec.reason) == (TaskState.FAILED, "error")
    with pytest.raises(ValueError, match="no good"):
        futures[0].result()
    assert "ValueError: no good" in log(tmp_path, run, "boom-1", "err")


def test_shell_builder_with_upstream_and_use_shell(tmp_path: Path, variant: str) -> None:
    @hx.task
    def make() -> int:
        return 42

    @hx.shell(image=image_of(variant))
    def show(x: int) -> list[str]:  # built once x is known, then run in the image
        return ["echo", f"got {x}"]

    @hx.shell(image=image_of(variant), use_shell=True)
    def piped() -> str:
        return "echo $((6 * 7)) | tr 4 X"

    run = run_flow(tmp_path, lambda: (show(make()), piped()))

    assert run.ok, run.tasks
    assert log(tmp_path, run, "show-1") == "got 42\n"
    assert log(tmp_path, run, "piped-1") == "X2\n"


def test_environment_reaches_the_task_exactly(tmp_path: Path, variant: str) -> None:
    values = {
        "NASTY": "a b; $(touch pwned) `touch pwned2` 'q' \"dq\" \\ $HOME *",
        "MULTI": "line one\nline two",
        "EMPTY": "",
    }

    @hx.task(image=image_of(variant, python=True), env=values)
    def read_env() -> dict[str, str | None]:
        import os

        names = ("NASTY", "MULTI", "EMPTY", "HEXFLOW_TASK_ID", "HEXFLOW_ATTEMPT")
        return {k: os.environ.get(k) for k in names}

    @hx.shell(image=image_of(variant), env=values)
    def print_env() -> list[str]:
        return ["sh", "-c", 'printf "%s|" "$NASTY" "$MULTI"']

    futures: list[Any] = []
    run = run_flow(tmp_path, lambda: (futures.append(read_env()), print_env()))

    assert run.ok, run.tasks
    seen = futures[0].result()
    assert seen == {**values, "HEXFLOW_TASK_ID": "read_env-1", "HEXFLOW_ATTEMPT": "1"}
    assert log(tmp_path, run, "print_env-1") == f"{values['NASTY']}|{values['MULTI']}|"
    assert not list(tmp_path.glob("pwned*"))


@pytest.mark.slow
@pytest.mark.parametrize("python", [False, True], ids=["shell", "python"])
def test_timeout(tmp_path: Path, variant: str, python: bool) -> None:
    if python:

        @hx.task(image=image_of(variant, True), timeout=1)
        def slow() -> None:
            import time

            time.sleep(60)

    else:

        @hx.shell(image=image_of(variant), timeout=1)
        def slow() -> list[str]:
            return ["sleep", "60"]

    started = time.monotonic()
    run = run_flow(tmp_path, slow)

    rec = only(run)
    assert (rec.state, rec.reason) == (TaskState.FAILED, "timeout")
    assert rec.error == "killed after exceeding its timeout of 1s"
    assert time.monotonic() - started < 15
    if variant == "podman":
        assert containers_named(f"hexflow-{run.id}") == []


# ---------------------------------------------------------------- cancel
def drive_and_cancel(
    tmp_path: Path, specs: list[TaskSpec], started: Path
) -> tuple[dict[str, TaskRecord], float]:
    """Run ``specs``; once ``started`` exists, cancel the run. (records, seconds to stop)."""
    settings = make_settings(tmp_path)
    store = MemoryStore()
    engine = make_engine(settings, store)
    engine._cancel_poll = 0.05
    engine.create_run(
        "cancel", specs, workdir=str(tmp_path), run_id="cx1", config={"home": str(settings.home)}
    )
    thread = threading.Thread(target=engine.run, args=("cx1",), daemon=True)
    thread.start()
    wait_for(started.exists, 60, "the task to start")
    asked = time.monotonic()
    store.request_cancel("cx1")
    thread.join(60)
    assert not thread.is_alive()
    return {r.id: r for r in store.load_tasks("cx1")}, time.monotonic() - asked


def cancel_specs(variant: str, ignore_term: bool) -> list[TaskSpec]:
    trap = "trap '' TERM" if ignore_term else "trap 'echo term > got-term; exit 7' TERM"

    @hx.shell(image=image_of(variant))
    def stubborn() -> list[str]:
        return ["sh", "-c", f"{trap}; touch started; while :; do sleep 0.1; done"]

    with hx.Workflow("cancel") as wf:
        stubborn()
    return list(wf.specs.values())


@pytest.mark.slow
def test_cancel_sends_sigterm_that_reaches_the_task(tmp_path: Path, variant: str) -> None:
    records, _ = drive_and_cancel(tmp_path, cancel_specs(variant, False), tmp_path / "started")

    rec = records["stubborn-1"]
    assert (rec.state, rec.reason) == (TaskState.CANCELLED, "cancelled")
    assert (tmp_path / "got-term").read_text() == "term\n"  # the task's own handler ran
    if variant == "podman":
        assert containers_named("hexflow-cx1-") == []


@pytest.mark.slow
def test_cancel_kills_a_task_that_ignores_sigterm_after_the_grace(
    tmp_path: Path, variant: str
) -> None:
    records, took = drive_and_cancel(tmp_path, cancel_specs(variant, True), tmp_path / "started")

    rec = records["stubborn-1"]
    assert (rec.state, rec.reason) == (TaskState.CANCELLED, "cancelled")
    assert 0.9 <= took < 20  # the 1 s grace, then SIGKILL
    if variant == "podman":  # the runtime was killed: its container was removed too
        assert containers_named("hexflow-cx1-") == []


@pytest.mark.slow
def test_cancel_a_python_task(tmp_path: Path, variant: str) -> None:
    marker = tmp_path / "py-started"

    @hx.task(image=image_of(variant, python=True))
    def waits(path: str) -> None:
        import pathlib
        import time

        pathlib.Path(path).touch()
        time.sleep(60)

    with hx.Workflow("cancel") as wf:
        waits(str(marker))
    records, took = drive_and_cancel(tmp_path, list(wf.specs.values()), marker)

    assert records["waits-1"].state is TaskState.CANCELLED
    assert took < 20


@pytest.mark.slow
@pytest.mark.usefixtures("podman")
def test_no_container_outlives_a_killed_engine(tmp_path: Path) -> None:
    """kill -9 of the engine: its worker stops the runtime and removes the container."""
    script = tmp_path / "flow.py"
    script.write_text(
        "import hexflow as hx\n"
        f"@hx.shell(image={BASE!r})\n"
        "def long():\n"
        "    return ['sh', '-c', 'touch started; exec sleep 60']\n"
        "with hx.Workflow('crash') as wf:\n"
        "    long()\n"
        "wf.run()\n"
    )
    env = {**os.environ, "HEXFLOW_HOME": str(tmp_path / ".hexflow")}

    def mine() -> list[str]:
        return [n for n in containers_named("hexflow-") if n.endswith("-long-1-1")]

    engine = subprocess.Popen(
        [sys.executable, "-m", "hexflow.cli.main", "run", str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for((tmp_path / "started").exists, 60, "the container task to start")
        (name,) = wait_for(mine, 30, "its container")
        engine.kill()
        engine.wait(10)
        wait_for(lambda: name not in mine(), 60, "the container to go")
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()


# ================================================================ containers only
@pytest.mark.slow
@pytest.mark.usefixtures("podman")
def test_out_of_memory_is_reported_as_oom(tmp_path: Path) -> None:
    @hx.shell(image=BASE, memory="32M")
    def hog() -> list[str]:
        return ["sh", "-c", "tail /dev/zero"]

    @hx.task(image=PYTHON, memory="64M")
    def pyhog() -> int:
        return len(bytearray(512 * 2**20))

    run = run_flow(tmp_path, lambda: (hog(), pyhog()))

    for name, limit in (("hog-1", "32.0MiB"), ("pyhog-1", "64.0MiB")):
        rec = run.tasks[name]
        assert (rec.state, rec.reason, rec.exit_code) == (TaskState.FAILED, "oom", 137), rec
        assert rec.error is not None and "out of memory" in rec.error and limit in rec.error
    assert not (tmp_path / "oom").exists()  # conmon's mark stays in the state dir


@pytest.mark.usefixtures("podman")
def test_mounts_read_only_and_read_write(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_text("input\n")
    (tmp_path / "out").mkdir()

    @hx.shell(image=BASE, mounts=["in:/in:ro", "out:/out"])
    def copy() -> list[str]:
        return ["sh", "-c", "cat /in/data.txt > /out/copy.txt && echo x > /in/new.txt"]

    run = run_flow(tmp_path, copy)

    rec = only(run)
    assert (tmp_path / "out" / "copy.txt").read_text() == "input\n"  # rw: written
    assert not (tmp_path / "in" / "new.txt").exists()  # ro: refused
    assert (rec.reason, rec.exit_code) == ("exit_code", 1)
    assert "Read-only file system" in (rec.traceback or "")


@pytest.mark.usefixtures("podman")
def test_provenance_is_stored_with_the_image_digest(tmp_path: Path) -> None:
    @hx.shell(image=BASE)
    def boxed() -> list[str]:
        return ["true"]

    @hx.shell
    def bare() -> list[str]:
        return ["true"]

    run = run_flow(tmp_path, lambda: (boxed(), bare()))

    inspected = run_tool(["podman", "image", "inspect", "--format", "{{.Digest}}", BASE])
    store = make_store(make_settings(tmp_path))  # the SQLite store the run wrote
    try:
        stored = {t.id: t for t in store.load_tasks(run.id)}
    finally:
        store.close()
    assert stored["boxed-1"].image == BASE
    assert stored["boxed-1"].image_digest == inspected.stdout.strip()
    assert stored["bare-1"].image is None
    summary = stored["boxed-1"].summary()
    assert json.loads(json.dumps(summary))["image_digest"] == inspected.stdout.strip()


@pytest.mark.usefixtures("podman")
def test_unknown_image_fails_at_once_naming_it(tmp_path: Path) -> None:
    @hx.shell(image="localhost/no-such-image:1", retries=2)
    def nothing() -> list[str]:
        return ["true"]

    started = time.monotonic()
    run = run_flow(tmp_path, nothing)

    rec = only(run)
    assert (rec.state, rec.reason, rec.exit_code) == (TaskState.FAILED, "launch_failed", 125)
    assert rec.attempt == 1  # not retried: it would fail the same way
    assert rec.error is not None
    assert "image 'localhost/no-such-image:1' is not available to podman" in rec.error
    assert "never pulls" in rec.error
    assert time.monotonic() - started < 10  # no registry wait
    assert rec.image == "localhost/no-such-image:1" and rec.image_digest is None


def test_mount_outside_the_allowed_roots_is_refused(tmp_path: Path) -> None:
    """Refused before any runtime starts: no podman needed."""

    @hx.shell(image=BASE, mounts=["/etc:/host-etc:ro"])
    def peek() -> list[str]:
        return ["cat", "/host-etc/shadow"]

    run = run_flow(tmp_path, peek)

    rec = only(run)
    assert (rec.state, rec.reason) == (TaskState.FAILED, "launch_failed")
    assert rec.error is not None
    assert "/etc is outside the directories container tasks may mount" in rec.error
    assert str(tmp_path) in rec.error and "HEXFLOW_MOUNT_ROOTS" in rec.error


@pytest.mark.usefixtures("podman")
def test_the_site_may_allow_more_mount_roots(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ref.txt").write_text("reference\n")
    work = tmp_path / "work"
    work.mkdir()

    @hx.shell(image=BASE, mounts=[f"{shared}:/ref:ro"])
    def use() -> list[str]:
        return ["cat", "/ref/ref.txt"]

    roots = f"{work}:{shared}"
    refused = run_flow(work, use)
    allowed = run_flow(work, use, HEXFLOW_MOUNT_ROOTS=roots)

    assert only(refused).reason == "launch_failed"
    assert allowed.ok and log(work, allowed, "use-1") == "reference\n"


def test_a_runtime_that_is_not_installed_is_a_launch_failure(tmp_path: Path) -> None:
    @hx.shell(image=BASE)
    def boxed() -> list[str]:
        return ["true"]

    run = run_flow(tmp_path, boxed, HEXFLOW_CONTAINER_RUNTIME="apptainer")

    rec = only(run)
    assert (rec.state, rec.reason) == (TaskState.FAILED, "launch_failed")
    assert "apptainer" in (rec.error or "")


# ================================================================ the guide's example runs
DOCS = Path(__file__).resolve().parent.parent / "docs" / "containers.md"


@pytest.mark.usefixtures("podman")
def test_the_containers_guide_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks
    for i, code in enumerate(blocks):
        script = tmp_path / f"block{i}.py"
        script.write_text(code)
        env = {**os.environ, "HEXFLOW_HOME": str(tmp_path / ".hexflow")}
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"block {i} failed:\n{done.stderr[-3000:]}"
        assert "sha256:" in done.stdout
