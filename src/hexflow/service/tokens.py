"""Bearer credentials: long-lived API tokens and short-lived signed access tokens.

API token: ``hxt_<id>_<secret>``. The id finds the row; only SHA-256 of the secret is
stored (the secret is 256 random bits, so a plain hash is enough), compared in constant
time. Access token: a JWT signed by the server's ES256 key (``keys.py``), issued by the
OAuth2 token endpoint for ``access_token_ttl`` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from hexflow.errors import AuthError
from hexflow.model.access import Scope, format_scopes, parse_scopes
from hexflow.service.keys import SIGNING_ALG

TOKEN_PREFIX = "hxt_"
_TOKEN = re.compile(r"^hxt_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
AUDIENCE = "hexflow-api"


def new_api_token() -> tuple[str, str, str]:
    """(token id, the whole token to show once, hash of its secret to store)."""
    token_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_api_token(token: str) -> tuple[str, str]:
    """(id, secret) of a well-formed API token; AuthError otherwise."""
    match = _TOKEN.match(token)
    if not match:
        raise AuthError(
            "malformed API token",
            hint="API tokens look like hxt_<id>_<secret>, as `hexflow admin token create` "
            "printed it",
        )
    return match.group(1), match.group(2)


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def new_client_id() -> str:
    """13 lowercase letters and digits, like NERSC's (sfapi_client checks the length)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(13))


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user: str
    project: str | None
    scopes: frozenset[Scope]
    client_id: str
    expires_at: float


class AccessTokens:
    """Issues and verifies the server's JWT access tokens."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, issuer: str, ttl: int) -> None:
        self._key = key
        self._public = key.public_key()
        self.issuer = issuer
        self.ttl = ttl

    def issue(
        self,
        *,
        user: str,
        project: str | None,
        scopes: frozenset[Scope],
        client_id: str,
        now: float,
    ) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": user,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + self.ttl,
            "jti": uuid.uuid4().hex,
            "scope": format_scopes(scopes),
            "client_id": client_id,
        }
        if project is not None:
            claims["project"] = project
        return jwt.encode(claims, self._key, algorithm=SIGNING_ALG, headers={"typ": "at+jwt"})

    def verify(self, token: str, *, now: float) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[SIGNING_ALG],
                audience=AUDIENCE,
                issuer=self.issuer,
                leeway=5,
                options={"require": ["exp", "iat", "sub", "aud", "iss", "client_id"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(
                "the access token has expired",
                hint="ask /oauth2/token for a new one (sfapi_client does so by itself)",
            ) from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(
                f"invalid access token: {exc}",
                hint="send a token from this server's /oauth2/token, or an API token",
            ) from None
        try:
            scopes = parse_scopes(str(claims.get("scope", "")))
        except ValueError:
            raise AuthError("invalid access token: bad scope claim") from None
        project = claims.get("project")
        return AccessClaims(
            user=str(claims["sub"]),
            project=str(project) if project is not None else None,
            scopes=scopes,
            client_id=str(claims["client_id"]),
            expires_at=float(claims["exp"]),
        )
