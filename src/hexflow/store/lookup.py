"""Resolution of user-typed run and task references (unique prefixes, names) for stores."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hexflow.errors import RunNotFound, StoreError
from hexflow.model import TaskRecord


def resolve_run_id(ref: str, known: Iterable[str]) -> str:
    matches = [r for r in known if r == ref or r.startswith(ref)]
    if ref in matches:
        return ref
    if not matches:
        raise RunNotFound(
            f"no run {ref!r} in this store",
            hint="`hexflow status` lists runs; check --db or HEXFLOW_DB",
            run=ref,
        )
    if len(matches) > 1:
        raise RunNotFound(
            f"run prefix {ref!r} is ambiguous ({len(matches)} runs match)",
            hint="type more characters of the run id",
            run=ref,
        )
    return matches[0]


def resolve_task(run_id: str, ref: str, tasks: Sequence[TaskRecord]) -> TaskRecord:
    """A task by exact id, then by unique name, then by unique id prefix."""
    for t in tasks:
        if t.spec.id == ref:
            return t
    by_name = [t for t in tasks if t.spec.name == ref]
    if len(by_name) == 1:
        return by_name[0]
    by_prefix = [t for t in tasks if t.spec.id.startswith(ref)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    if by_name or by_prefix:
        raise StoreError(
            f"task {ref!r} is ambiguous in run {run_id}",
            hint="use the full task id from `hexflow tasks RUN`",
        )
    raise StoreError(
        f"no task {ref!r} in run {run_id}",
        hint="`hexflow tasks RUN` lists task ids and names",
    )
