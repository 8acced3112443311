"""Is a Dask scheduler there? A TCP connection to its address, nothing more (cheap enough
to ask every few seconds; a ``Client`` per check would not be)."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from hexflow.model.sites import Health, SiteState


def dask_health(address: str | None, timeout: float = 2.0) -> Health:
    """Up when the scheduler at ``address`` accepts a connection (None: a local cluster the
    executor starts itself, always up). Raises ``OSError`` when it does not."""
    if address is None:
        return Health(SiteState.UP, "a local Dask cluster")
    url = urlparse(address if "://" in address else f"tcp://{address}")
    if url.hostname is None or url.port is None:
        raise OSError(f"cannot read a host and port in {address!r}")
    with socket.create_connection((url.hostname, url.port), timeout=timeout):
        pass
    return Health(SiteState.UP, f"the Dask scheduler at {address} answers")


__all__ = ["dask_health"]
