"""RunQueries: runs and tasks read by project, filtered and paginated (keyset), for the API.

Every query takes the set of projects the caller may see: a run outside it does not exist
for the caller. Ids are matched exactly (no prefixes across projects).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, func, or_, select

from hexflow.model import RunRecord, RunState, TaskRecord, TaskState
from hexflow.store.rows import load_spec, run_from_row, task_from_row
from hexflow.store.schema import runs, tasks

if TYPE_CHECKING:
    from hexflow.store.service_db import ServiceDb


class RunQueries:
    def __init__(self, db: ServiceDb) -> None:
        self._db = db

    def list_runs(
        self,
        projects: Collection[str],
        *,
        state: str | None = None,
        name: str | None = None,
        after: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Newest first; ``after`` is the (created_at, id) of the last run of the previous page."""
        if not projects:
            return []
        query = (
            select(runs)
            .where(runs.c.project.in_(list(projects)))
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(limit)
        )
        if state is not None:
            query = query.where(runs.c.state == state)
        if name is not None:
            query = query.where(runs.c.name == name)
        if after is not None:
            created, run_id = after
            query = query.where(
                or_(
                    runs.c.created_at < created,
                    and_(runs.c.created_at == created, runs.c.id < run_id),
                )
            )
        with self._db.read() as conn:
            return [run_from_row(r._mapping) for r in conn.execute(query)]

    def get_run(self, run_id: str, projects: Collection[str]) -> RunRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(runs).where(runs.c.id == run_id, runs.c.project.in_(list(projects)))
            ).first()
        return run_from_row(row._mapping) if row else None

    def task_counts(self, run_id: str) -> dict[str, int]:
        with self._db.read() as conn:
            return _counts(conn, run_id)

    def get_run_with_counts(
        self, run_id: str, projects: Collection[str]
    ) -> tuple[RunRecord, dict[str, int]] | None:
        """``get_run`` and ``task_counts`` on one connection (a status query)."""
        with self._db.read() as conn:
            row = conn.execute(
                select(runs).where(runs.c.id == run_id, runs.c.project.in_(list(projects)))
            ).first()
            return (run_from_row(row._mapping), _counts(conn, run_id)) if row else None

    def list_tasks(
        self,
        run_id: str,
        *,
        state: str | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[tuple[int, TaskRecord]]:
        """(seq, task) in creation order, after ``after_seq``."""
        query = select(tasks).where(tasks.c.run_id == run_id).order_by(tasks.c.seq).limit(limit)
        if state is not None:
            query = query.where(tasks.c.state == state)
        if after_seq is not None:
            query = query.where(tasks.c.seq > after_seq)
        with self._db.read() as conn:
            return [(r.seq, task_from_row(r._mapping)) for r in conn.execute(query)]

    def get_task(self, run_id: str, task_id: str) -> TaskRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(tasks).where(tasks.c.run_id == run_id, tasks.c.task_id == task_id)
            ).first()
        return task_from_row(row._mapping) if row else None

    def task_states(self, run_id: str) -> list[tuple[str, str, int]]:
        """(task id, state, attempt) of every task, in creation order: cheap, for streams."""
        query = (
            select(tasks.c.task_id, tasks.c.state, tasks.c.attempt)
            .where(tasks.c.run_id == run_id)
            .order_by(tasks.c.seq)
        )
        with self._db.read() as conn:
            return [(r.task_id, r.state, r.attempt) for r in conn.execute(query)]

    def usage(self) -> tuple[float, int, int, int]:
        """(cpus held, gpus held, tasks running, tasks waiting) over unfinished service runs."""
        live = [RunState.PENDING.value, RunState.RUNNING.value]
        held = [TaskState.SUBMITTED.value, TaskState.RUNNING.value]
        waiting = [TaskState.PENDING.value, TaskState.READY.value, TaskState.RETRYING.value]
        in_live_runs = tasks.c.run_id.in_(
            select(runs.c.id).where(runs.c.project.is_not(None), runs.c.state.in_(live))
        )
        with self._db.read() as conn:
            specs = [
                load_spec(r.spec)
                for r in conn.execute(
                    select(tasks.c.spec).where(in_live_runs, tasks.c.state.in_(held))
                )
            ]
            n_waiting = conn.execute(
                select(func.count()).where(in_live_runs, tasks.c.state.in_(waiting))
            ).scalar_one()
        cpus = sum(s.resources.cpus for s in specs)
        gpus = sum(s.resources.gpus for s in specs)
        return cpus, gpus, len(specs), int(n_waiting)

    def unfinished(self) -> list[RunRecord]:
        """Service runs (with a project) that have not ended: to drive again after a restart."""
        live = [RunState.PENDING.value, RunState.RUNNING.value]
        query = (
            select(runs)
            .where(runs.c.project.is_not(None), runs.c.state.in_(live))
            .order_by(runs.c.created_at)
        )
        with self._db.read() as conn:
            return [run_from_row(r._mapping) for r in conn.execute(query)]


def _counts(conn: Connection, run_id: str) -> dict[str, int]:
    """Tasks of the run by state, counted by the database (the primary key's run_id
    prefix finds them; nothing but the states is read)."""
    rows = conn.execute(
        select(tasks.c.state, func.count()).where(tasks.c.run_id == run_id).group_by(tasks.c.state)
    )
    return {state: int(n) for state, n in rows}
