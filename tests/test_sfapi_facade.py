"""The SFAPI facade in-process, on SQLite and PostgreSQL: #SBATCH parsing, path
confinement (``..``, symlinks, absolute paths, encoded dots), the exact response shapes
sfapi_client's pydantic models validate, bad input, and projects kept apart."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hexflow.errors import SpecError
from hexflow.model import QoS
from hexflow.model.access import parse_scopes
from hexflow.service.sfapi.files import Area, FileProblem, ls, read_file, write_file
from hexflow.service.sfapi.sbatch import expand_pattern, parse_script, slurm_time
from tests import service_env
from tests.helpers import wait_for
from tests.service_env import Env

db_url, env = service_env.db_url, service_env.env  # fixtures

API = "/api/v1.2"


# ---------------------------------------------------------------------- #SBATCH
def test_sbatch_directives() -> None:
    script = """#!/bin/bash
# a comment
#SBATCH -N 2 --time=01:30:00
#SBATCH --qos=premium -J sim
#SBATCH -G4
#SBATCH --output=logs/%x-%j.out -e err-%j.txt
#SBATCH -c 8 --ntasks-per-node 2 --mem=4000
#SBATCH --constraint=gpu --exclusive
srun ./sim
#SBATCH --nodes=99
"""
    req = parse_script(script)
    assert (req.nodes, req.walltime, req.qos) == (2, 5400.0, QoS.URGENT)
    assert (req.name, req.gpus) == ("sim", 4)
    assert (req.output, req.error, req.cpus, req.memory) == (
        "logs/%x-%j.out", "err-%j.txt", 32.0, 4000 * 1024**2,
    )  # fmt: skip
    assert parse_script("#!/bin/sh\necho hi\n").output == "slurm-%j.out"
    assert parse_script("#SBATCH --gres=gpu:a100:3\n").gpus == 3
    assert parse_script("#SBATCH --gpus-per-node=2 -N 3\n").gpus == 6
    assert parse_script("#SBATCH -q debug\n").qos is QoS.INTERACTIVE
    assert expand_pattern("o-%x.%j.%u.%%", jobid="42", name="n", user="u") == "o-n.42.u.%"
    assert [slurm_time(t) for t in ("30", "5:00", "1:00:00", "1-2", "1-2:30")] == [
        1800.0, 300.0, 3600.0, 93600.0, 95400.0,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "match"),
    [
        ("#SBATCH --array=1-3\n", "unsupported option --array"),
        ("#SBATCH -Z 3\n", "unknown option -Z"),
        ("#SBATCH -q gold\n", "invalid qos"),
        ("#SBATCH -t soon\n", "--time"),
        ("#SBATCH -t 0\n", "--time"),
        ("#SBATCH -N zero\n", "--nodes"),
        ("#SBATCH --nodes\n", "needs a value"),
        ("#SBATCH 'unclosed\n", "cannot read"),
        ("#SBATCH --mem=lots\n", "mem"),
    ],
)
def test_bad_sbatch_directives(script: str, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        parse_script(script)


@given(st.text(max_size=200))
def test_sbatch_parser_never_crashes(text: str) -> None:
    try:
        parse_script("#SBATCH " + text)
    except SpecError:
        pass


# ---------------------------------------------------------------------- files
@pytest.fixture
def area(tmp_path: Path) -> Area:
    mine, other = tmp_path / "work" / "p1", tmp_path / "work" / "p2"
    (mine / "sub").mkdir(parents=True)
    other.mkdir(parents=True)
    (mine / "sub" / "f.txt").write_text("data\n")
    (other / "secret").write_text("no\n")
    (mine / "to-other").symlink_to(other)
    (mine / "to-secret").symlink_to(other / "secret")
    (mine / "inside").symlink_to(mine / "sub")
    return Area((mine.resolve(),), mine.resolve())


def test_paths_are_confined_to_the_roots(area: Area, tmp_path: Path) -> None:
    mine = area.roots[0]
    assert [e["name"] for e in ls(area, "sub")] == [".", "..", "f.txt"]
    assert [e["name"] for e in ls(area, f"{mine}/sub/f.txt")] == [f"{mine}/sub/f.txt"]
    assert ls(area, "sub/f.txt")[0]["name"] == "sub/f.txt"
    assert ls(area, "to-other")[0]["name"] == f"to-other -> {tmp_path / 'work' / 'p2'}"
    assert read_file(area, "inside/f.txt") == b"data\n"  # a symlink that stays inside
    for bad in (
        "../p2/secret", "sub/../../p2", "/etc/passwd", f"{mine}/../p2/secret", "to-other/secret",
        "/", "//etc", "sub/../../../../etc",
    ):  # fmt: skip
        for op in (lambda p: ls(area, p), lambda p: read_file(area, p)):
            with pytest.raises(FileProblem, match="outside"):
                op(bad)
        with pytest.raises(FileProblem, match="outside"):
            write_file(area, bad, b"x")
    # a symlink pointing out may be listed (as ls -l shows it), never followed
    assert ls(area, "to-secret")[0]["perms"].startswith("l")
    with pytest.raises(FileProblem, match="outside"):
        read_file(area, "to-secret")
    with pytest.raises(FileProblem, match="outside"):
        write_file(area, "to-secret", b"x")
    assert (tmp_path / "work" / "p2" / "secret").read_text() == "no\n"
    with pytest.raises(FileProblem, match="No such file or directory"):
        ls(area, "missing")
    with pytest.raises(FileProblem, match="No such file or directory"):
        write_file(area, "nodir/f", b"x")
    with pytest.raises(FileProblem, match="Is a directory"):
        write_file(area, "sub", b"x")
    with pytest.raises(FileProblem, match="invalid"):
        ls(area, "a\0b")
    nowhere = Area(area.roots, None)
    with pytest.raises(FileProblem, match="absolute path"):
        ls(nowhere, "sub")


@given(st.lists(st.sampled_from(["..", ".", "sub", "to-other", "to-secret", "x", ""]), max_size=6))
def test_no_combination_of_segments_escapes(segments: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        (root / "sub").mkdir(parents=True)
        (Path(tmp) / "outside").mkdir()
        (Path(tmp) / "outside" / "secret").write_text("s")
        (root / "to-other").symlink_to(Path(tmp) / "outside")
        (root / "to-secret").symlink_to(Path(tmp) / "outside" / "secret")
        area = Area((root.resolve(),), root.resolve())
        raw = "/".join(segments)
        try:
            data = read_file(area, raw)
        except FileProblem:
            return
        assert data != b"s"


# ---------------------------------------------------------------------- routes
def _form(env: Env, method: str, path: str, headers: dict[str, str], **data: Any) -> Any:
    return env.client.request(method, API + path, headers=headers, data=data or None)


def test_public_routes_and_shapes(env: Env) -> None:
    statuses = env.client.get(API + "/status").json()
    assert [s["name"] for s in statuses] == ["perlmutter"]
    assert statuses[0]["status"] == "active"
    assert env.client.get(API + "/status/perlmutter").json()["system_type"] == "compute"
    assert env.client.get(API + "/status/outages").json() == [[]]
    assert env.client.get(API + "/status/outages/planned/perlmutter").json() == []
    assert env.client.get(API + "/status/notes").json() == [[]]
    config = {c["key"]: c["value"] for c in env.client.get(API + "/meta/config").json()}
    assert config["compute.targets"] == "perlmutter"
    assert env.client.get(API + "/meta/changelog").json()[0]["date"]
    r = env.client.get(API + "/status/mars")
    assert r.status_code == 404 and "perlmutter" in r.json()["hint"]


def test_every_facade_route_needs_a_token_with_the_scope(env: Env) -> None:
    from hexflow.service.api import PUBLIC_PATHS

    paths = env.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    private = [
        (m.upper(), p) for p, ops in paths.items() for m in ops
        if p.startswith(API) and p not in PUBLIC_PATHS
    ]  # fmt: skip
    assert len(private) >= 15
    fill = {"{machine}": "perlmutter", "{jobid}": "j", "{task_id}": "t", "{path}": "f",
            "{group}": "p1"}  # fmt: skip
    invoke_only = env.auth("dave", "p1", "invoke")
    for method, template in private:
        path = template
        for key, value in fill.items():
            path = path.replace(key, value)
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = env.client.request(method, path, headers=headers)
            assert r.status_code == 401 and r.json()["error"] == "unauthorized", (method, path)
        r = env.client.request(method, path, headers=invoke_only)
        assert r.status_code == 403 and "scope" in r.json()["message"], (method, path, r.text)


def test_jobs_commands_and_tasks_in_process(env: Env) -> None:
    alice = env.auth("alice", "p1")
    r = _form(env, "POST", "/compute/jobs/perlmutter", alice, job="#!/bin/bash\necho hi\n",
              isPath="false")  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "OK" and r.json()["error"] is None
    jobid = r.json()["task_id"]
    task = env.client.get(f"{API}/tasks/{jobid}", headers=alice).json()
    assert task["status"] == "completed" and json.loads(task["result"])["jobid"] == jobid

    def done() -> Any:
        rows = env.client.get(
            f"{API}/compute/jobs/perlmutter", headers=alice,
            params={"sacct": "true", "kwargs": f"jobid={jobid}"},
        ).json()["output"]  # fmt: skip
        return rows if rows and rows[0]["state"] == "COMPLETED" else None

    [row] = wait_for(done, 60, "the job to complete")
    assert all(isinstance(v, str) for v in row.values()) and row["exitcode"] == "0:0"
    one = env.client.get(f"{API}/compute/jobs/perlmutter/{jobid}", headers=alice,
                         params={"sacct": "true"}).json()  # fmt: skip
    assert one["output"][0]["jobid"] == jobid
    squeue = env.client.get(f"{API}/compute/jobs/perlmutter", headers=alice).json()
    assert squeue == {"status": "OK", "error": None, "output": []}
    r = _form(env, "POST", "/utilities/command/perlmutter", alice, executable="pwd")
    command = r.json()["task_id"]

    def finished() -> Any:
        got = env.client.get(f"{API}/tasks/{command}", headers=alice).json()
        return got if got["status"] != "new" else None

    result = json.loads(wait_for(finished, 60, "the command")["result"])
    home = env.service.config.home / "work" / "p1"
    assert result == {"status": "ok", "output": f"{home.resolve()}\n", "error": "",
                      "exit_code": 0}  # fmt: skip
    listed = env.client.get(f"{API}/tasks", headers=alice).json()["tasks"]
    assert {t["id"] for t in listed} == {jobid, command}


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "field"),
    [
        ("POST", "/compute/jobs/perlmutter", {"isPath": "false"}, 422, "body.job"),
        ("POST", "/compute/jobs/perlmutter", {"job": "x", "isPath": "perhaps"}, 422, "body.isPath"),
        ("POST", "/compute/jobs/mars", {"job": "#!/bin/sh\n", "isPath": "false"}, 404, None),
        ("POST", "/utilities/command/perlmutter", {}, 422, "body.executable"),
        ("GET", "/compute/jobs/perlmutter?kwargs=color%3Dred", None, 422, "kwargs"),
        ("GET", "/compute/jobs/perlmutter?kwargs=nokey", None, 422, "kwargs"),
        ("GET", "/compute/jobs/perlmutter?sacct=sometimes", None, 422, "query.sacct"),
        ("GET", "/utilities/ls/mars/tmp", None, 404, None),
        ("GET", "/utilities/download/perlmutter/x?binary=2", None, 422, "query.binary"),
        ("PUT", "/utilities/upload/perlmutter/x", {}, 422, "body.file"),
        ("GET", "/tasks/nosuch", None, 404, None),
        ("GET", "/account/groups/p2", None, 404, None),
    ],
)
def test_bad_input(
    env: Env, method: str, path: str, data: Any, status: int, field: str | None
) -> None:
    r = env.client.request(method, API + path, headers=env.auth("alice", "p1"), data=data)
    assert r.status_code == status, r.text
    assert r.json()["hint"] or r.json()["message"]
    if field:
        assert r.json()["field"] == field


def test_operational_errors_are_status_error(env: Env) -> None:
    alice = env.auth("alice", "p1")
    for job, is_path, match in [
        ("/nowhere/job.sh", "true", "outside"),
        ("missing.sh", "true", "Unable to open file"),
        ("#!/bin/sh\n#SBATCH -q gold\n", "false", "invalid qos"),
        ("#!/bin/sh\n#SBATCH -A p2\n", "false", "Invalid account"),
        ("   ", "false", "empty"),
    ]:
        r = _form(env, "POST", "/compute/jobs/perlmutter", alice, job=job, isPath=is_path)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "ERROR" and match in body["error"]
        assert body["task_id"] == ""
    r = env.client.get(f"{API}/utilities/ls/perlmutter/nothing", headers=alice)
    assert r.json() == {
        "status": "ERROR", "entries": [],
        "error": "ls: cannot access 'nothing': No such file or directory",
    }  # fmt: skip
    r = env.client.get(f"{API}/utilities/ls/perlmutter/%2E%2E/p2", headers=alice)
    assert r.json()["status"] == "ERROR" and "outside" in r.json()["error"]
    r = env.client.get(f"{API}/utilities/download/perlmutter//etc/passwd", headers=alice)
    assert r.json()["status"] == "ERROR" and "root:" not in r.text
    r = env.client.request("DELETE", f"{API}/compute/jobs/perlmutter/nosuch", headers=alice)
    assert r.status_code == 200 and "Invalid job id" in r.json()["error"]


def test_projects_are_kept_apart(env: Env) -> None:
    alice, bob = env.auth("alice", "p1"), env.auth("bob", "p2")
    r = _form(env, "POST", "/compute/jobs/perlmutter", alice, job="#!/bin/sh\nsleep 60\n",
              isPath="false")  # fmt: skip
    jobid = r.json()["task_id"]
    upload = env.client.put(
        f"{API}/utilities/upload/perlmutter/mine.txt", headers=alice,
        files={"file": ("upload", b"alice's")},
    )  # fmt: skip
    assert upload.json()["status"] == "OK"
    mine = (env.service.config.home / "work" / "p1" / "mine.txt").resolve()
    assert mine.read_bytes() == b"alice's" and oct(mine.stat().st_mode)[-3:] == "600"
    # bob sees nothing of it
    for params in ({"kwargs": f"jobid={jobid}"}, {"kwargs": "user=alice", "sacct": "true"}):
        rows = env.client.get(f"{API}/compute/jobs/perlmutter", headers=bob, params=params)
        assert rows.json()["output"] == []
    assert env.client.get(f"{API}/tasks/{jobid}", headers=bob).status_code == 404
    assert env.client.delete(f"{API}/tasks/{jobid}", headers=bob).status_code == 404
    r = env.client.delete(f"{API}/compute/jobs/perlmutter/{jobid}", headers=bob)
    assert r.json()["status"] == "ERROR"
    for path in (f"/utilities/ls/perlmutter/{mine}", f"/utilities/download/perlmutter/{mine}"):
        got = env.client.get(API + path, headers=bob).json()
        assert got["status"] == "ERROR" and "alice's" not in json.dumps(got)
    r = env.client.put(
        f"{API}/utilities/upload/perlmutter/{mine}", headers=bob, files={"file": ("x", b"bob")}
    )
    assert r.json()["status"] == "ERROR" and mine.read_bytes() == b"alice's"
    r = env.client.get(f"{API}/account/", headers=bob, params={"username": "alice"})
    assert r.status_code == 404
    assert env.client.get(f"{API}/account/groups", headers=bob).json()["groups"][0]["name"] == "p2"
    # a viewer of p1 reads but may not cancel or write
    carol = env.auth("carol", "p1", "read,submit")
    r = env.client.delete(f"{API}/compute/jobs/perlmutter/{jobid}", headers=carol)
    assert r.status_code == 403
    r = env.client.put(
        f"{API}/utilities/upload/perlmutter/{mine}", headers=carol, files={"file": ("x", b"c")}
    )
    assert r.json()["status"] == "ERROR" and mine.read_bytes() == b"alice's"
    r = env.client.delete(f"{API}/compute/jobs/perlmutter/{jobid}", headers=alice)
    assert r.json()["status"] == "OK"
    actions = {(e.actor, e.action, e.outcome) for e in env.service.db.log.entries(projects=None)}
    assert ("alice", "sfapi.job.submit", "ok") in actions
    assert ("bob", "sfapi.job.cancel", "ok") in actions  # answered "invalid job id"
    assert ("carol", "sfapi.job.cancel", "denied") in actions


def test_account_routes(env: Env) -> None:
    erin = env.auth("erin")  # a member of p1 and p2, token unbound
    user = env.client.get(f"{API}/account/", headers=erin).json()
    assert user["name"] == "erin" and isinstance(user["uid"], int)
    assert env.client.get(f"{API}/account", headers=erin).json() == user
    projects = env.client.get(f"{API}/account/projects", headers=erin).json()
    roles_by_project = [(p["repo_name"], p["iris_role"]) for p in projects]
    assert roles_by_project == [("p1", "member"), ("p2", "member")]
    roles = env.client.get(f"{API}/account/roles", headers=erin).json()
    assert {r["repo_name"] for r in roles} == {"p1", "p2"}
    group = env.client.get(f"{API}/account/groups/p2", headers=erin).json()
    assert {u["name"] for u in group["users"]} == {"bob", "erin"}
    r = env.client.get(f"{API}/account/", headers=erin, params={"username": "bob"})
    assert r.json()["name"] == "bob"
    env.admin.create_client("erin", None, parse_scopes("read"))
    [client] = env.client.get(f"{API}/account/clients", headers=erin).json()
    assert len(client["clientId"]) == 13 and "private" not in json.dumps(client)
    r = _form(env, "POST", "/compute/jobs/perlmutter", erin, job="#!/bin/sh\necho\n",
              isPath="false")  # fmt: skip
    assert r.json()["status"] == "ERROR" and "several projects" in r.json()["error"]
    script = "#!/bin/sh\n#SBATCH -A p2\necho\n"
    r = _form(env, "POST", "/compute/jobs/perlmutter", erin, job=script, isPath="false")
    assert r.json()["status"] == "OK"
    ls = env.client.get(f"{API}/utilities/ls/perlmutter/relative", headers=erin).json()
    assert ls["status"] == "ERROR" and "absolute path" in ls["error"]


def test_outages_from_the_config(tmp_path: Path, db_url: str) -> None:
    from fastapi.testclient import TestClient

    from hexflow.service.api import create_app
    from hexflow.service.sites import load_outages

    now = time.time()
    outages = load_outages(json.dumps([
        {"site": "local", "start": now - 60, "end": None, "description": "down now"},
        {"site": "local", "start": now + 3600, "end": now + 7200, "notes": "later"},
        {"site": "elsewhere", "start": now - 60},
    ]))  # fmt: skip
    config = service_env.make_config(tmp_path, db_url, outages=outages)
    with TestClient(create_app(config)) as client:
        status = client.get(API + "/status/perlmutter").json()
        assert status["status"] == "unavailable" and status["notes"] == ["down now"]
        [[active]] = client.get(API + "/status/outages").json()
        assert active["status"] == "Active" and "end_at" not in active
        [[planned]] = client.get(API + "/status/outages/planned").json()
        assert planned["status"] == "Planned" and planned["notes"] == "later"
        assert client.get(API + "/status/notes/perlmutter").json()[0]["active"] is True
    for bad in ('{"site": 1}', "[{}]", '[{"site": "x", "start": "tomorrow"}]', "nope"):
        with pytest.raises(SpecError):
            load_outages(bad)
