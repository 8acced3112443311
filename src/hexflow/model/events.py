"""Events: what happened, in the order the log numbered it. Pure types, no I/O.

An event is immutable once logged. ``NewEvent`` is what producers hand to the log (the
engine in its group commit, the webhook route, the scheduler of triggers...); the log
gives it a sequence number and returns an ``Event``. An event with a ``key`` is logged at
most once: a producer that retries (two servers firing the same schedule tick, a webhook
delivered twice) logs the same key again and the log keeps the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Kinds. Task and run state changes are ``task.<state>`` and ``run.<state>``.
TASK_PREFIX = "task."
RUN_PREFIX = "run."
WEBHOOK_RECEIVED = "webhook.received"
SCHEDULE_FIRED = "schedule.fired"
FILE_ARRIVED = "file.arrived"
FUNCTION_INVOKED = "function.invoked"
FUNCTION_FINISHED = "function.finished"
# A task moved between sites (engine, with the reason); a site changed state (engine).
TASK_MOVED = "task.moved"
SITE_STATE_CHANGED = "site.state_changed"
# Reserved for the data subsystem (nothing emits it yet).
DATASET_VERSION_CREATED = "dataset.version_created"

OTHER_KINDS = frozenset(
    {
        WEBHOOK_RECEIVED,
        SCHEDULE_FIRED,
        FILE_ARRIVED,
        FUNCTION_INVOKED,
        FUNCTION_FINISHED,
        DATASET_VERSION_CREATED,
        SITE_STATE_CHANGED,
        TASK_MOVED,
    }
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    kind: str
    project: str | None  # None: an embedded run, or a site-wide event
    subject: str  # what it is about: "RUN", "RUN/TASK", a trigger id, a function name
    at: float
    data: Mapping[str, Any] = field(default_factory=dict)  # JSON values only
    key: str | None = None  # deduplication key: logged at most once

    def numbered(self, seq: int) -> Event:
        """This event as logged, with its sequence number."""
        return Event(seq, self.kind, self.project, self.subject, self.at, self.data, self.key)


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: str
    project: str | None
    subject: str
    at: float
    data: Mapping[str, Any]
    key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "project": self.project,
            "subject": self.subject,
            "at": self.at,
            "data": dict(self.data),
            "key": self.key,
        }


def kind_matches(pattern: str, kind: str) -> bool:
    """``task.failed`` matches itself; ``task.*`` any task event; ``*`` everything."""
    if pattern == "*" or pattern == kind:
        return True
    return pattern.endswith(".*") and kind.startswith(pattern[:-1])


def valid_kind_pattern(pattern: str) -> bool:
    """Whether ``pattern`` can match some kind (a typo like ``task.sucess`` cannot)."""
    from hexflow.model.states import RunState, TaskState

    if pattern in ("*", "task.*", "run.*") or pattern in OTHER_KINDS:
        return True
    if pattern.endswith(".*"):
        return any(k.startswith(pattern[:-1]) for k in OTHER_KINDS)
    if pattern.startswith(TASK_PREFIX):
        return pattern[len(TASK_PREFIX) :] in {s.value for s in TaskState}
    if pattern.startswith(RUN_PREFIX):
        return pattern[len(RUN_PREFIX) :] in {s.value for s in RunState}
    return False


def data_matches(where: Mapping[str, Any], event: Event) -> bool:
    """Every ``where`` item equals the event's field: ``subject``, ``project`` or a data key."""
    for name, want in where.items():
        if name == "subject":
            got: Any = event.subject
        elif name == "project":
            got = event.project
        else:
            got = event.data.get(name)
        if got != want:
            return False
    return True
