"""Triggers: "when X happens, call function Y" (or "submit workflow W"). Pure records and
their checks, no I/O.

A trigger's target is a registered function (``function``; ``args``: constant arguments,
the event's fields fill the others by name) or a workflow (``workflow``: its YAML, a
template whose ``params`` the event fills by name; ``args``: constant params). Each event
submits the workflow once, as a run of the trigger's project.

Kinds and their ``config``:
- ``webhook``: ``{"tolerance": seconds}`` (default 300), how far a signed request's
  timestamp may be from the server's clock; the HMAC secret is generated at creation.
- ``file``: ``{"path": dir, "pattern": "*.h5", "marker": ".done" | null, "stable_for": s}``:
  a file has arrived when ``FILE + marker`` exists, or (no marker) when its size has not
  changed for ``stable_for`` seconds (default 0.1).
- ``schedule``: ``{"cron": "*/5 * * * *"}`` or ``{"every": seconds}``.
- ``event``: ``{"kinds": ["run.succeeded", "task.*"], "where": {"subject": RUN},
  "once": bool}``: every logged event of those kinds whose fields equal ``where``.
- ``dataset``: ``{"dataset": "raw-*", "where": {...}}``: every new version of the
  project's datasets whose name matches the glob (default ``*``), a
  ``dataset.version_created`` event (``event`` with those kinds says the same, longer).

Every trigger fires through the event bus: the webhook, arrival or tick is logged as an
event first, then the event calls the function (once per trigger and event).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from hexflow.errors import SpecError
from hexflow.model.events import (
    DATASET_VERSION_CREATED,
    FILE_ARRIVED,
    SCHEDULE_FIRED,
    WEBHOOK_RECEIVED,
    Event,
    data_matches,
    kind_matches,
    valid_kind_pattern,
)


class TriggerKind(StrEnum):
    WEBHOOK = "webhook"
    FILE = "file"
    SCHEDULE = "schedule"
    EVENT = "event"
    DATASET = "dataset"


@dataclass(slots=True)
class Trigger:
    id: str
    project: str
    name: str
    kind: TriggerKind
    function: str
    config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)  # constant arguments of each call
    enabled: bool = True
    created_at: float = 0.0
    created_by: str = ""
    secret: str | None = None  # webhooks: the HMAC key (shown once at creation)
    fired: int = 0
    last_fired_at: float | None = None
    last_error: str | None = None
    workflow: str | None = None  # the YAML of the workflow it submits (function: "")

    @property
    def target(self) -> str:
        """What it runs: ``function NAME`` or ``workflow NAME``."""
        if self.workflow is not None:
            return f"workflow {workflow_name(self.workflow) or self.name}"
        return f"function {self.function}"

    def kinds(self) -> tuple[str, ...]:
        """The kinds of event (patterns: ``task.*``, ``*``) this trigger can match."""
        if self.kind is TriggerKind.EVENT:
            return tuple(self.config.get("kinds") or ())
        if self.kind is TriggerKind.DATASET:
            return (DATASET_VERSION_CREATED,)
        return (
            {
                TriggerKind.WEBHOOK: WEBHOOK_RECEIVED,
                TriggerKind.FILE: FILE_ARRIVED,
                TriggerKind.SCHEDULE: SCHEDULE_FIRED,
            }[self.kind],
        )

    def matches(self, event: Event) -> bool:
        """Whether ``event`` fires this trigger (same project, and its own kind of event)."""
        if not self.enabled or event.project != self.project:
            return False
        if self.kind is TriggerKind.EVENT:
            kinds = self.config.get("kinds") or []
            if not any(kind_matches(k, event.kind) for k in kinds):
                return False
            return data_matches(self.config.get("where") or {}, event)
        if self.kind is TriggerKind.DATASET:
            return (
                event.kind == DATASET_VERSION_CREATED
                and fnmatchcase(str(event.data.get("dataset", "")), self.config["dataset"])
                and data_matches(self.config.get("where") or {}, event)
            )
        own = {
            TriggerKind.WEBHOOK: WEBHOOK_RECEIVED,
            TriggerKind.FILE: FILE_ARRIVED,
            TriggerKind.SCHEDULE: SCHEDULE_FIRED,
        }[self.kind]
        return event.kind == own and event.data.get("trigger") == self.id

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "name": self.name,
            "kind": self.kind.value,
            "function": self.function,
            "workflow": self.workflow,
            "target": self.target,
            "config": self.config,
            "args": self.args,
            "enabled": self.enabled,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "fired": self.fired,
            "last_fired_at": self.last_fired_at,
            "last_error": self.last_error,
        }


def workflow_name(text: str) -> str | None:
    """The ``name:`` of a workflow's YAML (a glance: the service parses it fully)."""
    for line in text.splitlines():
        if line.startswith("name:"):
            return line[5:].strip().strip("'\"") or None
    return None


