"""``hexflow --server URL`` (and ``HEXFLOW_SERVER``): every run-facing command against a
real ``hexflow server`` process, with the token read from a private token file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from tests.remote_env import Live, live_server

SCRIPT = """
import hexflow as hx

@hx.task
def double(x):
    return 2 * x

with hx.Workflow("remote-script") as wf:
    a = double(21)
run = wf.run()
print("answer", a.result(timeout=60), run.id)
"""

TALK = b"""name: talk
tasks:
  say:
    command: [sh, -c, 'echo hello; sleep 1; echo again; echo warn >&2']
"""
FAIL = b"name: bad\ntasks:\n  boom:\n    command: [sh, -c, 'exit 4']\n"
NAP = b"name: nap\ntasks:\n  nap:\n    command: [sleep, '60']\n  after:\n" \
      b"    command: [echo]\n    after: nap\n"  # fmt: skip


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from live_server(tmp_path_factory.mktemp("cli-remote"))


def _token_file(tmp: Path, token: str, mode: int = 0o600) -> Path:
    path = tmp / f"token-{mode:o}"
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


def hexflow(live: Live, tmp: Path, *args: str, user: str = "alice", mode: int = 0o600) -> Any:
    env = {
        **os.environ,
        "HEXFLOW_SERVER": live.url,
        "HEXFLOW_TOKEN_FILE": str(_token_file(tmp, live.tokens[user], mode)),
        "HEXFLOW_HOME": str(tmp / "nothing-local"),
    }
    return run_cli(tmp, env, *args)


def test_the_token_file_must_be_private(live: Live, tmp_path: Path) -> None:
    r = hexflow(live, tmp_path, "status", mode=0o644)
    assert r.returncode == 2 and "refusing the token file" in r.stderr
    assert "chmod 600" in r.stderr
    env = {**os.environ, "HEXFLOW_TOKEN_FILE": str(tmp_path / "absent")}
    r = run_cli(tmp_path, env, "--server", live.url, "status")
    assert r.returncode == 2 and "no token file" in r.stderr
    assert not (tmp_path / "nothing-local").exists()


def test_run_status_tasks_logs(live: Live, tmp_path: Path) -> None:
    (tmp_path / "talk.yaml").write_bytes(TALK)
    r = hexflow(live, tmp_path, "run", "talk.yaml", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["ok"] and summary["tasks"] == {"succeeded": 1}
    run_id = summary["run_id"]
    r = hexflow(live, tmp_path, "status", run_id, "--json")
    assert json.loads(r.stdout)["state"] == "succeeded"
    r = hexflow(live, tmp_path, "status", "--json")
    assert run_id in [row["run_id"] for row in json.loads(r.stdout)]
    r = hexflow(live, tmp_path, "tasks", run_id, "--json")
    assert [t["task_id"] for t in json.loads(r.stdout)] == ["say"]
    r = hexflow(live, tmp_path, "logs", run_id, "say")
    assert (r.stdout, r.stderr) == ("hello\nagain\n", "warn\n")
    r = hexflow(live, tmp_path, "logs", run_id, "say", "--json")
    assert json.loads(r.stdout)["stdout"] == "hello\nagain\n"
    (tmp_path / "bad.yaml").write_bytes(FAIL)
    r = hexflow(live, tmp_path, "run", "bad.yaml")
    assert r.returncode == 1 and "boom" in r.stdout
    assert not (tmp_path / "nothing-local").exists()  # nothing ran here


def test_follow_logs_over_http(live: Live, tmp_path: Path) -> None:
    from hexflow.client import Client

    with Client(live.url, live.tokens["alice"]) as client:
        run = client.submit(TALK)
        r = hexflow(live, tmp_path, "logs", run.id, "say", "--follow")
    assert r.returncode == 0, r.stderr
    assert (r.stdout, r.stderr) == ("hello\nagain\n", "warn\n")


def test_a_python_script_runs_on_the_server(live: Live, tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(SCRIPT)
    r = hexflow(live, tmp_path, "run", "flow.py", "--json")
    assert r.returncode == 0, r.stderr
    answer, summary = r.stdout.split("\n", 1)
    assert answer.startswith("answer 42 ")
    assert json.loads(summary)["ok"]


def test_cancel_queue_and_other_projects(live: Live, tmp_path: Path) -> None:
    from hexflow.client import Client

    with Client(live.url, live.tokens["alice"]) as client:
        run = client.submit(NAP)
        client.future(run.id, "after")  # a handle; waits below through the CLI
    r = hexflow(live, tmp_path, "queue", run.id, "--json")
    rows = json.loads(r.stdout)
    assert [row["task_id"] for row in rows] in (["after"], ["nap", "after"])
    r = hexflow(live, tmp_path, "queue")
    assert r.returncode == 0 and "queue" in r.stdout
    r = hexflow(live, tmp_path, "status", run.id, user="bob")
    assert r.returncode == 2 and f"no run '{run.id}'" in r.stderr
    r = hexflow(live, tmp_path, "cancel", f"{run.id}/nap", user="bob")
    assert r.returncode == 2
    r = hexflow(live, tmp_path, "cancel", run.id, user="carol")  # a viewer
    assert r.returncode == 2 and "submit" in r.stderr  # a read-only token
    r = hexflow(live, tmp_path, "cancel", f"{run.id}/nap", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["task_id"] == "nap"
    r = hexflow(live, tmp_path, "cancel", run.id)
    assert r.returncode == 0 and "cancel requested" in r.stdout
    r = hexflow(live, tmp_path, "status", "nosuchrun")
    assert r.returncode == 2 and "no run" in r.stderr


def test_the_sdk_example_runs(live: Live, tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "examples" / "service" / "sdk_quickstart.py"
    env = {
        **os.environ,
        "HEXFLOW_SERVER": live.url,
        "HEXFLOW_TOKEN_FILE": str(_token_file(tmp_path, live.tokens["alice"])),
    }
    done = subprocess.run(
        [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "sum of squares: 285" in done.stdout and "succeeded" in done.stdout
    assert "events end with succeeded" in done.stdout
