"""Service containers without a runtime: the pure podman command lines and input checks,
the supervisor's decisions against a scripted runtime, and /api/v1/services with project
isolation and scopes. Real podman: tests/test_services_podman.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from hexflow.errors import Conflict, ContainerError, SpecError
from hexflow.executors.containers import services as b
from hexflow.executors.containers.tools import ToolResult
from hexflow.service.containers import ServiceContainers, port_free
from tests.service_env import Env, db_url, env  # noqa: F401 - fixtures


def spec(**kw: Any) -> b.ServiceSpec:
    base: dict[str, Any] = {"image": "localhost/base:test", "port": "18080:80"}
    return b.make_spec("p1", "web", **{**base, **kw})


def test_run_line_is_local_detached_and_never_pulls() -> None:
    argv = b.run_argv(spec(env={"PASSWORD": "s3cret; $(rm -rf /)"}, command=("httpd", "-f")))
    assert argv[:5] == ["podman", "run", "--detach", "--name", "hexflow-svc-p1-web"]
    assert "--pull=never" in argv and "--restart=on-failure" in argv
    assert argv[argv.index("--publish") + 1] == "127.0.0.1:18080:80"
    assert argv[argv.index("--env") + 1] == "PASSWORD"  # the value goes by the environment
    assert not any("s3cret" in word for word in argv)
    assert argv[-3:] == ["localhost/base:test", "httpd", "-f"]


def test_container_names_are_per_project() -> None:
    assert b.container_name("P_1", "db") == "hexflow-svc-p-1-db"
    assert spec().container != b.make_spec("p2", "web", image="x", port=1080).container


@pytest.mark.parametrize(
    ("field", "kw"),
    [
        ("name", {"name": "Bad Name"}),
        ("name", {"name": "x;rm"}),
        ("name", {"name": "ends-"}),
        ("image", {"image": "not an image"}),
        ("port", {"port": "80"}),  # privileged
        ("port", {"port": "70000"}),
        ("port", {"port": "8080:x"}),
        ("env", {"env": {"1BAD": "x"}}),
        ("env", {"env": {"OK": "two\nlines"}}),
        ("mount", {"mounts": ("relative:/x",)}),
        ("mount", {"mounts": ("/tmp:/proc",)}),
        ("health", {"health_cmd": ("true",), "health_tcp": True}),
    ],
)
def test_bad_input_names_the_field(field: str, kw: dict[str, Any]) -> None:
    args: dict[str, Any] = {"image": "localhost/base:test", "port": "18080", **kw}
    name = args.pop("name", "web")
    with pytest.raises(SpecError) as info:
        b.make_spec("p1", name, **args)
    assert info.value.fields["field"] == field


def test_port_defaults_to_the_same_inside() -> None:
    assert b.parse_port("5433") == (5433, 5433)
    assert b.parse_port("5433:5432") == (5433, 5432)
    assert b.parse_state("running 2 0") == ("running", 2, 0)
    assert b.parse_state("") == ("unknown", 0, 0)


class FakePodman:
    """A scripted runtime: images it has, each container's state, health answers."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.state: dict[str, str] = {}
        self.healthy = True
        self.envs: list[dict[str, str]] = []

    def __call__(self, argv: Sequence[str], timeout: float = 60, **kw: Any) -> ToolResult:
        argv = list(argv)
        self.calls.append(argv)
        verb = argv[1]
        if verb == "image":
            ok = argv[-1] != "localhost/nope:1"
            return ToolResult(0 if ok else 1, "", "")
        if verb == "run":
            self.envs.append(dict(kw.get("env") or {}))
            self.state[argv[argv.index("--name") + 1]] = "running"
            return ToolResult(0, "id\n", "")
        if verb == "container":
            state = self.state.get(argv[-1])
            return ToolResult(0, f"{state} 0 0\n", "") if state else ToolResult(125, "", "no")
        if verb == "exec":
            return ToolResult(0 if self.healthy else 1, "", "")
        if verb in ("restart", "start"):
            self.state[argv[-1]] = "running"
            return ToolResult(0, "", "")
        if verb == "rm":
            self.state.pop(argv[-1], None)
            return ToolResult(0, "", "")
        if verb == "logs":
            return ToolResult(0, "hello\n", "")
        raise AssertionError(argv)


@pytest.fixture
def fake(env: Env) -> FakePodman:  # noqa: F811
    runtime = FakePodman()
    env.service.services._run = runtime
    return runtime


