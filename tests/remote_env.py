"""A real ``hexflow server`` process on a free port, with accounts made by the real
``hexflow admin`` CLI, for the tests that drive it over HTTP (SDK, SFAPI client, CLI).

Accounts: alice (member of p1), bob (member of p2), carol (viewer of p1). Credentials:
``tokens[user]`` (read,submit, bound to the user's project) and ``client_key`` (alice's
OAuth client for p1, as ``admin client create --json`` prints it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    url: str
    home: Path
    db: str
    cli_env: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    client_key: dict[str, Any] = field(default_factory=dict)

    def project_dir(self, project: str) -> Path:
        return (self.home / "work" / project).resolve()


def admin(tmp: Path, env: dict[str, str], *args: str) -> Any:
    """``hexflow admin ARGS``, run in this process (the same CLI code as a subprocess runs,
    without an interpreter start each: a server's accounts take ten of these)."""
    from typer.testing import CliRunner

    from hexflow.cli.main import app

    result = CliRunner().invoke(app, ["admin", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


def live_server(tmp: Path, *extra: str, db: str | None = None) -> Iterator[Live]:
    """The server on ``db`` (default: a new SQLite file in ``tmp``)."""
    home, db = tmp / "home", db or f"sqlite:///{tmp / 'server.db'}"
    cli_env = {**os.environ, "HEXFLOW_HOME": str(home), "HEXFLOW_DB": db}
    for user in ("alice", "bob", "carol"):
        admin(tmp, cli_env, "user", "create", user)
    admin(tmp, cli_env, "project", "create", "p1", "--member", "alice", "--member", "carol:viewer")
    admin(tmp, cli_env, "project", "create", "p2", "--member", "bob")
    live = Live("", home, db, cli_env)
    for user, project in (("alice", "p1"), ("bob", "p2"), ("carol", "p1")):
        scopes = "read" if user == "carol" else "read,submit"
        live.tokens[user] = admin(
            tmp, cli_env, "token", "create", "--user", user, "--project", project,
            "--scopes", scopes, "--json",
        )["token"]  # fmt: skip
    live.client_key = admin(
        tmp, cli_env, "client", "create", "--user", "alice", "--project", "p1", "--json"
    )
    port = free_port()
    live.url = f"http://127.0.0.1:{port}"
    args = [
        sys.executable, "-m", "hexflow.cli.main", "--home", str(home), "server",
        "--port", str(port), "--db", db, "--max-runs", "4", "--log-level", "warning", *extra,
    ]  # fmt: skip
    log = tmp / "server.log"
    env = {**os.environ, "HEXFLOW_CPUS": "4", "HEXFLOW_KILL_GRACE": "0.5"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, env=env)

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(live.url + "/", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, 60, "the server to answer", every=0.1)
        yield live
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in log.read_text(), log.read_text()
