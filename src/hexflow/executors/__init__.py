"""Where work runs. Executors report events; they never decide policy."""

from hexflow.executors.base import Executor, ExecutorEvent, Launch, TaskEnded, TaskStarted

__all__ = ["Executor", "ExecutorEvent", "Launch", "TaskEnded", "TaskStarted"]
