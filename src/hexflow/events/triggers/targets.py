"""What a trigger runs, and with what: the values an event gives its target
(``from_event``), the value of a webhook's body (``body_value``), and how the trigger
manager submits a workflow target (``WorkflowTargets``, implemented by the service)."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection
from typing import Any, Protocol

from hexflow.model.events import WEBHOOK_RECEIVED, Event
from hexflow.model.triggers import Trigger


class WorkflowTargets(Protocol):
    """How triggers submit workflows (the service's run submission, injected)."""

    def params(self, project: str, workflow: str) -> Collection[str]:
        """The params ``workflow`` (YAML) declares; SpecError says what is wrong with it."""
        ...

    async def submit(
        self, trigger: Trigger, event: Event, params: dict[str, str], run_id: str
    ) -> bool:
        """Submit the trigger's workflow as run ``run_id``; False if it was submitted before."""
        ...


def from_event(trigger: Trigger, event: Event, takes: Collection[str]) -> dict[str, Any]:
    """The values an event gives a trigger's target, by the names the target ``takes``:
    ``event`` (the whole event), else a webhook's JSON object's fields, else the event's
    own fields (dataset, site, file...), never over the trigger's constant ones."""
    if "event" in takes:
        return {"event": event.as_dict()}
    body = event.data.get("body")
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k in takes}
    if event.kind != WEBHOOK_RECEIVED:
        return {k: v for k, v in event.data.items() if k in takes and k not in trigger.args}
    return {}


def body_value(body: bytes, content_type: str | None) -> Any:
    if content_type and "json" in content_type:
        try:
            return json.loads(body or b"null")
        except ValueError:
            pass
    try:
        return body.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode()}


__all__ = ["WorkflowTargets", "body_value", "from_event"]
