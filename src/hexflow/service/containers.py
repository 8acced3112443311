"""ServiceContainers: a project's long-lived containers on the service node — start, stop,
list, logs — and ``supervise``, one pass of health checks and restarts.

Restarts are split in two on purpose: podman restarts a container whose process *exits*
non-zero (``--restart=on-failure``, done by conmon, so it works while no hexflow server
runs), and hexflow's supervisor (``Supervisor``, a thread of the server) restarts one that
*runs but fails its health check* ``unhealthy_after`` times in a row, or that podman left
stopped; podman's own healthchecks need systemd timers, which these nodes lack. The store
row exists exactly while hexflow owns the container.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from hexflow.errors import Conflict, ContainerError, NotFound
from hexflow.executors.containers import services as builders
from hexflow.executors.containers.services import ServiceSpec
from hexflow.executors.containers.tools import ToolResult, run_tool
from hexflow.model.access import Scope
from hexflow.service.audit import Audit
from hexflow.service.auth import Principal
from hexflow.store.service_db import ServiceDb
from hexflow.store.services_sql import ServiceRow, ServiceRows

Runner = Callable[..., ToolResult]


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """A service as stored, with what podman says about it now."""

    row: ServiceRow
    state: str  # running, restarting, exited, missing...

    def as_json(self) -> dict[str, object]:
        spec = self.row.spec
        return {
            "project": self.row.project,
            "name": self.row.name,
            "container": self.row.container,
            "image": self.row.image,
            "port": self.row.host_port,
            "container_port": spec["container_port"],
            "url": f"127.0.0.1:{self.row.host_port}",
            "state": self.state,
            "health": self.row.health,
            "restarts": self.row.restarts,
            "message": self.row.message,
            "user": self.row.user_name,
            "created_at": self.row.created_at,
        }


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def tcp_open(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class ServiceContainers:
    def __init__(
        self,
        db: ServiceDb,
        audit: Audit | None = None,
        *,
        runner: Runner = run_tool,
        clock: Callable[[], float] = time.time,
        executable: str = "podman",
        unhealthy_after: int = 2,
        mount_roots: Sequence[str] = (),
    ) -> None:
        self.rows = ServiceRows(db)
        self._audit = audit
        self._run = runner
        self._now = clock
        self._podman = executable
        self.unhealthy_after = unhealthy_after
        self.mount_roots = tuple(os.path.realpath(r) for r in mount_roots)
        self._fails: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ as a user
    def start(self, who: Principal, project: str | None, *, source: str | None = None,
              **request: Any) -> ServiceStatus:  # fmt: skip
        """``request``: the keywords of ``services.make_spec`` (name, image, port, ...)."""
        project = project or who.default_project(Scope.SUBMIT)
        with self._action(who, "service.start", project, str(request.get("name")), source):
            who.check_project(project, Scope.SUBMIT)
            return self.start_spec(builders.make_spec(project, **request), user=who.name)

    def list_services(self, who: Principal, project: str | None) -> list[ServiceStatus]:
        who.require_scope(Scope.READ)
        projects = who.projects(Scope.READ)
        if project is not None:
            who.check_project(project, Scope.READ)
            projects = {project}
        return self.statuses(projects)

    def stop(
        self, who: Principal, project: str | None, name: str, *, source: str | None = None
    ) -> ServiceStatus:
        project = project or who.default_project(Scope.SUBMIT)
        with self._action(who, "service.stop", project, name, source):
            who.check_project(project, Scope.SUBMIT)
            return self.stop_named(project, name)

    @contextmanager
    def _action(
        self, who: Principal, action: str, project: str, target: str, source: str | None
    ) -> Iterator[None]:
        if self._audit is None:
            yield
            return
        with self._audit.action(who.name, action, project=project, target=target, source=source):
            yield

    # ------------------------------------------------------------ on the node (CLI, tests)
    def start_spec(self, spec: ServiceSpec, *, user: str) -> ServiceStatus:
        """Check, record, run. Refused before any container starts: an image podman does not
        have, a port in use, a name the project uses, a mount outside the allowed roots."""
        self._check_mounts(spec)
        if self.rows.get(spec.project, spec.name) is not None:
            raise Conflict(
                f"project {spec.project!r} has a service {spec.name!r} already",
                hint=f"stop it first: hexflow services stop {spec.name}",
                name=spec.name,
            )
        found = self._run(builders.image_exists_argv(spec.image, self._podman), timeout=30)
        if found.returncode != 0:
            raise ContainerError(
                f"image {spec.image!r} is not available to {self._podman} "
                f"({found.message if found.returncode != 1 else 'not in the local store'}); "
                "hexflow never pulls images",
                hint="build, load or pull it first",
                image=spec.image,
                status=422,
            )
        if not port_free(spec.host_port):
            raise Conflict(
                f"port {spec.host_port} on 127.0.0.1 is in use",
                hint="choose another --port",
                port=spec.host_port,
            )
        now = self._now()
        row = ServiceRow(
            spec.project, spec.name, spec.container, spec.image, spec.host_port,
            spec.as_json(), "starting", "unknown", 0, "", user, now, now,
        )  # fmt: skip
        self.rows.add(row)  # Conflict on a race for the name or the port
        env = dict(spec.env)
        done = self._run(builders.run_argv(spec, self._podman), timeout=60, env=env)
        if done.returncode != 0:
            self._run(builders.remove_argv(spec.container, self._podman), timeout=30)
            self.rows.remove(spec.project, spec.name)
            raise ContainerError(
                f"service {spec.name!r} did not start: {done.message}",
                hint="check the image, command and port",
                name=spec.name,
                status=422,
            )
        self.rows.update(spec.project, spec.name, state="running", updated_at=self._now())
        return self._status(self._get(spec.project, spec.name))

    def stop_named(self, project: str, name: str) -> ServiceStatus:
        row = self._get(project, name)
        done = self._run(builders.remove_argv(row.container, self._podman), timeout=60)
        if done.returncode != 0:
            raise ContainerError(f"cannot remove service {name!r}: {done.message}", name=name)
        self.rows.remove(project, name)
        self._fails.pop((project, name), None)
        return ServiceStatus(row, "removed")

    def statuses(self, projects: Sequence[str] | set[str] | None = None) -> list[ServiceStatus]:
        return [self._status(r) for r in self.rows.list(projects)]

    def get(self, project: str, name: str) -> ServiceStatus:
        return self._status(self._get(project, name))

    def logs(self, project: str, name: str, tail: int = 200) -> str:
        row = self._get(project, name)
        done = self._run(builders.logs_argv(row.container, tail, self._podman), timeout=30)
        return done.stdout + done.stderr

    # ------------------------------------------------------------ the supervisor
    def supervise(self) -> list[tuple[str, str, str]]:
        """One pass over every service: health, and a restart where needed. Returns the
        actions taken as (project, name, what) — for the audit log and tests."""
        actions = []
        with self._lock:
            for row in self.rows.list():
                what = self._supervise_one(row)
                if what:
                    actions.append((row.project, row.name, what))
        return actions

    def _supervise_one(self, row: ServiceRow) -> str | None:
        spec = ServiceSpec.from_json(row.project, row.name, row.spec)
        state, podman_restarts, exit_code = self._inspect(row.container)
        key = (row.project, row.name)
        now = self._now()
        if state in ("exited", "stopped", "created", "missing"):  # podman gave up or lost it
            if state == "missing":
                done = self._run(
                    builders.run_argv(spec, self._podman), timeout=60, env=dict(spec.env)
                )
            else:
                done = self._run([self._podman, "start", row.container], timeout=60)
            message = f"restarted by hexflow: the container was {state} (exit code {exit_code})"
            if done.returncode != 0:
                message = f"restart failed: {done.message}"
            self.rows.update(
                *key,
                state="restarting",
                health="unhealthy",
                restarts=row.restarts + 1,
                message=message,
                updated_at=now,
            )
            return "restarted"
        if state != "running":
            self.rows.update(*key, state=state, updated_at=now)
            return None
        healthy = self._healthy(spec)
        restarts = max(row.restarts, podman_restarts)
        if healthy is None or healthy:
            self._fails.pop(key, None)
            health = "unknown" if healthy is None else "healthy"
            self.rows.update(
                *key, state="running", health=health, restarts=restarts, updated_at=now
            )
            return None
        fails = self._fails.get(key, 0) + 1
        self._fails[key] = fails
        if fails < self.unhealthy_after:
            self.rows.update(
                *key, state="running", health="unhealthy", restarts=restarts, updated_at=now
            )
            return None
        self._fails.pop(key, None)
        done = self._run(builders.restart_argv(row.container, self._podman), timeout=60)
        message = f"restarted by hexflow after {fails} failed health checks"
        if done.returncode != 0:
            message = f"restart after failed health checks failed: {done.message}"
        self.rows.update(
            *key,
            state="running",
            health="unhealthy",
            restarts=restarts + 1,
            message=message,
            updated_at=now,
        )
        return "restarted"

    def _healthy(self, spec: ServiceSpec) -> bool | None:
        if spec.health_cmd:
            return self._run(builders.health_argv(spec, self._podman), timeout=10).returncode == 0
        if spec.health_tcp:
            return tcp_open(spec.host_port)
        return None

    def _inspect(self, container: str) -> tuple[str, int, int]:
        done = self._run(builders.inspect_argv(container, self._podman), timeout=30)
        if done.returncode != 0:
            return "missing", 0, 0
        return builders.parse_state(done.stdout)

    def _status(self, row: ServiceRow) -> ServiceStatus:
        state, podman_restarts, _ = self._inspect(row.container)
        if podman_restarts > row.restarts:
            row = replace(row, restarts=podman_restarts)
        return ServiceStatus(row, state)

    def _get(self, project: str, name: str) -> ServiceRow:
        row = self.rows.get(project, name)
        if row is None:
            raise NotFound(
                f"no service {name!r} in project {project!r}",
                hint="hexflow services list shows them",
                name=name,
            )
        return row

    def _check_mounts(self, spec: ServiceSpec) -> None:
        for mount in spec.mounts:
            real = os.path.realpath(mount.source)
            if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in self.mount_roots):
                raise ContainerError(
                    f"mount {mount.source!r} is outside the allowed roots",
                    hint=f"allowed: {', '.join(self.mount_roots) or 'none'} (HEXFLOW_MOUNT_ROOTS)",
                    field="mount",
                    status=422,
                )
            if not os.path.exists(real):
                raise ContainerError(
                    f"mount {mount.source!r} does not exist", field="mount", status=422
                )


class Supervisor:
    """Runs ``ServiceContainers.supervise`` every ``interval`` seconds on a daemon thread."""

    def __init__(self, containers: ServiceContainers, interval: float = 10.0) -> None:
        self._containers = containers
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="hexflow-services", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._containers.supervise()
            except Exception:  # noqa: BLE001,S112 - a store hiccup must not end supervision
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def env_pairs(pairs: Sequence[str]) -> Mapping[str, str]:
    """``K=V`` strings (CLI ``--env``) -> a mapping; the value may hold '='."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            from hexflow.errors import SpecError

            raise SpecError(f"bad --env {pair!r}", hint="give NAME=VALUE", field="env")
        env[key] = value
    return env
