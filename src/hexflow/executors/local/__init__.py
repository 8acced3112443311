"""The local executor: this machine's cores, memory and GPUs."""

from hexflow.executors.local.executor import LocalExecutor

__all__ = ["LocalExecutor"]
