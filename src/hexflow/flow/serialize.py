"""Serialization of Python tasks by value (cloudpickle), so a run can finish without the
script that started it. Futures in arguments become TaskRef placeholders.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import cloudpickle

from hexflow.errors import SpecError
from hexflow.model.refs import TaskRef


def dumps_function(fn: Callable[..., Any], task_name: str) -> bytes:
    try:
        blob: bytes = cloudpickle.dumps(fn)
        return blob
    except Exception as exc:
        raise SpecError(
            f"task {task_name!r}: its function cannot be serialized ({type(exc).__name__}: {exc})",
            hint="tasks run in other processes: define the function at module level or in the "
            "notebook, and do not close over locks, open files, sockets or database handles",
            task=task_name,
        ) from None


def code_identity(fn: Callable[..., Any], blob: bytes) -> str:
    """A hash that changes when the function's code changes (for ``cache=True``)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    return hashlib.sha256(source.encode() or blob).hexdigest()[:32]


def replace_futures(value: Any, found: list[str], is_future: Callable[[Any], str | None]) -> Any:
    """Copy ``value`` with futures swapped for TaskRefs; collect their task ids in ``found``."""
    task_id = is_future(value)
    if task_id is not None:
        found.append(task_id)
        return TaskRef(task_id)
    if type(value) is list:
        return [replace_futures(v, found, is_future) for v in value]
    if type(value) is tuple:
        return tuple(replace_futures(v, found, is_future) for v in value)
    if type(value) is dict:
        return {k: replace_futures(v, found, is_future) for k, v in value.items()}
    return value


def dumps_call(
    fn_blob: bytes, args: tuple[Any, ...], kwargs: dict[str, Any], task_name: str
) -> bytes:
    try:
        blob: bytes = cloudpickle.dumps((fn_blob, args, kwargs))
        return blob
    except Exception as exc:
        raise SpecError(
            f"task {task_name!r}: an argument cannot be serialized ({type(exc).__name__}: {exc})",
            hint="pass plain data (numbers, strings, paths, arrays) or futures of other tasks",
            task=task_name,
        ) from None
