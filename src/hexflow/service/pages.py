"""Opaque pagination cursors: the keyset position of the last item of a page, as URL-safe
base64 of a small JSON list. A cursor that does not decode is a 422 on ``cursor``."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from hexflow.errors import ServiceError


def encode_cursor(*position: Any) -> str:
    raw = json.dumps(list(position), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        out = []
        for value, kind in zip(values, types, strict=True):
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError("wrong type")
            out.append(value)
        return tuple(out)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ServiceError(
            "invalid pagination cursor",
            hint="pass back the next_cursor of the previous page unchanged",
            status=422,
            field="cursor",
        ) from None
