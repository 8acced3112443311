"""TaskRef: the placeholder for an upstream task's result inside a serialized payload.

The flow layer replaces futures in a task's arguments with TaskRefs before it serializes
them; the worker swaps each TaskRef for the upstream result just before the call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TaskRef:
    task_id: str
