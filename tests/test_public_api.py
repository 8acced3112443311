"""The public Python surface is a contract: these names exist and behave as documented."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hexflow as hx

EXPECTED = {
    "Client",
    "FunctionFailed",
    "HexflowError",
    "QoS",
    "Resources",
    "Run",
    "RunState",
    "Settings",
    "SpecError",
    "TaskFailed",
    "TaskFunction",
    "TaskFuture",
    "TaskState",
    "Workflow",
    "WorkflowFileError",
    "checkpoint_dir",
    "load_workflow",
    "shell",
    "task",
}


def test_public_names_resolve() -> None:
    assert set(hx.__all__) >= EXPECTED
    for name in EXPECTED:
        assert getattr(hx, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = hx.nope  # type: ignore[attr-defined]


def test_import_is_cheap_for_workers() -> None:
    code = "import sys, hexflow; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_decorator_options_are_checked_at_definition_time() -> None:
    with pytest.raises(hx.SpecError, match="memory"):
        hx.task(memory="lots")(lambda: None)
    with pytest.raises(hx.SpecError, match="cpus"):
        hx.task(cpus=-1)(lambda: None)
    with pytest.raises(hx.SpecError, match="walltime"):
        hx.task(walltime="ten minutes")(lambda: None)
    with pytest.raises(hx.SpecError, match="qos"):
        hx.task(qos="vip")(lambda: None)
    with pytest.raises(hx.SpecError, match="retries"):
        hx.task(retries=-2)(lambda: None)
    with pytest.raises(hx.SpecError, match="did you mean 'memory'"):
        hx.task(memroy="1G")(lambda: None)
    with pytest.raises(hx.SpecError, match="not @hx.task"):
        hx.task(2)  # type: ignore[call-overload]
    with pytest.raises(hx.SpecError, match="unknown task option 'gpu'"):
        hx.task(lambda: None).with_options(gpu=1)


def test_task_called_outside_workflow_explains() -> None:
    @hx.task
    def f() -> int:
        return 1

    with pytest.raises(hx.HexflowError, match="outside a workflow"):
        f()
    assert f.fn() == 1


def test_unpicklable_argument_is_rejected_with_a_hint(tmp_path) -> None:  # noqa: ANN001
    import threading

    @hx.task
    def f(x: object) -> None:
        return None

    with hx.Workflow("bad"), pytest.raises(hx.SpecError, match="cannot be serialized"):
        f(threading.Lock())


def test_unpicklable_function_is_rejected() -> None:
    import threading

    lock = threading.Lock()

    @hx.task
    def g() -> None:
        with lock:
            pass

    with hx.Workflow("bad"), pytest.raises(hx.SpecError, match="function cannot be serialized"):
        g()


def test_shell_command_must_be_argv() -> None:
    @hx.shell
    def bad() -> object:
        return {"not": "a command"}

    with hx.Workflow("bad"), pytest.raises(hx.SpecError, match="command must be a list"):
        bad()


def test_contract_example_runs(settings) -> None:  # noqa: ANN001
    @hx.task(cpus=1, memory="512M", walltime="10m", retries=2)
    def simulate(step: int) -> str:
        return f"state-{step}"

    @hx.shell(cpus=2)
    def render(path: str) -> list[str]:
        return ["echo", path, "out.png"]

    with hx.Workflow("demo", workdir=settings.workdir) as wf:
        a = simulate(1)
        b = render(a)
    run = wf.run(settings=settings)
    assert run.ok, run
    assert a.result() == "state-1"
    assert b.result() == 0  # a shell task's value is its exit code, as in Parsl
    assert b.done() and b.state == "succeeded"
    with pytest.raises(hx.HexflowError, match="already run"):
        wf.run(settings=settings)


def test_all_matches_the_lazy_exports() -> None:
    assert set(hx.__all__) - {"__version__"} == set(hx._EXPORTS)


def test_bad_env_and_names_are_rejected_when_the_task_is_added() -> None:
    @hx.shell(env={"THREADS": 2})  # type: ignore[dict-item]
    def with_int_env() -> list[str]:
        return ["true"]

    with hx.Workflow("bad"), pytest.raises(hx.SpecError, match="env entries must be"):
        with_int_env()

    @hx.shell(name=".hidden")
    def dotted() -> list[str]:
        return ["true"]

    with hx.Workflow("bad"), pytest.raises(hx.SpecError, match="may not start with '.'"):
        dotted()

    with pytest.raises(hx.SpecError, match="cpus must be more than 0"), hx.Workflow("bad"):
        hx.shell(cpus=0)(lambda: ["true"])()

    assert hx.Resources(gpus=2.0).gpus == 2 and isinstance(hx.Resources(gpus=2.0).gpus, int)


def test_run_works_inside_a_running_event_loop(settings) -> None:  # noqa: ANN001
    """As in a Jupyter cell, where the kernel's asyncio loop is already running."""
    import asyncio

    @hx.task
    def add(a: int, b: int) -> int:
        return a + b

    async def cell() -> int:
        with hx.Workflow("notebook", workdir=settings.workdir) as wf:
            total = add(add(1, 2), 3)
        run = wf.run(settings=settings)
        assert run.ok
        return int(total.result())

    assert asyncio.run(cell()) == 6
