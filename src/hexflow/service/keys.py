"""Keys: the server's token-signing key (kept under HEXFLOW_HOME, mode 0600) and the key
pairs of OAuth clients (generated for ``admin client create``, or given as a public key).

A client's public key is stored as a JWK; the private key is printed once and never kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from hexflow.errors import ServiceError, SpecError

SIGNING_KEY_FILE = "service/signing-key.pem"
SIGNING_ALG = "ES256"


def load_signing_key(home: Path) -> ec.EllipticCurvePrivateKey:
    """The server's ES256 key, created on first use; refused if others may read it."""
    path = home / SIGNING_KEY_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server process made it first: use that one
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ServiceError(
            f"the signing key {path} may be read by others (mode {mode:o})",
            hint=f"chmod 600 {path}",
        )
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ServiceError(f"{path} is not an EC private key", hint="remove it to make a new one")
    return loaded


def new_client_key() -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A fresh RSA-2048 key pair for an OAuth client (sfapi_client signs with RS256):
    (private key PEM, private JWK, public JWK)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # BEGIN RSA PRIVATE KEY, as NERSC's
        serialization.NoEncryption(),
    ).decode()
    private: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    return pem, private, public_jwk(key.public_key())


def public_jwk(key: PublicKeyTypes) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPublicKey):
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    elif isinstance(key, ec.EllipticCurvePublicKey):
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    else:
        raise SpecError("a client key must be RSA or EC (P-256/P-384)", field="public_key")
    return {k: v for k, v in jwk.items() if k in ("kty", "n", "e", "crv", "x", "y")}


def parse_public_key(text: str) -> dict[str, Any]:
    """A public key given as PEM (public key, or a private key to take it from) or JWK JSON."""
    text = text.strip()
    try:
        if text.startswith("{"):
            data = json.loads(text)
            key: Any = jwt.PyJWK(data).key
        elif "PRIVATE KEY" in text:
            private: PrivateKeyTypes = serialization.load_pem_private_key(
                text[text.index("-----BEGIN") :].encode(), password=None
            )
            key = private.public_key()
        else:
            key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError, jwt.PyJWKError, json.JSONDecodeError) as exc:
        raise SpecError(
            f"cannot read the public key: {exc}",
            hint="give a PEM public key or a JWK (JSON)",
            field="public_key",
        ) from None
    if hasattr(key, "public_key") and not isinstance(
        key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    ):
        key = key.public_key()
    return public_jwk(key)


def algorithms_for(jwk: dict[str, Any]) -> list[str]:
    """The signature algorithms a client assertion may use with this key (never none/HS*)."""
    if jwk.get("kty") == "RSA":
        return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    if jwk.get("kty") == "EC":
        return {"P-256": ["ES256"], "P-384": ["ES384"], "P-521": ["ES512"]}.get(
            str(jwk.get("crv")), []
        )
    return []