def post(e: Env, headers: dict[str, str], **body: Any) -> Any:
    payload = {"name": "web", "image": "localhost/base:test", "port": "18080:80", **body}
    return e.client.post("/api/v1/services", json=payload, headers=headers)


def test_api_start_list_stop_with_project_isolation(env: Env, fake: FakePodman) -> None:  # noqa: F811
    alice, bob = env.auth("alice"), env.auth("bob")
    created = post(env, alice, env={"TOKEN": "x"}, health_cmd=["true"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["project"], body["state"], body["url"]) == ("p1", "running", "127.0.0.1:18080")
    assert fake.envs == [{"TOKEN": "x"}]
    listed = env.client.get("/api/v1/services", headers=alice).json()["items"]
    assert [s["name"] for s in listed] == ["web"]
    assert env.client.get("/api/v1/services", headers=bob).json()["items"] == []
    assert env.client.delete("/api/v1/services/web", headers=bob).status_code == 404
    again = post(env, alice)
    assert again.status_code == 409 and "already" in again.json()["message"]
    gone = env.client.delete("/api/v1/services/web", headers=alice)
    assert gone.status_code == 200 and gone.json()["state"] == "removed"
    assert env.client.get("/api/v1/services", headers=alice).json()["items"] == []
    assert fake.state == {}


def test_api_scopes_and_roles(env: Env, fake: FakePodman) -> None:  # noqa: F811
    assert post(env, env.auth("alice", scopes="read")).status_code == 403
    assert post(env, env.auth("carol")).status_code == 403  # a viewer
    assert post(env, env.auth("erin")).status_code == 422  # two projects: which one?
    assert env.client.post(
        "/api/v1/services?project=p2", json={"name": "web", "image": "localhost/base:test",
        "port": "18081"}, headers=env.auth("alice")).status_code == 404  # fmt: skip
    assert fake.calls == []  # nothing reached the runtime


def test_api_bad_input(env: Env, fake: FakePodman) -> None:  # noqa: F811
    alice = env.auth("alice")
    unknown = post(env, alice, image="localhost/nope:1")
    assert unknown.status_code == 422 and "localhost/nope:1" in unknown.json()["message"]
    assert post(env, alice, name="Bad Name").status_code == 422
    assert post(env, alice, mounts=["/etc:/etc2"]).status_code == 422  # outside the roots
    assert not any(c[1] == "run" for c in fake.calls)


def test_port_in_use_is_refused(env: Env, fake: FakePodman) -> None:  # noqa: F811
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_free(port)
        answer = post(env, env.auth("alice"), port=str(port))
    assert answer.status_code == 409 and str(port) in answer.json()["message"]


def test_supervisor_restarts_stopped_and_unhealthy(env: Env, fake: FakePodman) -> None:  # noqa: F811
    services: ServiceContainers = env.service.services
    services.start_spec(spec(health_cmd=("true",)), user="alice")
    assert services.supervise() == []
    assert services.get("p1", "web").row.health == "healthy"
    fake.healthy = False
    assert services.supervise() == []  # one failure is tolerated (unhealthy_after=2)
    assert services.get("p1", "web").row.health == "unhealthy"
    assert services.supervise() == [("p1", "web", "restarted")]
    assert ["podman", "restart", "--time", "5", "hexflow-svc-p1-web"] in fake.calls
    fake.healthy = True
    fake.state["hexflow-svc-p1-web"] = "exited"  # podman gave up on it
    assert services.supervise() == [("p1", "web", "restarted")]
    status = services.get("p1", "web")
    assert status.state == "running" and status.row.restarts == 2
    del fake.state["hexflow-svc-p1-web"]  # removed behind hexflow's back: run again
    assert services.supervise() == [("p1", "web", "restarted")]
    assert fake.state["hexflow-svc-p1-web"] == "running"


def test_failed_start_leaves_nothing(env: Env, fake: FakePodman) -> None:  # noqa: F811
    def failing(argv: Sequence[str], timeout: float = 60, **kw: Any) -> ToolResult:
        if argv[1] == "run":
            return ToolResult(125, "", "Error: something broke")
        return fake(argv, timeout, **kw)

    services: ServiceContainers = env.service.services
    services._run = failing
    with pytest.raises(ContainerError, match="something broke"):
        services.start_spec(spec(), user="alice")
    assert services.rows.list() == []
    with pytest.raises(Conflict):
        services.rows.add(_row())
        services.rows.add(_row())


def _row() -> Any:
    from hexflow.store.services_sql import ServiceRow

    return ServiceRow("p1", "x", "c", "i", 19999, {}, "running", "unknown", 0, "", "u", 0.0, 0.0)
