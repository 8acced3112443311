"""Service containers in real podman: a busybox ``httpd`` served on 127.0.0.1, restarted
when it dies (podman's ``--restart=on-failure``) and when its health check fails (hexflow's
supervisor), removed by stop; an unknown image and a port in use are refused before any
container starts. Needs what ``scripts/ci/container-up.sh`` sets up (see
tests/test_container_tasks.py: skipped without it, failed with HEXFLOW_TEST_PODMAN=1)."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hexflow.errors import Conflict, ContainerError
from hexflow.executors.containers.services import make_spec
from hexflow.executors.containers.tools import run_tool
from hexflow.service.containers import ServiceContainers
from hexflow.store.service_db import ServiceDb
from tests.helpers import wait_for
from tests.test_container_tasks import BASE, podman  # noqa: F401 - the fixture

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("podman")]

HTTPD = ("httpd", "-f", "-p", "8080", "-h", "/etc")  # serves the image's /etc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceContainers]:
    db = ServiceDb(f"sqlite:///{tmp_path / 'service.db'}")
    containers = ServiceContainers(db, mount_roots=[str(tmp_path)])
    try:
        yield containers
    finally:
        for status in containers.statuses():
            containers.stop_named(status.row.project, status.row.name)
        db.close()


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return str(answer.read().decode())


def served(port: int) -> bool:
    try:
        return bool(get(port, "/hostname") is not None)
    except OSError:
        return False


def test_start_serves_on_localhost_then_stop_removes(services: ServiceContainers) -> None:
    port = free_port()
    spec = make_spec(
        "t1", "web", image=BASE, port=f"{port}:8080", command=HTTPD, health_tcp=True,
        env={"SECRET": "a b; $(x)"},
    )  # fmt: skip
    status = services.start_spec(spec, user="tester")
    assert status.state == "running" and status.as_json()["url"] == f"127.0.0.1:{port}"
    wait_for(lambda: served(port), timeout=30, what="httpd to answer")
    assert services.supervise() == []
    assert services.get("t1", "web").row.health == "healthy"
    inspect = run_tool(["podman", "inspect", "--format", "{{.Config.Env}}", spec.container])
    assert "SECRET=a b; $(x)" in inspect.stdout  # arrived as written, never through a shell
    assert "hello" not in services.logs("t1", "web")  # logs work (httpd -f is quiet)
    services.stop_named("t1", "web")
    assert run_tool(["podman", "container", "exists", spec.container]).returncode == 1
    assert services.statuses() == []
    wait_for(lambda: not served(port), timeout=10, what="the port to close")


def test_a_service_that_dies_is_restarted(services: ServiceContainers, tmp_path: Path) -> None:
    port = free_port()
    # serves for a moment, then exits 3: podman (--restart=on-failure) starts it again
    command = ("sh", "-c", "echo started; timeout 2 httpd -f -p 8080 -h /etc; exit 3")
    spec = make_spec("t1", "flaky", image=BASE, port=f"{port}:8080", command=command)
    services.start_spec(spec, user="tester")
    wait_for(
        lambda: services.get("t1", "flaky").row.restarts >= 1,
        timeout=60,
        what="podman to restart the service",
    )
    wait_for(lambda: served(port), timeout=30, what="the restarted service to answer")
    assert services.logs("t1", "flaky").count("started") >= 2


def test_an_unhealthy_service_is_restarted_by_the_supervisor(
    services: ServiceContainers,
) -> None:
    port = free_port()
    spec = make_spec(
        "t1", "sick", image=BASE, port=f"{port}:8080", command=("sleep", "600"),
        health_cmd=("test", "-e", "/tmp/ready"),
    )  # fmt: skip
    services.start_spec(spec, user="tester")
    assert services.supervise() == []  # first failure tolerated
    assert services.supervise() == [("t1", "sick", "restarted")]
    status = services.get("t1", "sick")
    assert status.state == "running" and status.row.restarts == 1
    assert "health checks" in status.row.message
    run_tool(["podman", "exec", spec.container, "touch", "/tmp/ready"])
    assert services.supervise() == []
    assert services.get("t1", "sick").row.health == "healthy"


def test_bad_input_is_refused_before_any_container(services: ServiceContainers) -> None:
    with pytest.raises(ContainerError, match="localhost/nope:1") as info:
        services.start_spec(
            make_spec("t1", "nope", image="localhost/nope:1", port=free_port()), user="tester"
        )
    assert "never pulls" in info.value.message
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        with pytest.raises(Conflict, match=str(taken)):
            services.start_spec(make_spec("t1", "busy", image=BASE, port=taken), user="tester")
    assert services.statuses() == []
    found = run_tool(["podman", "ps", "-a", "--filter", "name=hexflow-svc-t1-", "-q"])
    assert found.stdout.strip() == ""


def test_cli_start_list_logs_stop(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from hexflow.cli.main import app

    runner = CliRunner()
    env = {"HEXFLOW_HOME": str(tmp_path / "home"), "HEXFLOW_DB": f"sqlite:///{tmp_path}/s.db"}

    def hexflow(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        return result.exit_code, result.stdout + result.stderr

    assert hexflow("admin", "user", "create", "ann")[0] == 0
    assert hexflow("admin", "project", "create", "cli1", "--member", "ann")[0] == 0
    port = free_port()
    code, text = hexflow(
        "services", "start", "echo", "--image", BASE, "--port", f"{port}:8080", "--project",
        "cli1", "--env", "WHO=a b", "--health-cmd", "test -n \"$WHO\"", "--",
        "sh", "-c", "echo hello $WHO; exec httpd -f -p 8080 -h /etc",
    )  # fmt: skip
    try:
        assert code == 0, text
        assert f"127.0.0.1:{port}" in text
        code, text = hexflow("services", "list", "--json")
        assert code == 0, text
        (row,) = json.loads(text)
        assert (row["project"], row["name"], row["state"]) == ("cli1", "echo", "running")
        wait_for(
            lambda: "hello a b" in hexflow("services", "logs", "echo", "--project", "cli1")[1],
            timeout=20,
            what="the service's output",
        )
        assert hexflow("services", "start", "x", "--image", BASE, "--port", "1", "--project",
                       "cli1")[0] == 2  # fmt: skip
        assert hexflow("services", "stop", "echo", "--project", "nope")[0] == 2
    finally:
        assert hexflow("services", "stop", "echo", "--project", "cli1")[0] == 0
    assert json.loads(hexflow("services", "list", "--json")[1]) == []
