"""The server's secret for what the function gateway signs: callback requests (with a
secret per project derived from it) and pre-signed upload tokens.

Kept in ``$HEXFLOW_HOME/service/functions-key`` (mode 0600), made on first use; server
processes sharing a home share it, so any of them can check what another signed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from hexflow.errors import ServiceError

KEY_FILE = "service/functions-key"


def load_key(home: Path) -> bytes:
    path = home / KEY_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server process made it first: use that one
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ServiceError(
            f"the functions key {path} may be read by others (mode {mode:o})",
            hint=f"chmod 600 {path}",
        )
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 32:
        raise ServiceError(f"{path} is not a key", hint="remove it to make a new one")
    return key


def derive(key: bytes, purpose: str) -> str:
    """A secret for one purpose (e.g. ``callback:<project>``), hex; the same on every server
    of the home, and telling nothing about ``key`` or the secrets of other purposes."""
    return hmac.new(key, purpose.encode(), hashlib.sha256).hexdigest()
