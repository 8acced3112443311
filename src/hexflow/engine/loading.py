"""Loading a run into the engine: the run taken over (or just created), its tasks read
back and requeued where a crash left them in flight, the DAG's pending tasks settled, and
the check that a task fits some site before it is queued."""

# mypy: disable-error-code="misc"
# (the methods are typed with ``self: Engine``, the class they are mixed into)
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING

from hexflow.engine.lease import my_owner_id, owner_alive
from hexflow.errors import EngineError, SpecError
from hexflow.executors.base import Executor
from hexflow.model import RunRecord, RunState, TaskRecord, TaskSpec, TaskState

if TYPE_CHECKING:
    from hexflow.engine.engine import Engine

S = TaskState


class LoadMixin:
    # set here, declared for the type checker (the Engine owns them)
    run_record: RunRecord | None
    _run_dirty: bool
    _project: str | None
    _started: float

    def _load(self: Engine, run_id: str, retry_failed: bool) -> None:
        created, self._created = self._created, None
        if created is not None and created[0].id == run_id:
            # Just created by this engine, owned by this process: the store holds exactly
            # these records, so there is nothing to read back.
            run, records, self.dag = created
        else:
            run = self.store.get_run(run_id)
            me = my_owner_id()
            if owner_alive(run.owner) and run.owner != me:
                raise EngineError(
                    f"run {run.id} is being driven by another live process ({run.owner})",
                    hint="wait for it, or stop it with `hexflow cancel RUN`",
                    run=run.id,
                )
            # Take the run over atomically: of two resumes started at once, one wins.
            if run.owner != me and not self.store.claim_run(run.id, run.owner, me):
                raise EngineError(
                    f"run {run.id} was just taken over by another process",
                    hint="`hexflow status RUN` shows who drives it now",
                    run=run.id,
                )
            records = self.store.load_tasks(run.id)
            self.dag.add_many(r.spec for r in records)
        now = self._now()
        run.owner = my_owner_id()
        if retry_failed:  # an earlier cancel is over: the run may succeed now
            run.cancel_requested = False
        if run.state is not RunState.RUNNING:
            run.set_state(RunState.RUNNING)
        run.started_at = run.started_at or now
        run.ended_at = None
        cap = self.executor.capacity
        run.config["executor"] = {  # what `hexflow queue` explains waiting against
            "name": self.executor.name,
            "node": self._placement.node,
            "cpus": cap.cpus,
            "memory": cap.memory,
            "gpus": cap.gpus,
            "policy": asdict(self.policy),
        }
        if self._only_site is None:
            run.config["sites"] = [site.name for site in self._site_list]
        self.run_record = run
        self._project = run.project
        self._run_event(run)
        self._run_dirty = True
        self._started = now
        self._note_gangs(r.spec for r in records)
        for rec in records:
            self.records[rec.id] = rec
            if rec.join and rec.state is S.RUNNING:  # its code ran; it waits for a spawned task
                self._joins.setdefault(rec.join, []).append(rec.id)
            elif rec.state.in_flight:  # lost in flight by a crash: requeue, not counted
                if rec.worker:  # what the dead engine left running, wherever it was
                    any(site.executor.reap(rec.worker) for site in self._site_list)
                rec.set_state(S.READY)
                rec.attempt = max(0, rec.attempt - 1)
                rec.reason = "requeued after restart"
                self._dirty[rec.id] = rec
            elif rec.state is S.RETRYING:  # keep the backoff it was waiting out
                self._count(None, rec.state)
                self._after(max(0.0, (rec.retry_at or now) - now), self._retry_due, rec.id)
                continue
            elif retry_failed and rec.state in (S.FAILED, S.UPSTREAM_FAILED, S.CANCELLED):
                rec.set_state(S.PENDING)
                rec.attempt = 0
                rec.reason = rec.error = rec.traceback = rec.root_cause = rec.join = None
                self._dirty[rec.id] = rec
            self._count(None, rec.state)
        for spec_id in self.dag.topological_order():
            rec = self.records[spec_id]
            if rec.state is S.READY:
                self._enqueue(rec)
            elif rec.state is S.PENDING:
                self._settle_pending(rec)
        for target in list(self._joins):
            if self.records[target].state.terminal:  # it ended before the crash
                self._resolve_joins(self.records[target])

    def _check_fits(self: Engine, specs: Iterable[TaskSpec], project: str | None = None) -> None:
        if self._only_site is None or any(spec.sites for spec in specs):
            self._check_sites_of(list(specs), project)
            return
        cap = self.executor.capacity
        one_node = not _places_work(self.executor)  # else the batch system spans nodes
        for spec in specs:
            req = spec.resources
            if not req.fits_in(cap) or (req.nodes > 1 and one_node):
                raise SpecError(
                    f"task {spec.name!r} asks for {req.describe()} but the {self.executor.name} "
                    f"executor has {cap.describe()} in all",
                    hint="lower the request, or run on a site that has it (slurm executor)",
                    task=spec.id,
                )

    def _settle_pending(self: Engine, rec: TaskRecord) -> None:
        """Compute how many deps a PENDING task still waits for; fail or ready it if due."""
        waiting = 0
        for dep in rec.spec.deps:
            dep_rec = self.records[dep]
            if dep_rec.state in (S.FAILED, S.UPSTREAM_FAILED, S.CANCELLED):
                self._upstream_failed(rec, dep_rec)
                return
            if dep_rec.state is not S.SUCCEEDED:
                waiting += 1
        if waiting:
            self._waiting[rec.id] = waiting
        else:
            self._make_ready(rec)


def _places_work(executor: Executor) -> bool:
    """Whether the executor's backend places work itself (a batch system): the engine then
    hands it tasks of any node count and does not fit them into one node."""
    return bool(getattr(executor, "places_work", False))


__all__ = ["LoadMixin"]
