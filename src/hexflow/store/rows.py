"""Conversions between records and database rows, and the SQL text of the store's hot path.

Also the one way a stored TaskSpec is read back: ``load_spec``, a restricted unpickler that
builds nothing but hexflow's own spec classes.
"""

from __future__ import annotations

import io
import json
import pickle
from typing import Any

from hexflow.errors import StoreError
from hexflow.model import RunRecord, RunState, TaskRecord, TaskSpec, TaskState
from hexflow.model.records import TaskMove

MUTABLE_TASK_COLUMNS = (
    "state",
    "attempt",
    "submitted_at",
    "started_at",
    "ended_at",
    "retry_at",
    "result",
    "exit_code",
    "reason",
    "error",
    "traceback",
    "root_cause",
    "cache_key",
    "cached",
    "worker",
    "join_id",
    "preemptions",
    "image",
    "image_digest",
    "site",
    "moves",
)


def mutable_params(t: TaskRecord) -> tuple[Any, ...]:
    """The mutable columns of a task row, in ``MUTABLE_TASK_COLUMNS`` order, then its key."""
    return (
        t.state._value_,
        t.attempt,
        t.submitted_at,
        t.started_at,
        t.ended_at,
        t.retry_at,
        t.result,
        t.exit_code,
        t.reason,
        t.error,
        t.traceback,
        t.root_cause,
        t.cache_key,
        t.cached,
        t.worker,
        t.join,
        t.preemptions,
        t.image,
        t.image_digest,
        t.site,
        json.dumps([m.as_dict() for m in t.moves]) if t.moves else None,
        t.run_id,
        t.spec.id,
    )


_MUTABLE_ROW_KEYS = (*MUTABLE_TASK_COLUMNS, "b_run_id", "b_task_id")


def mutable_row(t: TaskRecord) -> dict[str, Any]:
    """``mutable_params`` by name (bind parameters of the SQLAlchemy update statement)."""
    return dict(zip(_MUTABLE_ROW_KEYS, mutable_params(t), strict=True))


UPDATE_TASK_SQL = (
    "UPDATE tasks SET "
    + ", ".join(f"{c} = ?" for c in MUTABLE_TASK_COLUMNS)
    + " WHERE run_id = ? AND task_id = ?"
)
INSERT_TASK_COLUMNS = ("run_id", "task_id", "seq", "name", "kind", "spec", *MUTABLE_TASK_COLUMNS)


def task_insert_params(rec: TaskRecord, seq: int) -> tuple[Any, ...]:
    """Parameters of the task insert, in ``INSERT_TASK_COLUMNS`` order."""
    spec = rec.spec
    return (
        rec.run_id,
        spec.id,
        seq,
        spec.name,
        spec.kind._value_,
        pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL),
        *mutable_params(rec)[:-2],
    )


INSERT_TASK_SQL = (
    f"INSERT INTO tasks ({', '.join(INSERT_TASK_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(INSERT_TASK_COLUMNS))})"
)
RUN_COLUMNS = (
    "id",
    "name",
    "state",
    "created_at",
    "started_at",
    "ended_at",
    "workdir",
    "owner",
    "cancel_requested",
    "config",
    "project",  # mirrors config["project"], for queries by project (service mode)
)
INSERT_RUN_SQL = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
)
UPDATE_RUN_SQL = (
    "UPDATE runs SET " + ", ".join(f"{c} = ?" for c in RUN_COLUMNS[1:]) + " WHERE id = ?"
)


def run_params(run: RunRecord) -> tuple[Any, ...]:
    """``run_row`` as positional parameters, in ``RUN_COLUMNS`` order."""
    row = run_row(run)
    return tuple(row[c] for c in RUN_COLUMNS)


def task_from_row(row: Any, spec: TaskSpec | None = None) -> TaskRecord:
    return TaskRecord(
        run_id=row["run_id"],
        spec=spec if spec is not None else load_spec(row["spec"]),
        state=TaskState(row["state"]),
        attempt=row["attempt"],
        submitted_at=row["submitted_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        retry_at=row["retry_at"],
        result=row["result"],
        exit_code=row["exit_code"],
        reason=row["reason"],
        error=row["error"],
        traceback=row["traceback"],
        root_cause=row["root_cause"],
        cache_key=row["cache_key"],
        cached=bool(row["cached"]),
        worker=row["worker"],
        join=row["join_id"],
        preemptions=row["preemptions"] or 0,
        image=row["image"],
        image_digest=row["image_digest"],
        site=row["site"],
        moves=tuple(TaskMove.of(m) for m in json.loads(row["moves"])) if row["moves"] else (),
    )


def run_row(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "state": run.state.value,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "workdir": run.workdir,
        "owner": run.owner,
        "cancel_requested": run.cancel_requested,
        "config": json.dumps(run.config),
        "project": run.project,
    }


def run_from_row(row: Any) -> RunRecord:
    return RunRecord(
        id=row["id"],
        name=row["name"],
        state=RunState(row["state"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        workdir=row["workdir"],
        owner=row["owner"],
        cancel_requested=bool(row["cancel_requested"]),
        config=json.loads(row["config"] or "{}"),
    )


# The only classes a stored TaskSpec is made of. A task's function and arguments stay bytes
# inside it (unpickled by the worker that runs the task), so reading the store — to list,
# inspect or resume runs — never runs code from it, whoever wrote the database.
_SPEC_CLASSES = {
    ("hexflow.model.spec", "TaskSpec"),
    ("hexflow.model.spec", "TaskKind"),
    ("hexflow.model.spec", "RetryPolicy"),
    ("hexflow.model.resources", "Resources"),
    ("hexflow.model.qos", "QoS"),
    ("hexflow.model.datasets", "Dataset"),  # inputs=/outputs= of a task (plain data)
}


class _SpecUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SPEC_CLASSES:
            raise StoreError(
                f"a stored task spec refers to {module}.{name}, which a spec never holds",
                hint="the store was written by something other than hexflow, or tampered "
                "with; it is not loaded",
            )
        return super().find_class(module, name)


def load_spec(blob: bytes) -> TaskSpec:
    """A TaskSpec from its stored bytes, building nothing but hexflow's own spec classes."""
    spec = _SpecUnpickler(io.BytesIO(blob)).load()
    if not isinstance(spec, TaskSpec):
        raise StoreError(f"a stored task spec is a {type(spec).__name__}, not a TaskSpec")
    return spec
