"""Authentication: the OAuth2 client-credentials flow with private_key_jwt, driven by Authlib
exactly as sfapi_client drives it, every way an assertion can be wrong, and the bearer
credentials the API accepts (API tokens and access tokens) and refuses."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hexflow.errors import ServiceError
from hexflow.model.access import parse_scopes
from hexflow.service.keys import SIGNING_KEY_FILE, load_signing_key
from hexflow.service.tokens import AccessTokens
from tests import service_env
from tests.service_env import TOKEN_URL, Env

db_url, env = service_env.db_url, service_env.env  # fixtures

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _oauth_client(env: Env, client_id: str, secret: Any, alg: str = "RS256") -> Any:
    """Authlib's httpx OAuth2Client configured as sfapi_client 0.6.0 configures it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Authlib prefers httpx2; plain httpx works
        from authlib.integrations.httpx_client import OAuth2Client
        from authlib.oauth2.rfc7523 import PrivateKeyJWT

    return OAuth2Client(
        client_id,
        client_secret=secret,
        token_endpoint_auth_method=PrivateKeyJWT(TOKEN_URL, alg=alg),
        grant_type="client_credentials",
        token_endpoint=TOKEN_URL,
        timeout=10.0,
        headers={"accept": "application/json"},
        transport=env.client._transport,
        base_url="http://testserver",
    )


def _new_client(env: Env, user: str = "alice", project: str | None = "p1", **kw: Any) -> Any:
    return env.admin.create_client(
        user, project, parse_scopes(kw.pop("scopes", "read,submit")), **kw
    )


def _assertion(client_id: str, key: Any, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }
    body.update(claims)
    for name in [k for k, v in body.items() if v is None]:
        del body[name]
    return jwt.encode(body, key, algorithm=alg)