def check_trigger_config(kind: TriggerKind, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with defaults filled in; SpecError names the field at fault. (Cron
    expressions are checked by the scheduler of triggers, which knows cron.)"""
    allowed = {
        TriggerKind.WEBHOOK: {"tolerance"},
        TriggerKind.FILE: {"path", "pattern", "marker", "stable_for"},
        TriggerKind.SCHEDULE: {"cron", "every"},
        TriggerKind.EVENT: {"kinds", "where", "once"},
        TriggerKind.DATASET: {"dataset", "where"},
    }[kind]
    for name in config:
        if name not in allowed:
            raise SpecError(
                f"unknown {kind.value} trigger setting {name!r}",
                hint=f"valid: {', '.join(sorted(allowed))}",
                field=f"config.{name}",
            )
    out = dict(config)
    if kind is TriggerKind.WEBHOOK:
        out["tolerance"] = _number(out.get("tolerance", 300), "tolerance", 1, 3600)
    elif kind is TriggerKind.FILE:
        if not isinstance(out.get("path"), str) or not out["path"]:
            raise SpecError("a file trigger needs the directory to watch", field="config.path")
        out["pattern"] = str(out.get("pattern") or "*")
        marker = out.get("marker")
        if marker is not None and (not isinstance(marker, str) or not marker):
            raise SpecError("marker: a suffix such as '.done'", field="config.marker")
        out["marker"] = marker
        out["stable_for"] = _number(out.get("stable_for", 0.1), "stable_for", 0, 3600)
    elif kind is TriggerKind.SCHEDULE:
        if ("cron" in out) == ("every" in out):
            raise SpecError(
                "a schedule needs either cron or every",
                hint='e.g. {"cron": "*/5 * * * *"} or {"every": 30}',
                field="config.cron",
            )
        if "every" in out:
            out["every"] = _number(out["every"], "every", 0.01, 366 * 86400)
        elif not isinstance(out["cron"], str):
            raise SpecError("cron: a cron expression string", field="config.cron")
    elif kind is TriggerKind.DATASET:
        pattern = out.get("dataset", "*")
        if not isinstance(pattern, str) or not pattern:
            raise SpecError(
                "dataset: a dataset name or a glob such as 'raw-*'", field="config.dataset"
            )
        out["dataset"] = pattern
        out["where"] = _where(out)
    else:
        kinds = out.get("kinds")
        if isinstance(kinds, str):
            kinds = [kinds]
        if not kinds or not isinstance(kinds, list):
            raise SpecError(
                "an event trigger needs the kinds of event it waits for",
                hint='e.g. {"kinds": ["run.succeeded"]}',
                field="config.kinds",
            )
        for i, pattern in enumerate(kinds):
            if not isinstance(pattern, str) or not valid_kind_pattern(pattern):
                raise SpecError(
                    f"unknown event kind {pattern!r}",
                    hint="task.<state>, run.<state>, webhook.received, schedule.fired, "
                    "file.arrived, function.invoked, function.finished, "
                    "dataset.version_created, site.state_changed, task.moved, or a prefix.*",
                    field=f"config.kinds.{i}",
                )
        out["kinds"] = kinds
        out["where"] = _where(out)
        out["once"] = bool(out.get("once", False))
    return out


def _where(config: Mapping[str, Any]) -> dict[str, Any]:
    where = config.get("where") or {}
    if not isinstance(where, dict):
        raise SpecError("where: an object of field -> value", field="config.where")
    return where


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SpecError(f"{name} must be a number in [{low}, {high}]", field=f"config.{name}")
    return float(value)
