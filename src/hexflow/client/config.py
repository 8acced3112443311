"""Where the command line finds its token for ``--server``: a file readable by its owner
only (like ssh keys and sfapi_client's key files), ``$HEXFLOW_TOKEN_FILE`` or
``~/.config/hexflow/token``, holding the token on its first line."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from hexflow.errors import AuthError, SpecError


def default_token_file(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("HEXFLOW_TOKEN_FILE"):
        return Path(env["HEXFLOW_TOKEN_FILE"]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "hexflow" / "token"


def load_token(path: Path) -> str:
    """The token in ``path``; refuses a file that others may read or write."""
    try:
        st = path.stat()
        text = path.read_text()
    except FileNotFoundError:
        raise AuthError(
            f"no token file at {path}",
            hint=f"save a token from `hexflow admin token create` there: "
            f"umask 077; echo hxt_... > {path}; or pass --token-file",
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot read the token file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"the token file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise AuthError(
            f"refusing the token file {path}: others may read it "
            f"(mode {stat.S_IMODE(st.st_mode):04o})",
            hint=f"make it private: chmod 600 {path}; and get a new token if others could "
            "have read this one",
        )
    token = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not token:
        raise AuthError(f"the token file {path} is empty", hint="put the token on its first line")
    return token
