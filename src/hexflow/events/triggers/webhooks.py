"""Signed webhooks: how a sender signs a request and how the server checks it. Pure.

A sender sends three headers with the raw body:
  X-Hexflow-Timestamp: unix seconds          X-Hexflow-Nonce: 16-128 characters, unique
  X-Hexflow-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{nonce}.".encode() + body)>
The server accepts a request whose signature matches, whose timestamp is within the
trigger's tolerance of its clock, and whose nonce it has not seen (it keeps nonces until
their timestamps are out of tolerance): a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from hexflow.errors import AuthError

TIMESTAMP = "X-Hexflow-Timestamp"
NONCE = "X-Hexflow-Nonce"
SIGNATURE = "X-Hexflow-Signature"
_NONCE = re.compile(r"^[A-Za-z0-9_.:-]{16,128}$")


def new_secret() -> str:
    return "whs_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{nonce}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(
    secret: str, body: bytes, *, timestamp: float, nonce: str | None = None
) -> dict[str, str]:
    """The headers a sender adds (for clients, tests and the docs)."""
    ts = str(int(timestamp))
    nonce = nonce or secrets.token_hex(16)
    return {TIMESTAMP: ts, NONCE: nonce, SIGNATURE: signature(secret, ts, nonce, body)}


def check(
    secret: str,
    *,
    timestamp: str | None,
    nonce: str | None,
    sig: str | None,
    body: bytes,
    now: float,
    tolerance: float,
) -> float:
    """Raise AuthError (401) unless the request is signed and fresh; returns its timestamp."""
    if not (timestamp and nonce and sig):
        raise AuthError(
            "this webhook needs a signed request",
            hint=f"send {TIMESTAMP}, {NONCE} and {SIGNATURE} (docs/events.md shows how)",
        )
    try:
        at = float(int(timestamp))
    except ValueError:
        raise AuthError(f"{TIMESTAMP} must be unix seconds", field=TIMESTAMP) from None
    if not _NONCE.match(nonce):
        raise AuthError(f"{NONCE} must be 16 to 128 letters, digits or _.:-", field=NONCE)
    if not hmac.compare_digest(signature(secret, timestamp, nonce, body), sig):
        raise AuthError(
            "the webhook signature does not match",
            hint="sign f'{timestamp}.{nonce}.' + body with the trigger's secret (HMAC-SHA256)",
            field=SIGNATURE,
        )
    if abs(now - at) > tolerance:
        raise AuthError(
            f"the request's timestamp is {abs(now - at):.0f} s off the server's clock "
            f"(tolerance {tolerance:g} s)",
            hint="sign each request when you send it; check the sender's clock",
            field=TIMESTAMP,
        )
    return at
