"""Storage backends: a POSIX directory or an S3 bucket, behind one interface (``base``)."""

from __future__ import annotations

from hexflow.data.backends.base import TEMP_MARK, Backend, ObjectInfo, Writer
from hexflow.data.backends.posix import PosixBackend
from hexflow.data.tiers import TierSpec


def open_backend(tier: TierSpec | None, *, fsync: bool = True) -> Backend:
    """The backend of a tier; ``None`` is the local filesystem (keys are absolute paths)."""
    if tier is None:
        return PosixBackend("/", label="local", fsync=fsync)
    if tier.kind == "posix":
        return PosixBackend(tier.root, label=f"{tier.label} ({tier.root})", fsync=fsync)
    from hexflow.data.backends.s3 import S3Backend

    return S3Backend(
        tier.bucket,
        tier.prefix,
        endpoint_url=tier.endpoint_url,
        region=tier.region,
        label=f"{tier.label} ({tier.url()})",
        create_bucket=tier.create_bucket,
    )


__all__ = ["TEMP_MARK", "Backend", "ObjectInfo", "PosixBackend", "Writer", "open_backend"]
