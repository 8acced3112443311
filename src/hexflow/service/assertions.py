"""RFC 7523 client authentication (``private_key_jwt``) for the client-credentials grant,
as the official sfapi_client sends it through Authlib.

The assertion is a JWT with iss = sub = client_id, aud = the token URL, exp, jti, signed
with the client's private key (RS256 by sfapi_client; any RS/PS/ES algorithm that fits the
registered key is accepted, never ``none`` or HMAC). Each ``jti`` is accepted once.
"""

from __future__ import annotations

import json
from collections.abc import Collection

import jwt

from hexflow.model.access import OAuthClient
from hexflow.service.errors import OAuthError
from hexflow.service.keys import algorithms_for
from hexflow.store.service_db import ServiceDb

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LEEWAY = 30.0  # seconds of clock skew allowed on exp/iat/nbf
MAX_LIFETIME = 3600.0 + 300.0  # Authlib signs for an hour; refuse longer-lived assertions


def verify_client_assertion(
    db: ServiceDb,
    *,
    grant_type: str | None,
    assertion_type: str | None,
    assertion: str | None,
    audiences: Collection[str],
    now: float,
) -> OAuthClient:
    """The client the assertion authenticates; OAuthError (with its RFC code) otherwise."""
    if grant_type != GRANT_TYPE:
        raise OAuthError(
            f"unsupported grant_type {grant_type!r}",
            hint=f"this endpoint takes grant_type={GRANT_TYPE}",
            error="unsupported_grant_type",
        )
    if assertion_type != ASSERTION_TYPE or not assertion:
        raise OAuthError(
            "client authentication must be a private_key_jwt client assertion",
            hint=f"send client_assertion_type={ASSERTION_TYPE} and client_assertion=<JWT>",
            error="invalid_request",
        )
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise OAuthError(f"malformed client assertion: {exc}") from None
    client_id = unverified.get("sub")
    if not isinstance(client_id, str) or unverified.get("iss") != client_id:
        raise OAuthError("the client assertion needs iss = sub = client_id")
    client = db.accounts.get_client(client_id)
    if client is None:
        raise OAuthError(f"unknown client {client_id!r}", hint="check the client id")
    jwk = json.loads(client.public_jwk)
    allowed = algorithms_for(jwk)
    if header.get("alg") not in allowed:
        raise OAuthError(
            f"client assertion signed with {header.get('alg')!r}; this client's key allows "
            f"{', '.join(allowed)}",
            client=client_id,
        )
    if not audiences:
        raise OAuthError("the server knows no token URL to check the audience against")
    try:
        claims = jwt.decode(
            assertion,
            jwt.PyJWK(jwk, algorithm=header["alg"]).key,
            algorithms=allowed,
            audience=list(audiences),
            issuer=client_id,
            leeway=LEEWAY,
            options={"require": ["exp", "iss", "sub", "aud", "jti"]},
        )
    except jwt.InvalidAudienceError:
        raise OAuthError(
            "the client assertion's audience is not this token endpoint",
            hint=f"set token_url to {sorted(audiences)[0]}",
            client=client_id,
        ) from None
    except jwt.ExpiredSignatureError:
        raise OAuthError("the client assertion has expired", client=client_id) from None
    except jwt.InvalidTokenError as exc:
        raise OAuthError(f"bad client assertion: {exc}", client=client_id) from None
    exp = float(claims["exp"])
    if exp - now > MAX_LIFETIME:
        raise OAuthError(
            "the client assertion lives too long",
            hint="sign assertions valid for an hour at most",
            client=client_id,
        )
    if client.revoked_at is not None:
        raise OAuthError(f"client {client_id} has been revoked", client=client_id)
    if not client.usable(now):
        raise OAuthError(f"client {client_id} has expired", client=client_id)
    jti = str(claims["jti"])
    if not jti or len(jti) > 255:
        raise OAuthError("the client assertion's jti must be 1 to 255 characters")
    if not db.log.use_assertion(client_id, jti, expires_at=exp + LEEWAY, now=now):
        raise OAuthError(
            "this client assertion was used before (replayed jti)",
            hint="sign a fresh assertion with a new jti for every token request",
            client=client_id,
        )
    return client
