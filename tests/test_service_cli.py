"""``hexflow admin`` on the server's database (SQLite, and PostgreSQL when available), and
``hexflow server --help``. Secrets are printed once; every change is audited."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from hexflow.cli.main import app
from hexflow.store.service_db import ServiceDb
from tests import service_env

db_url = service_env.db_url  # a fixture


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Any:
    runner = CliRunner()
    env = {"HEXFLOW_HOME": str(tmp_path / "home"), "HEXFLOW_DB": db_url}

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["admin", *args], env=env, catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    invoke.db_url = db_url  # type: ignore[attr-defined]
    return invoke


def _ok(result: tuple[int, str, str]) -> Any:
    code, out, err = result
    assert code == 0, (out, err)
    return json.loads(out) if out.lstrip().startswith(("{", "[")) else out


def test_users_projects_tokens_and_clients(admin: Any) -> None:
    assert "created user alice" in _ok(admin("user", "create", "alice"))
    _ok(admin("user", "create", "bob", "--admin"))
    made = _ok(admin("project", "create", "p1", "--member", "alice", "-m", "bob:admin", "--json"))
    assert made == {"name": "p1", "members": {"alice": "member", "bob": "admin"}}
    token = _ok(
        admin("token", "create", "--user", "alice", "--project", "p1", "--scopes", "read,submit",
              "--expires", "30d", "--json")
    )  # fmt: skip
    assert token["token"].startswith(f"hxt_{token['id']}_") and token["scopes"] == [
        "read",
        "submit",
    ]
    assert token["expires_at"] is not None
    listed = _ok(admin("token", "list", "--json"))
    assert [t["id"] for t in listed] == [token["id"]] and token["token"] not in json.dumps(listed)
    revoked = _ok(admin("token", "revoke", token["token"], "--json"))  # the whole token works too
    assert revoked["id"] == token["id"] and revoked["revoked_at"]
    client = _ok(admin("client", "create", "--user", "alice", "--project", "p1", "--json"))
    assert len(client["client_id"]) == 13 and client["client_id"].isalnum()
    key = serialization.load_pem_private_key(client["private_key_pem"].encode(), None)
    public = jwt.PyJWK(client["public_jwk"]).key
    assert key.public_key().public_numbers() == public.public_numbers()
    assert jwt.PyJWK(client["jwk"]).key.private_numbers() == key.private_numbers()
    assert client["scopes"] == ["read", "submit"]
    assert _ok(admin("client", "revoke", client["client_id"], "--json"))["revoked_at"]
    db = ServiceDb(admin.db_url)
    try:
        actions = [e.action for e in db.log.entries(projects=None)]
        stored = db.accounts.get_client(client["client_id"])
    finally:
        db.close()
    assert actions == [
        "client.revoke",
        "client.create",
        "token.revoke",
        "token.create",
        "project.create",
        "user.create",
        "user.create",
    ]
    assert (
        stored is not None and "BEGIN" not in stored.public_jwk and '"d"' not in stored.public_jwk
    )


def test_add_member_and_listings(admin: Any) -> None:
    _ok(admin("user", "create", "alice"))
    _ok(admin("project", "create", "p1"))
    _ok(admin("project", "add-member", "p1", "alice", "--role", "viewer"))
    users = _ok(admin("user", "list", "--json"))
    assert users == [{"name": "alice", "admin": False, "projects": "p1:viewer"}]
    audit = _ok(admin("audit", "--project", "p1", "--json"))
    assert [e["action"] for e in audit] == ["project.member", "project.create"]
    assert "alice" in _ok(admin("user", "list"))


def test_bad_admin_input_exits_2_with_a_hint(admin: Any) -> None:
    _ok(admin("user", "create", "alice"))
    cases = [
        (("user", "create", "alice"), "exists already"),
        (("user", "create", "9lives"), "bad user name"),
        (("project", "create", "p1", "--member", "ghost"), "no user 'ghost'"),
        (("project", "create", "p2", "--member", "alice:boss"), "unknown role"),
        (("token", "create", "--user", "alice", "--scopes", "read,fly"), "unknown scope"),
        (("token", "create", "--user", "ghost"), "no user"),
        (("token", "create", "--user", "alice", "--project", "nope"), "no project"),
        (("token", "create", "--user", "alice", "--expires", "soon"), "duration"),
        (("token", "revoke", "nosuchtoken"), "no API token"),
        (("client", "revoke", "nosuchclient1"), "no OAuth client"),
        (("client", "create", "--user", "alice", "--public-key", "/nonexistent"), "cannot read"),
    ]
    for args, expected in cases:
        code, out, err = admin(*args)
        assert code == 2, (args, out, err)
        assert expected in err and "error:" in err, (args, err)
    _ok(admin("project", "create", "p1", "--member", "alice"))
    code, _, err = admin("token", "create", "--user", "alice", "--project", "p1", "--scopes", "")
    assert code == 2 and "no scope" in err


def test_the_home_is_private(admin: Any, tmp_path: Path) -> None:
    _ok(admin("user", "create", "alice"))
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700


def test_server_help() -> None:
    result = CliRunner().invoke(app, ["server", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--db", "--max-runs", "--token-url"):
        assert option in result.stdout
