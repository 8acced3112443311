"""The SFAPI facade's Globus transfers (``status/globus``, ``storage/globus/transfer``) and
groups (``account/groups``), on SQLite and PostgreSQL: through raw HTTP in-process, with
bad input (unknown endpoints, path escapes, unknown groups and users, non-admins, bad
actions), and through the real ``sfapi_client`` against a running server."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import service_env
from tests.helpers import wait_for
from tests.remote_env import Live, admin, live_server
from tests.service_env import Env

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Authlib's deprecation notice about httpx
    from sfapi_client import Client

db_url, env = service_env.db_url, service_env.env  # fixtures

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

API = "/api/v1.2"
XFER = API + "/storage/globus/transfer"


def _home(env: Env, project: str) -> Path:
    root = env.service.config.home / "work" / project
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def _start(env: Env, headers: dict[str, str], **form: str) -> httpx.Response:
    body = {"source_uuid": "perlmutter", "target_uuid": "dtn", "label": "", **form}
    return env.client.post(XFER, headers=headers, data=body)


def _finished(env: Env, headers: dict[str, str], transfer_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        got: dict[str, Any] = env.client.get(f"{XFER}/{transfer_id}", headers=headers).json()
        return got if got["globus_status"] != "ACTIVE" else None

    result: dict[str, Any] = wait_for(ended, 60, f"transfer {transfer_id}", every=0.05)
    return result


# ---------------------------------------------------------------------- transfers
def test_globus_status_is_public(env: Env) -> None:
    status = env.client.get(f"{API}/status/globus").json()
    assert status["name"] == "globus" and status["status"] == "active"
    assert (
        "perlmutter (files)" in status["description"] and "qss (qss@local)" in status["description"]
    )


def test_a_file_and_a_directory_through_a_tier_and_back(env: Env) -> None:
    alice, home = env.auth("alice", "p1"), _home(env, "p1")
    (home / "src.txt").write_text("hello globus\n")
    r = _start(env, alice, source_dir=str(home / "src.txt"), target_dir="copy.txt", label="l1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "OK" and body["reason"] is None
    assert re.fullmatch(r"[0-9a-f]{12}", body["transfer_id"])
    done = _finished(env, alice, body["transfer_id"])
    assert done["globus_status"] == "SUCCEEDED" and done["reason"] is None, done
    assert done["bytes_transferred"] == 13 and done["status"] == "OK"
    assert done["completion_time"] and isinstance(done["effective_bytes_per_second"], int)
    assert (home / "copy.txt").read_text() == "hello globus\n"
    native = env.client.get(f"/api/v1/transfers/{body['transfer_id']}", headers=alice).json()
    assert native["state"] == "succeeded"  # the same, real hexflow transfer

    (home / "tree" / "sub").mkdir(parents=True)
    (home / "tree" / "a.txt").write_text("a")
    (home / "tree" / "sub" / "b.txt").write_text("bb")
    (home / "tree" / "inside").symlink_to(home / "src.txt")  # stays inside: fine
    r = _start(env, alice, source_dir="tree", target_uuid="qss", target_dir="/run1/")
    assert r.status_code == 403 and "outside" in r.json()["message"]  # '/' is the real root
    tier = Path(env.service.data.storage.tier("qss").root) / "p1"
    r = _start(env, alice, source_dir="tree", target_uuid="qss", target_dir="run1/")
    assert _finished(env, alice, r.json()["transfer_id"])["globus_status"] == "SUCCEEDED"
    assert (tier / "run1" / "sub" / "b.txt").read_text() == "bb"
    assert (tier / "run1" / "inside").read_text() == "hello globus\n"
    r = _start(env, alice, source_uuid="qss", source_dir=f"{tier}/run1", target_dir="back/")
    assert _finished(env, alice, r.json()["transfer_id"])["globus_status"] == "SUCCEEDED"
    assert (home / "back" / "sub" / "b.txt").read_text() == "bb"
    entries = {(e.actor, e.action, e.outcome) for e in env.service.db.log.entries(projects=None)}
    assert ("alice", "sfapi.globus.transfer", "ok") in entries
    assert ("alice", "sfapi.globus.transfer", "denied") in entries


def test_a_failed_copy_is_reported(env: Env) -> None:
    alice, home = env.auth("alice", "p1"), _home(env, "p1")
    (home / "src.txt").write_text("x")
    (home / "plain").write_text("a file, not a directory")
    r = _start(env, alice, source_dir="src.txt", target_dir="plain/x.txt")
    done = _finished(env, alice, r.json()["transfer_id"])
    assert done["globus_status"] == "FAILED" and done["status"] == "OK"
    assert done["reason"] and done["bytes_transferred"] == 0


@pytest.mark.parametrize(
    ("form", "status", "match"),
    [
        ({"source_uuid": "mars"}, 404, "no transfer endpoint 'mars'"),
        ({"target_uuid": "dtn02"}, 404, "no transfer endpoint 'dtn02'"),
        ({"source_dir": "../p2/secret"}, 403, "outside"),
        ({"source_dir": "sub/../../p2/secret"}, 403, "outside"),
        ({"source_dir": "/etc/passwd"}, 403, "outside"),
        ({"source_dir": "//etc/passwd"}, 403, "outside"),
        ({"target_dir": "/tmp/stolen"}, 403, "outside"),
        ({"target_dir": "../p2/planted"}, 403, "outside"),
        ({"source_dir": "to-p2/secret"}, 403, "outside"),  # a symlinked directory out
        ({"source_dir": "to-secret"}, 403, "outside"),  # a symlinked file out
        ({"source_dir": "leaky"}, 403, "outside"),  # a directory holding a link out
        ({"source_dir": "tree", "target_dir": "trap"}, 403, "outside"),  # trap/sub -> p2
        ({"target_dir": "to-p2"}, 403, "outside"),  # into a linked directory out
        ({"target_uuid": "qss", "target_dir": "../p2/x"}, 403, "outside"),
        ({"source_dir": "nothing-here"}, 404, "no such file"),
        ({"source_dir": "src\0x"}, 422, "not a path"),
    ],
)
def test_bad_transfers_are_refused(env: Env, form: dict[str, str], status: int, match: str) -> None:
    home, other = _home(env, "p1"), _home(env, "p2")
    (other / "secret").write_text("bob's")
    (home / "src.txt").write_text("x")
    (home / "to-p2").symlink_to(other)
    (home / "to-secret").symlink_to(other / "secret")
    (home / "leaky").mkdir()
    (home / "leaky" / "ok.txt").write_text("fine")
    (home / "leaky" / "out").symlink_to(other / "secret")
    (home / "tree" / "sub").mkdir(parents=True)
    (home / "tree" / "sub" / "f").write_text("f")
    (home / "trap").mkdir()
    (home / "trap" / "sub").symlink_to(other)
    full = {"source_dir": "src.txt", "target_dir": "copy.txt", **form}
    r = _start(env, env.auth("alice", "p1"), **full)
    assert r.status_code == status, r.text
    assert match in r.json()["message"] and r.json()["hint"]
    assert sorted(p.name for p in other.iterdir()) == ["secret"]  # nothing written there
    assert not list(Path("/tmp").glob("stolen"))


def test_transfer_form_and_access_errors(env: Env) -> None:
    alice, bob = env.auth("alice", "p1"), env.auth("bob", "p2")
    (_home(env, "p1") / "src.txt").write_text("x")
    r = env.client.post(XFER, headers=alice, data={"source_uuid": "perlmutter"})
    assert r.status_code == 422 and r.json()["field"].startswith("body.")
    r = _start(env, env.auth("carol", "p1", "read"), source_dir="src.txt", target_dir="c")
    assert r.status_code == 403  # the read scope does not start transfers
    r = _start(env, env.auth("carol", "p1"), source_dir="src.txt", target_dir="c")
    assert r.status_code == 403  # a viewer may not write
    tid = _start(env, alice, source_dir="src.txt", target_dir="c").json()["transfer_id"]
    _finished(env, alice, tid)
    for who, transfer_id in ((bob, tid), (alice, "nosuch"), (alice, "0" * 12)):
        r = env.client.get(f"{XFER}/{transfer_id}", headers=who)
        assert r.status_code == 404 and r.json()["hint"]
    # erin reaches p1 and p2: a relative target names no project, an absolute one does
    erin = env.auth("erin")
    p2 = _home(env, "p2")
    (p2 / "e.txt").write_text("erin's")
    r = _start(env, erin, source_dir="e.txt", target_dir="f.txt")
    assert r.status_code == 422 and "which project" in r.json()["message"]
    r = _start(env, erin, source_dir=str(p2 / "e.txt"), target_dir=str(p2 / "f.txt"))
    assert _finished(env, erin, r.json()["transfer_id"])["globus_status"] == "SUCCEEDED"
    r = _start(env, erin, source_dir=str(_home(env, "p1") / "src.txt"), target_dir=str(p2))
    assert r.status_code == 403  # both ends lie in the transfer's one project


def test_endpoints_are_configurable(tmp_path: Path, db_url: str) -> None:
    from fastapi.testclient import TestClient

    from hexflow.errors import SpecError
    from hexflow.service import Service
    from hexflow.service.api import create_app

    config = service_env.make_config(
        tmp_path, db_url, sfapi_endpoints=(("cori", "files"), ("fast", "pss"))
    )
    with TestClient(create_app(config)) as client:
        desc = client.get(f"{API}/status/globus").json()["description"]
        assert "cori (files)" in desc and "fast (pss@local)" in desc and "qss" not in desc
    bad = service_env.make_config(tmp_path, db_url, sfapi_endpoints=(("x", "nosuchtier"),))
    with pytest.raises(SpecError, match="--sfapi-endpoint x=nosuchtier"):
        Service(bad)


# ---------------------------------------------------------------------- groups
def _group(env: Env, headers: dict[str, str], method: str, path: str, **form: str) -> Any:
    return env.client.request(method, f"{API}/account/groups{path}", headers=headers, data=form)


def test_groups_created_and_changed_by_a_project_admin(env: Env) -> None:
    dave = env.auth("dave", "p1", "admin")
    r = _group(env, dave, "POST", "", name="analysts", repo_name="p1")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "analysts" and r.json()["users"] == []
    assert isinstance(r.json()["gid"], int)
    r = _group(env, dave, "PUT", "/analysts", group="analysts", action="batch_add",
               usernames="alice, erin,alice")  # fmt: skip
    assert [u["name"] for u in r.json()["users"]] == ["alice", "erin"]
    r = _group(env, dave, "PUT", "/analysts", action="batch_remove", usernames="alice")
    assert [u["name"] for u in r.json()["users"]] == ["erin"]
    alice = env.auth("alice", "p1")
    listed = env.client.get(f"{API}/account/groups", headers=alice).json()["groups"]
    assert [g["name"] for g in listed] == ["p1", "analysts"]
    got = env.client.get(f"{API}/account/groups/analysts", headers=alice).json()
    assert got == r.json()
    bob = env.auth("bob", "p2")
    assert env.client.get(f"{API}/account/groups/analysts", headers=bob).status_code == 404
    names = [
        g["name"] for g in env.client.get(f"{API}/account/groups", headers=bob).json()["groups"]
    ]
    assert names == ["p2"]
    actions = [(e.actor, e.action, e.outcome, e.target)
               for e in env.service.db.log.entries(projects=None)]  # fmt: skip
    assert ("dave", "sfapi.group.create", "ok", "analysts") in actions
    assert ("dave", "sfapi.group.remove", "ok", "analysts") in actions


@pytest.mark.parametrize(
    ("who", "method", "path", "form", "status", "match"),
    [
        ("alice", "POST", "", {"name": "g2", "repo_name": "p1"}, 403, "scope"),
        ("alice:admin", "POST", "", {"name": "g2", "repo_name": "p1"}, 403, "role"),
        ("alice:admin", "PUT", "/analysts", {"action": "batch_add", "usernames": "carol"},
         403, "role"),
        ("dave:admin", "POST", "", {"name": "analysts", "repo_name": "p1"}, 409, "taken"),
        ("dave:admin", "POST", "", {"name": "p2", "repo_name": "p1"}, 409, "taken"),
        ("dave:admin", "POST", "", {"name": "9lives", "repo_name": "p1"}, 422, "bad group name"),
        ("dave:admin", "POST", "", {"name": "g2", "repo_name": "p2"}, 404, "no project"),
        ("dave:admin", "POST", "", {"name": "g2"}, 422, "repo_name"),
        ("dave:admin", "PUT", "/nosuch", {"action": "batch_add", "usernames": "alice"}, 404,
         "no group"),
        ("dave:admin", "PUT", "/analysts", {"action": "batch_add", "usernames": "alice,bob"}, 422,
         "not members of project 'p1': bob"),
        ("dave:admin", "PUT", "/analysts", {"action": "batch_add", "usernames": "ghost"}, 422,
         "ghost"),
        ("dave:admin", "PUT", "/analysts", {"action": "batch_add", "usernames": " , "}, 422,
         "no usernames"),
        ("dave:admin", "PUT", "/analysts", {"action": "batch_delete", "usernames": "alice"}, 422,
         "action"),
        ("dave:admin", "PUT", "/analysts", {"action": "batch_add", "usernames": "alice",
                                      "group": "other"}, 422, "names group 'other'"),
        ("dave:admin", "PUT", "/p1", {"action": "batch_add", "usernames": "alice"}, 409,
         "project"),
        ("bob:admin", "PUT", "/analysts", {"action": "batch_add", "usernames": "bob"}, 404,
         "no group"),
    ],
)  # fmt: skip
def test_bad_group_requests(
    env: Env, who: str, method: str, path: str, form: dict[str, str], status: int, match: str
) -> None:
    dave = env.auth("dave", "p1", "admin")
    assert _group(env, dave, "POST", "", name="analysts", repo_name="p1").status_code == 200
    _group(env, dave, "PUT", "/analysts", action="batch_add", usernames="erin")
    user, _, scopes = who.partition(":")
    project = {"bob": "p2"}.get(user, "p1")
    r = _group(env, env.auth(user, project, scopes or "read,submit"), method, path, **form)
    assert r.status_code == status, r.text
    assert match in r.json()["message"], r.json()
    after = env.client.get(f"{API}/account/groups/analysts", headers=dave).json()
    assert [u["name"] for u in after["users"]] == ["erin"]  # nothing changed
    failed = [e for e in env.service.db.log.entries(projects=None)
              if e.action.startswith("sfapi.group") and e.outcome != "ok"]  # fmt: skip
    if match not in ("scope", "repo_name", "action"):  # those are refused before the service
        assert failed, "a refused change is audited too"


def test_a_project_cannot_take_a_group_name(env: Env) -> None:
    from hexflow.errors import Conflict
    from hexflow.model.access import Role

    dave = env.auth("dave", "p1", "admin")
    _group(env, dave, "POST", "", name="analysts", repo_name="p1")
    with pytest.raises(Conflict, match="taken by a group"):
        env.admin.create_project("analysts", [("alice", Role.MEMBER)])


# ---------------------------------------------------------------------- sfapi_client
@pytest.fixture(scope="module", params=service_env.BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("sfapi-xfer")
    pg = service_env._postgres_db() if request.param == "postgres" else None
    server = live_server(tmp, db=next(pg) if pg else None)
    running = next(server)
    try:
        admin(tmp, running.cli_env, "user", "create", "dave")
        admin(tmp, running.cli_env, "project", "add-member", "p1", "dave", "--role", "admin")
        running.tokens["dave"] = admin(
            tmp, running.cli_env, "token", "create", "--user", "dave", "--project", "p1",
            "--scopes", "admin", "--json",
        )["token"]  # fmt: skip
        yield running
    finally:
        next(server, None)  # stops the server (and checks its log)
        if pg:
            next(pg, None)


def _client(live: Live, user: str | None = None) -> Client:
    base = live.url + "/api/v1.2"
    if user:
        return Client(api_base_url=base, access_token=live.tokens[user], wait_interval=1)
    key = live.client_key
    return Client(key["client_id"], key["private_key_pem"], api_base_url=base,
                  token_url=live.url + "/oauth2/token", wait_interval=1)  # fmt: skip


def test_globus_transfers_with_sfapi_client(live: Live) -> None:
    home = live.project_dir("p1")
    home.mkdir(parents=True, exist_ok=True)
    (home / "globus-src.txt").write_text("over the wire\n")
    (home / "gtree" / "sub").mkdir(parents=True)
    (home / "gtree" / "sub" / "b.txt").write_text("bb")
    with _client(live) as client:
        globus = client.storage.globus()
        assert globus.name == "globus" and globus.status.value == "active"
        transfer = globus.start_transfer(
            "perlmutter", "dtns", home / "globus-src.txt", home / "globus-copy.txt", label="t1"
        )
        assert transfer.complete(timeout=60).value == "SUCCEEDED"
        assert transfer.bytes_transferred == 14 and transfer.completion_time is not None
        compute = client.compute("perlmutter")
        [copy] = compute.ls(str(home / "globus-copy.txt"))
        assert copy.download().read() == "over the wire\n"
        to_tier = globus.start_transfer("perlmutter", "qss", home / "gtree", "gtree/")
        to_tier.complete(timeout=60)
        back = globus.start_transfer("qss", "dtn01", "gtree", home / "gtree-back")
        back.complete(timeout=60)
        assert globus.transfer(back.transfer_id).globus_status.value == "SUCCEEDED"
        assert (home / "gtree-back" / "sub" / "b.txt").read_text() == "bb"
        with pytest.raises(httpx.HTTPStatusError) as refused:
            globus.start_transfer("perlmutter", "dtns", "/etc/passwd", home / "pw")
        assert refused.value.response.status_code == 403
        assert "outside" in refused.value.response.json()["message"]
        with pytest.raises(httpx.HTTPStatusError) as unknown:
            globus.start_transfer("perlmutter", "hpss", home / "globus-src.txt", "x")
        assert unknown.value.response.status_code == 404
        assert "perlmutter" in unknown.value.response.json()["hint"]
    assert not (home / "pw").exists()


def test_groups_with_sfapi_client(live: Live) -> None:
    with _client(live, "dave") as dave:
        [p1] = [p for p in dave.user().projects() if p.repo_name == "p1"]
        group = p1.create_group("reviewers")
        assert group.name == "reviewers" and group.members == []
        group.add(["alice", "carol"])
        assert [m.name for m in group.members] == ["alice", "carol"]
        group.remove([m.user() for m in group.members if m.name == "carol"])
        assert [m.name for m in group.members] == ["alice"]
        fetched = dave.group("reviewers")
        assert [m.name for m in fetched.members] == ["alice"]
        assert {g.name for g in dave.user().groups()} == {"p1", "reviewers"}
        with pytest.raises(httpx.HTTPStatusError) as strangers:
            group.add(["bob"])  # not a member of p1
        assert strangers.value.response.status_code == 422
        group.update()
        assert [m.name for m in group.members] == ["alice"]
    with _client(live) as alice:  # a member, not an administrator
        group = alice.group("reviewers")
        assert [m.name for m in group.members] == ["alice"]
        with pytest.raises(httpx.HTTPStatusError) as refused:
            group.add(["carol"])
        assert refused.value.response.status_code == 403
    with _client(live, "bob") as bob, pytest.raises(httpx.HTTPStatusError) as hidden:
        bob.group("reviewers")
    assert hidden.value.response.status_code == 404


def test_the_endpoint_option_is_parsed() -> None:
    from hexflow.cli.server import _pairs
    from hexflow.errors import SpecError

    pairs = _pairs(["cori=files", "fast=pss@elsewhere"], "--sfapi-endpoint", "dtn=files")
    assert pairs == (("cori", "files"), ("fast", "pss@elsewhere"))
    with pytest.raises(SpecError, match="--sfapi-endpoint 'cori': expected NAME=VALUE"):
        _pairs(["cori"], "--sfapi-endpoint", "dtn=files")
