"""Signing webhook requests, for senders that talk to ``POST /api/v1/hooks/{id}``.

The scheme (docs/events.md): ``X-Hexflow-Signature: sha256=<hex HMAC-SHA256(secret,
f"{timestamp}.{nonce}.".encode() + body)>`` with ``X-Hexflow-Timestamp`` (unix seconds)
and a fresh ``X-Hexflow-Nonce``. The server's checker lives with the triggers; the SDK
keeps its own copy of the signer so that it imports no server code (a test signs with
this one and has the server check it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

TIMESTAMP = "X-Hexflow-Timestamp"
NONCE = "X-Hexflow-Nonce"
SIGNATURE = "X-Hexflow-Signature"


def signed_headers(
    secret: str, body: bytes, *, timestamp: float | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The three headers that sign ``body`` with a webhook trigger's ``secret``."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("a webhook secret (the trigger's 'secret', shown at its creation)")
    if not isinstance(body, bytes):
        raise TypeError(f"sign the raw body as bytes, not {type(body).__name__}")
    ts = str(int(time.time() if timestamp is None else timestamp))
    nonce = nonce or secrets.token_hex(16)
    mac = hmac.new(secret.encode(), f"{ts}.{nonce}.".encode() + body, hashlib.sha256)
    return {TIMESTAMP: ts, NONCE: nonce, SIGNATURE: "sha256=" + mac.hexdigest()}


def verify_callback(
    secret: str, headers: dict[str, str], body: bytes, *, tolerance: float = 300.0
) -> dict[str, object]:
    """The invocation a hexflow callback POST carries, once its signature (the webhook
    scheme, with the project's callback secret) and timestamp check out; ``ValueError``
    otherwise. ``headers``: the request's headers (any case)."""
    import json

    lower = {k.lower(): v for k, v in headers.items()}
    ts, nonce = lower.get(TIMESTAMP.lower(), ""), lower.get(NONCE.lower(), "")
    sig = lower.get(SIGNATURE.lower(), "")
    if not (ts.isdigit() and nonce and sig):
        raise ValueError("not a signed hexflow callback")
    mac = hmac.new(secret.encode(), f"{ts}.{nonce}.".encode() + body, hashlib.sha256)
    if not hmac.compare_digest("sha256=" + mac.hexdigest(), sig):
        raise ValueError("the callback's signature does not match the secret")
    if abs(time.time() - int(ts)) > tolerance:
        raise ValueError(f"the callback's timestamp is more than {tolerance:g} s off")
    info: dict[str, object] = json.loads(body)
    return info
