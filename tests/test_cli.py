"""The CLI end to end, in-process (Typer's runner) and as a real subprocess, good and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hexflow.cli.main import app

SCRIPT = textwrap.dedent(
    """
    import hexflow as hx

    @hx.task
    def square(x):
        print("squaring", x)
        return x * x

    @hx.task
    def total(*xs):
        return sum(xs)

    @hx.task
    def broken():
        raise RuntimeError("kaput")

    with hx.Workflow("cli-demo") as wf:
        parts = [square(i) for i in range(4)]
        total(*parts)
        {extra}
    wf.run()
    """
)


@pytest.fixture
def cli(tmp_path: Path, hx_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), env=hx_env, catch_exceptions=False)
        return result.exit_code, result.output

    return invoke


def _write(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "flow.py"
    path.write_text(SCRIPT.format(extra=extra))
    return path


def test_run_script_then_inspect(cli, tmp_path: Path) -> None:  # noqa: ANN001
    code, output = cli("run", str(_write(tmp_path)), "--json")
    assert code == 0, output
    summary = json.loads(output)
    assert summary["ok"] is True and summary["tasks"] == {"succeeded": 5}
    run_id = summary["run_id"]

    code, output = cli("status", "--json")
    assert code == 0 and [r["run_id"] for r in json.loads(output)] == [run_id]

    code, output = cli("status", run_id[:5], "--json")
    assert json.loads(output)["total"] == 5

    code, output = cli("tasks", run_id, "--json")
    rows = json.loads(output)
    assert {r["task_id"] for r in rows} == {
        "square-1",
        "square-2",
        "square-3",
        "square-4",
        "total-1",
    }
    assert all(r["state"] == "succeeded" and r["attempt"] == 1 for r in rows)

    code, output = cli("logs", run_id, "square-3", "--json")
    assert json.loads(output)["stdout"] == "squaring 2\n"

    code, output = cli("tasks", run_id)
    assert code == 0 and "square-1" in output and "succeeded" in output


def test_failed_run_exits_1_and_names_the_failure(cli, tmp_path: Path) -> None:  # noqa: ANN001
    code, output = cli("run", str(_write(tmp_path, extra="broken()")))
    assert code == 1
    assert "kaput" in output and "hexflow logs" in output
    code, output = cli("tasks", "--json", json.loads(cli("status", "--json")[1])[0]["run_id"])
    broken = next(r for r in json.loads(output) if r["task_id"] == "broken-1")
    assert broken["state"] == "failed" and "RuntimeError: kaput" in broken["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.py"], "no such file"),
        (["run", "flow.txt"], "unknown workflow type"),
        (["status", "nosuchrun"], "no run 'nosuchrun'"),
        (["tasks", "nosuchrun"], "no run 'nosuchrun'"),
        (["resume", "nosuchrun"], "no run 'nosuchrun'"),
        (["cancel", "nosuchrun"], "no run 'nosuchrun'"),
        (["run", "flow.yaml", "-p", "novalue"], "expected KEY=VALUE"),
        (["demo", "99"], "99"),
    ],
)
def test_bad_input_gets_a_clear_error(cli, tmp_path: Path, args: list[str], message: str) -> None:  # noqa: ANN001
    (tmp_path / "flow.txt").write_text("hello")
    (tmp_path / "flow.yaml").write_text("name: x\ntasks:\n  a:\n    command: [echo, hi]\n")
    code, output = cli(*args)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output


def test_script_without_a_run_is_reported(cli, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    code, output = cli("run", str(path))
    assert code == 2 and "ran no workflow" in output


def test_unknown_task_in_logs(cli, tmp_path: Path) -> None:  # noqa: ANN001
    code, output = cli("run", str(_write(tmp_path)), "--json")
    run_id = json.loads(output)["run_id"]
    code, output = cli("logs", run_id, "nosuchtask")
    assert code == 2 and "no task 'nosuchtask'" in output


def test_cancel_finished_run_changes_nothing(cli, tmp_path: Path) -> None:  # noqa: ANN001
    run_id = json.loads(cli("run", str(_write(tmp_path)), "--json")[1])["run_id"]
    code, output = cli("cancel", run_id, "--json")
    assert code == 0 and json.loads(output)["cancelled"] == 0
    assert json.loads(cli("status", run_id, "--json")[1])["state"] == "succeeded"


def test_yaml_run_and_help(cli, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "wf.yaml").write_text(
        "name: y\ntasks:\n  a:\n    command: [echo, hi]\n  b:\n    command: [true]\n"
        "    depends_on: [a]\n"
    )
    code, output = cli("run", str(tmp_path / "wf.yaml"), "--json")
    assert code == 0, output
    assert json.loads(output)["tasks"] == {"succeeded": 2}
    code, output = cli("--help")
    for command in ("run", "resume", "status", "tasks", "logs", "cancel", "demo"):
        assert command in output


def test_real_subprocess_entry_point(tmp_path: Path, hx_env: dict[str, str]) -> None:
    script = _write(tmp_path)
    hexflow = Path(sys.executable).parent / "hexflow"
    env = {**os.environ, **hx_env}
    done = subprocess.run(
        [str(hexflow), "run", str(script), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True


def test_home_is_private_and_runs_use_the_current_directory(
    tmp_path: Path, hx_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state" / "hx"
    project = tmp_path / "project"
    project.mkdir()
    (project / "wf.yaml").write_text("name: p\ntasks:\n  a:\n    command: [touch, here.txt]\n")
    monkeypatch.chdir(project)
    result = CliRunner().invoke(
        app, ["--home", str(state), "run", "wf.yaml", "--json"], env=hx_env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert (project / "here.txt").exists()  # not in the parent of the home
    assert (state.stat().st_mode & 0o777) == 0o700


def test_error_in_a_script_is_reported_as_the_scripts(cli, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "bad.py"
    path.write_text("import hexflow as hx\nundefined_name + 1\n")
    code, output = cli("run", str(path))
    assert code == 2
    assert "raised NameError" in output and "bad.py" in output and "internal error" not in output


def test_follow_prints_every_byte_once(cli, tmp_path: Path) -> None:  # noqa: ANN001
    script = tmp_path / "utf.py"
    script.write_text(
        "import hexflow as hx\n"
        "@hx.task\n"
        "def talk():\n"
        "    print('héllo wörld ✓' * 3)\n"
        "with hx.Workflow('u') as wf:\n"
        "    talk()\n"
        "wf.run()\n"
    )
    run_id = json.loads(cli("run", str(script), "--json")[1])["run_id"]
    code, output = cli("logs", run_id, "talk-1", "--follow")
    assert code == 0 and output == "héllo wörld ✓" * 3 + "\n"


def test_a_cancelled_run_can_succeed_after_resume_retry_failed(cli, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "wf.yaml").write_text(
        "name: c\ntasks:\n  a:\n    command: [true]\n  b:\n    command: [true]\n"
        "    depends_on: [a]\n"
    )
    from hexflow.flow.runtime import make_store
    from hexflow.flow.yamlspec import load_workflow
    from hexflow.settings import Settings

    settings = Settings.from_env(env={"HEXFLOW_HOME": str(tmp_path / ".hexflow")}, cwd=tmp_path)
    wf = load_workflow(tmp_path / "wf.yaml", workdir=tmp_path)
    # persist the run without driving it, as a crashed `hexflow run` would leave it
    from hexflow.flow.runtime import make_engine

    store = make_store(settings)
    engine = make_engine(settings, store)
    run = engine.create_run("c", list(wf.specs.values()), workdir=str(tmp_path), run_id="r1",
                            config={"home": str(settings.home)})  # fmt: skip
    engine._disown(run.id)  # noqa: SLF001 - leave it unowned, as after a crash
    store.close()
    code, output = cli("cancel", "r1", "--json")
    assert code == 0 and json.loads(output)["mode"] == "applied"
    assert json.loads(cli("status", "r1", "--json")[1])["state"] == "cancelled"
    code, output = cli("resume", "r1", "--retry-failed", "--json")
    assert code == 0, output
    assert json.loads(output)["state"] == "succeeded"
