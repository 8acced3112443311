"""End to end: ``hexflow server`` as a real process on a free port, accounts made with the
real ``hexflow admin`` CLI, runs submitted over HTTP with httpx and with Authlib's OAuth2
client (as sfapi_client), and a ``kill -9`` of the server in the middle of a run, which
the next server start resumes to success."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import run_cli, wait_for

WORKFLOW = b"""name: e2e
tasks:
  first:
    command: [sleep, "2"]
  second:
    command: [python3, -c, "print('done')"]
    after: first
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, home: Path, db: str, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.args = [
            sys.executable, "-m", "hexflow.cli.main", "--home", str(home), "server",
            "--port", str(port), "--db", db, "--max-runs", "2", "--log-level", "warning",
        ]  # fmt: skip
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "HEXFLOW_CPUS": "1", "HEXFLOW_KILL_GRACE": "0.5"}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=out, env=env)

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(self.url + "/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60, "the server to answer", every=0.1)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(30)


@pytest.mark.slow
def test_server_end_to_end(tmp_path: Path) -> None:
    home, db = tmp_path / "home", f"sqlite:///{tmp_path / 'server.db'}"
    cli_env = {**os.environ, "HEXFLOW_HOME": str(home), "HEXFLOW_DB": db}

    def admin(*args: str) -> Any:
        result = run_cli(tmp_path, cli_env, "admin", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if "--json" in args else result.stdout

    admin("user", "create", "alice")
    admin("project", "create", "p1", "--member", "alice")
    token = admin("token", "create", "--user", "alice", "--project", "p1", "--scopes",
                  "read,submit", "--json")["token"]  # fmt: skip
    client_key = admin("client", "create", "--user", "alice", "--project", "p1", "--json")

    server = Server(home, db, _free_port(), tmp_path / "server.log")
    server.start()
    try:
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
        r = api.post(
            "/api/v1/runs",
            content=WORKFLOW,
            headers={"Content-Type": "application/yaml", "Idempotency-Key": "e2e-1"},
        )
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]

        def first_running() -> bool:
            items = api.get(f"/api/v1/runs/{run_id}/tasks").json()["items"]
            return items[0]["state"] == "running"

        wait_for(first_running, 30, "the first task to run", every=0.05)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash mid-run
        server.start()  # resumes the run
        r = api.post(
            "/api/v1/runs",
            content=WORKFLOW,
            headers={"Content-Type": "application/yaml", "Idempotency-Key": "e2e-1"},
        )
        assert r.json()["id"] == run_id and r.headers["idempotent-replayed"] == "true"

        def ended() -> dict | None:
            run = api.get(f"/api/v1/runs/{run_id}").json()
            return run if run["state"] in ("succeeded", "failed", "cancelled") else None

        final = wait_for(ended, 60, "the resumed run to end", every=0.2)
        assert final["state"] == "succeeded", final
        tasks = api.get(f"/api/v1/runs/{run_id}/tasks").json()["items"]
        assert [t["state"] for t in tasks] == ["succeeded", "succeeded"]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from authlib.integrations.httpx_client import OAuth2Client
            from authlib.oauth2.rfc7523 import PrivateKeyJWT
        token_url = server.url + "/oauth2/token"
        oauth = OAuth2Client(
            client_key["client_id"],
            client_secret=client_key["private_key_pem"],
            token_endpoint_auth_method=PrivateKeyJWT(token_url),
            grant_type="client_credentials",
            token_endpoint=token_url,
            timeout=10.0,
            headers={"accept": "application/json"},
        )
        oauth.fetch_token()
        listed = oauth.get(server.url + "/api/v1/runs").json()["items"]
        assert [r["id"] for r in listed] == [run_id]
        metrics = httpx.get(server.url + "/metrics").text
        assert 'route="/api/v1/runs/{run_id}"' in metrics
        # uvicorn shuts down gracefully, then re-raises the signal for the exit status
        assert server.stop() in (0, -signal.SIGTERM)
        assert "Traceback" not in server.log.read_text()
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)
