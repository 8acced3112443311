"""Pre-signed uploads: how a caller passes a function more data than an invocation may carry.

``POST /api/v1/functions/{name}/uploads`` with the size gives a target the caller PUTs
the bytes to, without its bearer token, before ``expires_at``, and a reference
``{"$ref": "upload:TIER/ID"}`` it passes as an argument; inside the function
``ctx.read_bytes(ref)`` / ``ctx.open(ref)`` read it. The bytes land in the project's
namespace of the tier, at ``.uploads/ID``.
- S3 tier: a presigned PUT URL of the object (boto3), signed for that exact length.
- POSIX tier: ``PUT /api/v1/uploads/{token}`` on this server. The token carries the
  project, tier, id, size and expiry, HMAC-signed with the server's functions key; the
  server checks it, the expiry and the length, and accepts one upload per token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hexflow.data.backends import open_backend
from hexflow.data.checksum import digest_of, new_hasher
from hexflow.data.tiers import DEFAULT_TIERS, StorageConfig, TierSpec
from hexflow.errors import AuthError, Conflict, NotFound, ServiceError, SpecError
from hexflow.events.functions.keys import derive
from hexflow.events.functions.resources import UPLOADS_DIR
from hexflow.model.ids import new_id

PUT_ROUTE = "/api/v1/uploads/"
_FLUSH = 4 << 20  # bytes gathered before a write to the tier


@dataclass(frozen=True, slots=True)
class Grant:
    """What an upload token allows: ``size`` bytes to ``.uploads/<id>`` of a project's tier."""

    project: str
    tier: str
    id: str
    size: int
    expires_at: float

    @property
    def key(self) -> str:
        return f"{self.project}/{UPLOADS_DIR}/{self.id}"

    @property
    def ref(self) -> dict[str, str]:
        return {"$ref": f"upload:{self.tier}/{self.id}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Uploads:
    def __init__(self, key: bytes, storage: StorageConfig | None, *, max_bytes: int, ttl: float):
        self._secret = derive(key, "upload").encode()
        self._storage = storage
        self.max_bytes = max_bytes
        self.ttl = ttl

    # ------------------------------------------------------------------ tokens
    def token(self, grant: Grant) -> str:
        payload = _b64(
            json.dumps(
                [grant.project, grant.tier, grant.id, grant.size, int(grant.expires_at)],
                separators=(",", ":"),
            ).encode()
        )
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64(mac)}"

    def check_token(self, token: str, now: float) -> Grant:
        """The grant of a token this server (or one sharing its home) signed; AuthError
        (401) for a forged or mangled token, 410 once it has expired."""
        payload, _, sig = token.partition(".")
        try:
            mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(mac, _unb64(sig)):
                raise ValueError("signature")
            project, tier, upload_id, size, expires = json.loads(_unb64(payload))
            grant = Grant(str(project), str(tier), str(upload_id), int(size), float(expires))
        except (ValueError, TypeError):
            raise AuthError(
                "this upload URL is not valid",
                hint="ask for a new one: POST /api/v1/functions/{name}/uploads",
            ) from None
        if now > grant.expires_at:
            raise ServiceError(
                "this upload URL has expired",
                hint="ask for a new one: POST /api/v1/functions/{name}/uploads",
                status=410,
            )
        return grant

    # ------------------------------------------------------------------ grants
    def _tier(self, name: str | None) -> TierSpec:
        tiers = self._storage.local_tiers() if self._storage else []
        if not tiers:
            raise ServiceError("this server has no storage tiers for uploads", status=409)
        if name is None:  # the first POSIX tier, in the order of the default tiers (qss...)
            order = {n: i for i, n in enumerate(DEFAULT_TIERS)}
            ranked = sorted(tiers, key=lambda t: (t.kind != "posix", order.get(t.name, 99), t.name))
            return ranked[0]
        for spec in tiers:
            if spec.name == name:
                return spec
        raise SpecError(
            f"no storage tier {name!r} here",
            hint=f"use one of {', '.join(t.name for t in tiers)}",
            field="tier",
        )

    def grant(
        self, project: str, size: int, tier: str | None, now: float, base_url: str
    ) -> dict[str, Any]:
        """An upload target for ``size`` bytes: the JSON the route answers."""
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= self.max_bytes:
            raise SpecError(
                f"size must be 1 to {self.max_bytes} bytes, got {size!r}",
                hint="the exact length of what you will PUT",
                field="size",
            )
        spec = self._tier(tier)
        grant = Grant(project, spec.name, new_id(20), size, now + self.ttl)
        headers = {"Content-Length": str(size)}
        if spec.kind == "s3":
            backend: Any = open_backend(spec)
            backend.ensure_bucket()
            url = backend.client.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": backend.bucket,
                    "Key": backend.object_key(grant.key),
                    "ContentLength": size,
                },
                ExpiresIn=int(self.ttl),
            )
        else:
            url = base_url.rstrip("/") + PUT_ROUTE + self.token(grant)
        return {
            "id": grant.id,
            "ref": grant.ref,
            "tier": spec.name,
            "method": "PUT",
            "url": url,
            "headers": headers,
            "size": size,
            "expires_at": grant.expires_at,
        }

    # ------------------------------------------------------------------ receiving
    async def receive(
        self, grant: Grant, declared: int | None, body: AsyncIterator[bytes]
    ) -> dict[str, Any]:
        """Write a PUT's body to the grant's file (POSIX tiers): exactly ``grant.size``
        bytes, published whole, once."""
        import asyncio

        if declared is not None and declared != grant.size:
            raise SpecError(
                f"this upload takes exactly {grant.size} bytes, not {declared}",
                field="Content-Length",
            )
        spec = self._tier(grant.tier)
        if spec.kind != "posix":
            raise NotFound("this tier takes uploads at its own URL")
        backend = open_backend(spec)
        if backend.stat(grant.key) is not None:
            raise Conflict("this upload was made already", hint="ask for a new upload URL")
        writer = backend.writer(grant.key, size=grant.size, token=grant.id, state={}, offset=0)
        hasher = new_hasher()
        size = 0
        pending: list[bytes] = []
        buffered = 0
        try:
            async for chunk in body:
                size += len(chunk)
                if size > grant.size:
                    raise ServiceError(
                        f"this upload takes {grant.size} bytes; more were sent", status=413
                    )
                hasher.update(chunk)
                pending.append(chunk)
                buffered += len(chunk)
                if buffered >= _FLUSH:
                    await asyncio.to_thread(writer.write, b"".join(pending))
                    pending, buffered = [], 0
            if size != grant.size:
                raise SpecError(
                    f"this upload takes exactly {grant.size} bytes, got {size}",
                    field="Content-Length",
                )
            if pending:
                await asyncio.to_thread(writer.write, b"".join(pending))
            await asyncio.to_thread(writer.commit, digest_of(hasher))
        except BaseException:
            await asyncio.to_thread(writer.abort)
            raise
        return {"id": grant.id, "ref": grant.ref, "size": size}
