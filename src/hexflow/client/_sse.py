"""Server-sent events (text/event-stream) read from a streaming httpx response."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    event: str
    data: dict[str, Any]
    id: str | None = None


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a stream; comments (keep-alives) are skipped."""
    name, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield Event(name, json.loads("\n".join(data)), event_id)
            name, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
    if data:
        yield Event(name, json.loads("\n".join(data)), event_id)
