"""Pure domain types and state machines: no I/O, no clock, no settings."""

from hexflow.model.dag import WorkflowDAG, find_cycle
from hexflow.model.qos import QoS
from hexflow.model.records import RunRecord, TaskRecord
from hexflow.model.resources import Resources, format_bytes, parse_duration, parse_memory
from hexflow.model.spec import RetryPolicy, TaskKind, TaskSpec
from hexflow.model.states import RunState, TaskState

__all__ = [
    "QoS",
    "Resources",
    "RetryPolicy",
    "RunRecord",
    "RunState",
    "TaskKind",
    "TaskRecord",
    "TaskSpec",
    "TaskState",
    "WorkflowDAG",
    "find_cycle",
    "format_bytes",
    "parse_duration",
    "parse_memory",
]
