"""Pure placement policy: which task runs next where. No I/O; time comes in as arguments."""

from hexflow.scheduler.queue import ReadyQueue

__all__ = ["ReadyQueue"]