def _hs256(client_id: str, secret: bytes) -> str:
    """An HS256 assertion keyed with public material (PyJWT refuses to make one)."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 60, "jti": "x"}
    parts = [
        jwt.utils.base64url_encode(json.dumps(part).encode())
        for part in ({"alg": "HS256", "typ": "JWT"}, claims)
    ]
    signing_input = b".".join(parts)
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + jwt.utils.base64url_encode(mac)).decode()


def _token_request(env: Env, assertion: str, **form: str) -> Any:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **form,
    }
    return env.client.post("/oauth2/token", data=data, headers={"accept": "application/json"})


def test_sfapi_style_token_flow_with_a_pem_key(env: Env) -> None:
    new = _new_client(env)
    assert len(new.client.client_id) == 13 and new.client.client_id.isalnum()
    assert new.private_key_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    oauth = _oauth_client(env, new.client.client_id, new.private_key_pem)
    token = oauth.fetch_token()
    assert token["token_type"] == "Bearer" and token["expires_in"] >= 120
    assert token["scope"] == "read submit"
    run = oauth.post(
        "/api/v1/runs", content=b"name: t\ntasks:\n  a: {command: 'true'}\n"
    )  # Bearer header added by Authlib
    assert run.status_code == 201, run.text
    assert run.json()["project"] == "p1" and run.json()["submitted_by"] == "alice"
    listed = oauth.get("/api/v1/runs").json()["items"]
    assert [r["id"] for r in listed] == [run.json()["id"]]
    entries = env.service.db.log.entries(projects=["p1"], action="oauth.token")
    assert entries[0].outcome == "ok" and entries[0].target == new.client.client_id


def test_token_flow_with_a_jwk_secret(env: Env) -> None:
    new = _new_client(env)
    oauth = _oauth_client(env, new.client.client_id, new.private_jwk)  # json.loads'ed JWK
    assert oauth.fetch_token()["access_token"]
    assert oauth.get("/api/v1/runs").status_code == 200


def test_token_flow_with_an_es256_key(env: Env) -> None:
    from joserfc.jwk import ECKey

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    new = _new_client(env, public_key=public.decode())
    assert new.private_key_pem is None and new.public_jwk["kty"] == "EC"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    oauth = _oauth_client(env, new.client.client_id, ECKey.import_key(pem), alg="ES256")
    assert oauth.fetch_token()["token_type"] == "Bearer"
    assert oauth.get("/api/v1/runs").status_code == 200


def test_configured_token_url_is_the_audience(tmp_path: Path, db_url: str) -> None:
    from fastapi.testclient import TestClient

    from hexflow.service import Admin
    from hexflow.service.api import create_app
    from hexflow.store.service_db import ServiceDb
    from tests.service_env import make_config, seed_accounts

    public = "https://hexflow.example.org/oauth2/token"
    db = ServiceDb(db_url)
    try:
        admin = Admin(db)
        seed_accounts(admin)
        new = admin.create_client("alice", "p1", parse_scopes("read"))
        key = serialization.load_pem_private_key(new.private_key_pem.encode(), None)
        config = make_config(tmp_path, db_url, token_urls=(public,))
        with TestClient(create_app(config)) as client:
            e = Env(client, admin, db_url)
            assert _token_request(e, _assertion(new.client.client_id, key, aud=public)).is_success
            local = _token_request(e, _assertion(new.client.client_id, key))  # testserver URL
            assert local.status_code == 401 and public in local.json()["hint"]
    finally:
        db.close()


def _bad_assertions(env: Env) -> dict[str, tuple[str, str]]:
    """name -> (assertion, text expected in the error description)."""
    new = _new_client(env)
    cid = new.client.client_id
    key = serialization.load_pem_private_key(new.private_key_pem.encode(), None)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_text = json.dumps(new.public_jwk).encode()  # the HMAC "key" an attacker knows
    now = int(time.time())
    return {
        "wrong audience": (_assertion(cid, key, aud="https://elsewhere/token"), "audience"),
        "expired": (_assertion(cid, key, iat=now - 7200, exp=now - 3600), "expired"),
        "forged": (_assertion(cid, other), "Signature verification failed"),
        "no jti": (_assertion(cid, key, jti=None), "jti"),
        "no exp": (_assertion(cid, key, exp=None), "exp"),
        "iss differs": (_assertion(cid, key, iss="someoneelse00"), "iss = sub"),
        "unknown client": (_assertion("abcdefghijklm", key), "unknown client"),
        "too long-lived": (_assertion(cid, key, exp=now + 86400), "too long"),
        "alg none": (jwt.encode({"iss": cid, "sub": cid, "aud": TOKEN_URL}, None, "none"), "none"),
        "hmac": (_hs256(cid, public_text), "HS256"),
        "garbage": ("not.a.jwt", "malformed"),
    }


def test_bad_client_assertions_are_refused(env: Env) -> None:
    for name, (assertion, expected) in _bad_assertions(env).items():
        r = _token_request(env, assertion)
        assert r.status_code == 401, (name, r.text)
        body = r.json()
        assert body["error"] == "invalid_client", name
        assert expected in body["error_description"], (name, body)


def test_a_replayed_assertion_is_refused(env: Env) -> None:
    new = _new_client(env)
    key = serialization.load_pem_private_key(new.private_key_pem.encode(), None)
    assertion = _assertion(new.client.client_id, key)
    assert _token_request(env, assertion).status_code == 200
    again = _token_request(env, assertion)
    assert again.status_code == 401 and "replayed" in again.json()["error_description"]
    denied = env.service.db.log.entries(projects=["p1"], action="oauth.token")[0]
    assert denied.outcome == "denied" and denied.status == 401


def test_bad_token_requests(env: Env) -> None:
    new = _new_client(env)
    key = serialization.load_pem_private_key(new.private_key_pem.encode(), None)
    good = _assertion(new.client.client_id, key)
    r = _token_request(env, good, grant_type="password")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = _token_request(env, good, client_assertion_type="urn:other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = env.client.post("/oauth2/token", json={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = env.client.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_revoked_client_gets_no_token_and_its_tokens_stop_working(env: Env) -> None:
    new = _new_client(env)
    oauth = _oauth_client(env, new.client.client_id, new.private_key_pem)
    oauth.fetch_token()
    assert oauth.get("/api/v1/runs").status_code == 200
    env.admin.revoke_client(new.client.client_id)
    r = oauth.get("/api/v1/runs")
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    with pytest.raises(Exception, match="revoked"):
        oauth.fetch_token()


def test_access_tokens_expired_forged_or_tampered(env: Env) -> None:
    new = _new_client(env)
    tokens = env.service.tokens
    claims = dict(user="alice", project="p1", scopes=parse_scopes("read"))
    cid = new.client.client_id
    old = tokens.issue(**claims, client_id=cid, now=time.time() - 3600)
    other = AccessTokens(ec.generate_private_key(ec.SECP256R1()), issuer="hexflow", ttl=600)
    forged = other.issue(**claims, client_id=cid, now=time.time())
    good = tokens.issue(**claims, client_id=cid, now=time.time())
    head, body, sig = good.split(".")
    tampered = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(body).replace(b'"read"', b'"admin"')
    ).decode()
    for token, expected in [
        (old, "expired"),
        (forged, "invalid access token"),
        (f"{head}.{tampered}.{sig}", "invalid access token"),
    ]:
        r = env.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and expected in r.json()["message"], r.text
    ok = env.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {good}"})
    assert ok.status_code == 200


def test_api_tokens_revoked_expired_or_wrong(env: Env) -> None:
    from hexflow.service import Admin

    token = env.token("alice", "p1")
    assert env.client.get("/api/v1/runs", headers=_bearer(token)).status_code == 200
    token_id = token.split("_")[1]
    wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    past = Admin(env.service.db, clock=lambda: time.time() - 3600)
    expired = past.create_token("alice", "p1", parse_scopes("read"), expires_in=60).secret
    cases = {
        "wrong secret": (wrong_secret, "unknown API token"),
        "malformed": ("hxt_short", "malformed"),
        "expired": (expired, "expired"),
        "no scheme": (None, "needs a bearer token"),
    }
    for name, (credential, expected) in cases.items():
        headers = _bearer(credential) if credential else {}
        r = env.client.get("/api/v1/runs", headers=headers)
        assert r.status_code == 401 and expected in r.json()["message"], (name, r.text)
    basic = env.client.get("/api/v1/runs", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401 and "Bearer" in basic.json()["message"]
    env.admin.revoke_token(token_id)
    r = env.client.get("/api/v1/runs", headers=_bearer(token))
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    stored = env.service.db.accounts.get_token(token_id)
    assert stored is not None and token.split("_", 2)[2] not in stored.secret_hash


def test_signing_key_is_private_to_its_owner(tmp_path: Path) -> None:
    load_signing_key(tmp_path)
    path = tmp_path / SIGNING_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(ServiceError, match="may be read by others"):
        load_signing_key(tmp_path)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
