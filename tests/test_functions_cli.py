"""``hexflow functions``, ``hexflow triggers`` and ``hexflow events`` against a real
``hexflow server`` process: register, list, invoke (exit 1 when the function fails),
create/list/delete triggers, read and follow the event log, and bad input (exit 2 with a
message that says what is wrong)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hexflow.events import signed_headers
from tests.helpers import run_cli
from tests.remote_env import Live, admin, live_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("functions-cli")
    for server in live_server(tmp):
        server.tokens["alice"] = admin(
            tmp, server.cli_env, "token", "create", "--user", "alice", "--project", "p1",
            "--scopes", "read,submit,invoke", "--json",
        )["token"]  # fmt: skip
        yield server


def hexflow(
    live: Live, tmp: Path, *args: str, server: bool = True
) -> subprocess.CompletedProcess[str]:
    token = tmp / "token"
    token.write_text(live.tokens["alice"] + "\n")
    token.chmod(0o600)
    env = {**os.environ, "HEXFLOW_TOKEN_FILE": str(token), "HEXFLOW_HOME": str(tmp / "local")}
    if server:
        env["HEXFLOW_SERVER"] = live.url
    else:
        env.pop("HEXFLOW_SERVER", None)
    return run_cli(tmp, env, *args)


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_register_list_and_invoke(live: Live, tmp_path: Path) -> None:
    fn = _json(hexflow(live, tmp_path, "functions", "register", "add",
                       "--import-path", "tests.events_fns:add", "--json"))  # fmt: skip
    assert fn["name"] == "add" and fn["args_schema"]["required"] == ["x"]
    source = tmp_path / "greet.py"
    source.write_text("def greet(who: str) -> str:\n    return 'hello ' + who\n")
    done = hexflow(live, tmp_path, "functions", "register", "greet", "--source", str(source))
    assert done.returncode == 0 and "greet version 1 (who)" in done.stdout
    listed = hexflow(live, tmp_path, "functions", "list")
    assert listed.returncode == 0 and "add" in listed.stdout and "greet" in listed.stdout
    r = hexflow(live, tmp_path, "functions", "invoke", "add", "--arg", "x=40", "--arg", "y=2")
    assert r.returncode == 0 and r.stdout.strip() == "42"
    r = hexflow(live, tmp_path, "functions", "invoke", "greet", "--args", '{"who": "world"}')
    assert r.stdout.strip() == '"hello world"'
    inv = _json(hexflow(live, tmp_path, "functions", "invoke", "add", "--arg", "x=1", "--async",
                        "--json"))  # fmt: skip
    assert inv["state"] == "queued"
    time.sleep(0.5)
    got = _json(hexflow(live, tmp_path, "functions", "invocation", inv["id"], "--json"))
    assert got["state"] == "succeeded" and got["result"] == 1


def test_a_failing_function_exits_1_with_its_error(live: Live, tmp_path: Path) -> None:
    hexflow(live, tmp_path, "functions", "register", "boom", "--import-path",
            "tests.events_fns:boom")  # fmt: skip
    r = hexflow(live, tmp_path, "functions", "invoke", "boom", "--arg", "message=kaput")
    assert r.returncode == 1 and "ValueError: kaput" in r.stderr and "Traceback" in r.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("functions", "invoke", "add", "--arg", "x"), "expected KEY=VALUE"),
        (("functions", "invoke", "add", "--args", "{oops"), "not valid JSON"),
        (("functions", "invoke", "add", "--arg", "x=two"), "args.x"),
        (("functions", "invoke", "nothing"), "no function 'nothing'"),
        (("functions", "register", "f"), "exactly one of --import-path and --source"),
        (("functions", "register", "f", "--source", "/no/such/file.py"), "--source"),
        (("functions", "register", "f", "--import-path", "nope"), "import path"),
        (("triggers", "create", "--kind", "sometimes", "--function", "add"), "trigger kind"),
        (
            ("triggers", "create", "--kind", "event", "--function", "add", "--config", "[1]"),
            "expected a JSON object",
        ),
        (("triggers", "delete", "nosuchtrigger"), "no trigger"),
        (("triggers", "create", "--kind", "webhook"), "--function NAME or --workflow FILE"),
        (("triggers", "create", "--kind", "webhook", "--workflow", "/no/such.yaml"), "--workflow"),
        (("events", "--after", "-1"), "greater than or equal to 0"),
    ],
)
def test_bad_input_exits_2_and_says_why(
    live: Live, tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    hexflow(live, tmp_path, "functions", "register", "add", "--import-path",
            "tests.events_fns:add")  # fmt: skip
    r = hexflow(live, tmp_path, *args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert says in r.stderr, (args, r.stderr)


def test_without_a_server_the_commands_say_so(live: Live, tmp_path: Path) -> None:
    r = hexflow(live, tmp_path, "functions", "list", server=False)
    assert r.returncode == 2 and "--server" in r.stderr


def test_triggers_and_events(live: Live, tmp_path: Path) -> None:
    hexflow(live, tmp_path, "functions", "register", "add", "--import-path",
            "tests.events_fns:add")  # fmt: skip
    hook = _json(
        hexflow(
            live,
            tmp_path,
            "triggers",
            "create",
            "--kind",
            "webhook",
            "--function",
            "add",
            "--args",
            '{"y": 1}',
            "--name",
            "h",
            "--json",
        )
    )
    body = b'{"x": 41}'
    sent = httpx.post(
        live.url + hook["hook_url"], content=body,
        headers={**signed_headers(hook["secret"], body, timestamp=time.time()),
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert sent.status_code == 202, sent.text
    seq = sent.json()["seq"]

    def fired() -> list[dict]:
        items: list[dict] = _json(hexflow(live, tmp_path, "triggers", "list", "--json"))
        return [t for t in items if t["id"] == hook["id"] and t["fired"] == 1]

    deadline = time.monotonic() + 30
    while not fired():
        assert time.monotonic() < deadline, "the webhook did not fire"
        time.sleep(0.3)
    table = hexflow(live, tmp_path, "triggers", "list")
    assert hook["id"] in table.stdout and "webhook" in table.stdout
    lines = hexflow(live, tmp_path, "events", "--after", str(seq - 1), "--json").stdout
    kinds = [json.loads(line)["kind"] for line in lines.splitlines()]
    assert kinds[0] == "webhook.received" and "function.finished" in kinds
    # --follow prints events as they are logged
    follow = subprocess.Popen(
        [sys.executable, "-m", "hexflow.cli.main", "events", "--follow", "--after", str(seq)],
        cwd=tmp_path, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "HEXFLOW_SERVER": live.url,
             "HEXFLOW_TOKEN_FILE": str(tmp_path / "token")},
    )  # fmt: skip
    try:
        r = hexflow(live, tmp_path, "functions", "invoke", "add", "--arg", "x=5")
        assert r.stdout.strip() == "5"
        assert follow.stdout is not None
        seen = ""
        while "function.finished" not in seen or seen.count("function.invoked") < 2:
            seen += follow.stdout.readline()
    finally:
        follow.terminate()
        follow.wait(10)
    gone = hexflow(live, tmp_path, "triggers", "delete", hook["id"])
    assert gone.returncode == 0 and hook["id"] in gone.stdout


def test_a_trigger_that_submits_a_workflow_file(live: Live, tmp_path: Path) -> None:
    wf = tmp_path / "tick.yaml"
    wf.write_text("name: tick\nparams:\n  note: x\ntasks:\n  t:\n    command: echo ${note}\n")
    made = hexflow(live, tmp_path, "triggers", "create", "--kind", "schedule", "--workflow",
                   str(wf), "--config", '{"every": 3600}', "--args", '{"note": "hi"}')  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "(schedule -> workflow tick)" in made.stdout
    table = hexflow(live, tmp_path, "triggers", "list").stdout
    assert "tick" in table  # (wrapped in a narrow terminal)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\ntasks:\n  t:\n    bogus: 1\n")
    r = hexflow(live, tmp_path, "triggers", "create", "--kind", "webhook", "--workflow", str(bad))
    assert r.returncode == 2 and "workflow" in r.stderr, r.stderr
