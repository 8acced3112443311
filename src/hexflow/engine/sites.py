"""Sites in the engine: one executor and one placement per site, routing, and failover.

Each site is an executor with its own ``Placement`` (the facility policy sees it as a
``Site`` of its own cluster); ``scheduler.sites.choose_site`` picks the site of each ready
task among those it may use (``spec.sites``, the site's projects, its capacity), skipping
down sites and sites that drain for a planned outage. A ``SiteObserver`` (health checks,
admin overrides, outages; built in flow/) is asked every ``check_interval``; when a site
goes down:

- its queued tasks move to another site at once;
- work its executor already holds is withdrawn when the executor can prove it never
  started (``withdraw``), else cancelled with reason ``moved``: when the executor confirms
  the end, the task moves (or succeeds, had it just finished: never run twice to
  completion); a site that does not confirm within ``move_timeout`` is presumed dead and
  the task moves anyway.

Every move is recorded on the task (``moves``, ``site``) and logged as a ``task.moved``
event, in the turn's group commit. A moved attempt is not charged against the task's
retries (it counts in ``preemptions``); it resumes from its checkpoint directory.
"""

# mypy: disable-error-code="misc"
# (the methods are typed with ``self: Engine``, the class they are mixed into)
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hexflow.engine.placement import Placement
from hexflow.executors.base import Executor, TaskEnded
from hexflow.model import TaskRecord, TaskSpec, TaskState
from hexflow.model.events import SITE_STATE_CHANGED, TASK_MOVED, NewEvent
from hexflow.model.records import TaskMove
from hexflow.model.sites import SiteSpec, SiteState
from hexflow.scheduler.decisions import PolicyConfig
from hexflow.scheduler.sites import SiteView, blocked, choose_site

if TYPE_CHECKING:
    from hexflow.engine.engine import Engine

S = TaskState
log = logging.getLogger("hexflow.engine.sites")

# Ends that may mean the site itself failed: check the site before retrying on it.
SITE_FAILURES = frozenset({"node_fail", "slurm_unavailable", "worker_lost", "pilot_lost"})
SiteStates = Mapping[str, tuple[SiteState, str]]


class SiteObserver(Protocol):
    def observe(self, now: float, only: str | None = None) -> SiteStates:
        """Each site's state and why (``only``: just that site). Blocking: runs in a thread."""
        ...


@dataclass
class SiteBinding:
    """A site the engine runs work at: its name, executor and description (None: the
    implicit site of an engine given one executor)."""

    name: str
    executor: Executor
    spec: SiteSpec | None = None


@dataclass
class SiteSet:
    bindings: Sequence[SiteBinding]
    observer: SiteObserver | None = None
    check_interval: float = 2.0
    move_timeout: float = 10.0

    @classmethod
    def single(cls, executor: Executor) -> SiteSet:
        return cls([SiteBinding(executor.name, executor)])

    def __post_init__(self) -> None:
        names = [b.name for b in self.bindings]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"sites need distinct names, got {names}")


@dataclass(eq=False)
class SiteRuntime:
    """One site during a drive: its executor, placement and current state."""

    name: str
    executor: Executor
    spec: SiteSpec | None
    placement: Placement
    places_work: bool
    state: SiteState = SiteState.UP
    reason: str = ""
    running: set[int] = field(default_factory=set)  # tokens handed to its executor

    @classmethod
    def of(cls, binding: SiteBinding, policy: PolicyConfig) -> SiteRuntime:
        executor = binding.executor
        places = bool(getattr(executor, "places_work", False))
        spec = binding.spec
        placement = Placement(
            executor.capacity,
            policy,
            places_work=places,
            site=binding.name,
            default_walltime=spec.default_walltime if spec is not None else None,
        )
        return cls(binding.name, executor, spec, placement, places)

    def fits(self, spec: TaskSpec) -> bool:
        req = spec.resources
        return req.fits_in(self.executor.capacity) and (req.nodes == 1 or self.places_work)

    def allows(self, project: str | None) -> bool:
        return self.spec is None or self.spec.allows(project)

    def view(self, now: float) -> SiteView:
        spec = self.spec
        outage = spec.next_outage(now) if spec is not None else None
        cap = self.executor.capacity.cpus or 1.0
        busy = cap - self.placement.free.cpus + self.placement.queued_cpus()
        return SiteView(
            name=self.name,
            state=self.state,
            priority=spec.priority if spec is not None else 0,
            load=busy / cap,
            outage_start=outage.start if outage is not None else None,
            outage_end=outage.end if outage is not None else None,
            default_walltime=spec.default_walltime if spec is not None else 3600.0,
        )

    def drain_point(self, now: float) -> float | None:
        """When the next planned outage starts, if one has not ended (work must end by then)."""
        outage = self.spec.next_outage(now) if self.spec is not None else None
        return outage.start if outage is not None else None


def _walltime(spec: TaskSpec) -> float | None:
    limit = spec.time_limit
    return limit[0] if limit is not None else None


class SiteMixin:
    # ---------------------------------------------------------------- routing
    def _route(
        self: Engine, rec: TaskRecord, avoid: SiteRuntime | None = None
    ) -> SiteRuntime | None:
        """The site ``rec`` goes to now, or None (it waits: ``_parked`` says why)."""
        spec = rec.spec
        views = [
            site.view(self._now())
            for site in self._site_list
            if site is not avoid
            and (not spec.sites or site.name in spec.sites)
            and site.allows(self._project)
            and site.fits(spec)
        ]
        name, why = choose_site(views, _walltime(spec), self._now())
        if name is None:
            self._parked[rec.id] = why
            return None
        self._parked.pop(rec.id, None)
        return self._sites[name]

    def _unqueue(self: Engine, task_id: str) -> None:
        """Forget a queued (or parked) task wherever it waits."""
        self._parked.pop(task_id, None)
        site = self._at.pop(task_id, None)
        if site is not None:
            site.placement.remove(task_id)

    def _site_of_token(self: Engine, token: int) -> SiteRuntime:
        return self._token_site.get(token) or self._site_list[0]

    def _check_sites_of(self: Engine, specs: Sequence[TaskSpec], project: str | None) -> None:
        """Each task names only known sites and fits in at least one it may use."""
        from hexflow.errors import SpecError

        known = self._sites
        for spec in specs:
            unknown = [s for s in spec.sites if s not in known]
            if unknown:
                raise SpecError(
                    f"task {spec.name!r} names the site {unknown[0]!r}, which is not one of "
                    f"this engine's sites ({', '.join(known)})",
                    hint="describe it in the sites file (HEXFLOW_SITES), or fix the name",
                    task=spec.id,
                    field="sites",
                )
            allowed = [s for s in self._site_list if not spec.sites or s.name in spec.sites]
            usable = [s for s in allowed if s.allows(project)]
            if not usable:
                raise SpecError(
                    f"task {spec.name!r}: project {project!r} may not run at "
                    f"{', '.join(s.name for s in allowed)}",
                    hint="each site's `projects:` lists who may use it",
                    task=spec.id,
                    field="sites",
                )
            if not any(s.fits(spec) for s in usable):
                site = usable[0]
                cap = site.executor.capacity
                raise SpecError(
                    f"task {spec.name!r} asks for {spec.resources.describe()} but the "
                    f"{site.executor.name} executor has {cap.describe()} in all"
                    + (" (and no other site it may use has more)" if len(usable) > 1 else ""),
                    hint="lower the request, or run on a site that has it (slurm executor)",
                    task=spec.id,
                )

    # ---------------------------------------------------------------- watching sites
    async def _watch_sites(self: Engine) -> None:
        """Ask the observer for the sites' states every ``check_interval``; each round
        also re-routes waiting tasks and drains sites before their planned outages."""
        while True:
            await asyncio.sleep(self.site_set.check_interval)
            states = await self._observe_sites()
            self._inbox.append(lambda s=states: self._apply_site_states(s))
            self._wake()

    async def _observe_sites(self: Engine, only: str | None = None) -> SiteStates:
        observer = self.site_set.observer
        if observer is None:
            return {}
        try:
            return await asyncio.to_thread(observer.observe, self._now(), only)
        except Exception:  # noqa: BLE001 - a failing observer must not stop the run
            log.exception("checking the sites failed")
            return {}

    def _check_site_then(self: Engine, site: SiteRuntime, event: TaskEnded) -> None:
        """An end that may mean the site failed: check that site first, then handle it."""
        assert self._loop is not None

        async def check() -> None:
            states = await self._observe_sites(site.name)
            self._inbox.append(lambda: self._apply_site_states(states))
            self._inbox.append(event)
            self._wake()

        task = self._loop.create_task(check())
        self._site_checks.add(task)
        task.add_done_callback(self._site_checks.discard)

    def _apply_site_states(self: Engine, states: SiteStates) -> None:
        now = self._now()
        for name, (state, reason) in states.items():
            site = self._sites.get(name)
            if site is None or (site.state is state and site.reason == reason):
                continue
            previous, site.state, site.reason = site.state, state, reason
            self._events.append(
                NewEvent(
                    SITE_STATE_CHANGED,
                    self._project,
                    name,
                    now,
                    {
                        "site": name,
                        "state": state.value,
                        "previous": previous.value,
                        "reason": reason,
                        "run": self.run_record.id if self.run_record else None,
                    },
                )
            )
            if state is SiteState.DOWN:
                self._evacuate(site, f"site {name} is down" + (f": {reason}" if reason else ""))
        self._reroute(now)

    def _reroute(self: Engine, now: float) -> None:
        """Waiting tasks get a site if one can take them; sites that must drain for a
        planned outage hand on the queued tasks that would not end before it."""
        for task_id in list(self._parked):
            rec = self.records[task_id]
            site = self._route(rec)
            if site is not None:
                self._place(rec, site)
                self._dirty[rec.id] = rec
        for site in self._site_list:
            start = site.drain_point(now)
            site.placement.leaves_at(start if site.state is not SiteState.DOWN else None)
            if start is None or site.state is SiteState.DOWN:
                continue
            view = site.view(now)
            for task_id in site.placement.queued():
                rec = self.records[task_id]
                why = blocked(view, _walltime(rec.spec), now)
                if why is None:
                    continue
                target = self._route(rec, avoid=site)
                if target is None:  # nowhere better: it waits there for after the outage
                    self._parked.pop(rec.id, None)
                    continue
                site.placement.remove(task_id)
                self._move(rec, site, why, target=target)
        self._wake()

    # ---------------------------------------------------------------- moving work
    def _evacuate(self: Engine, site: SiteRuntime, why: str) -> None:
        """A site went down: its queued work moves now; what its executor holds moves once
        the executor has stopped it (or could prove it never started)."""
        for task_id in site.placement.queued():
            site.placement.remove(task_id)
            self._at.pop(task_id, None)
            self._move(self.records[task_id], site, why)
        withdraw = getattr(site.executor, "withdraw", None)
        for token in sorted(site.running):
            held = self._tokens.get(token)
            if held is None or token in self._moving or token in self._cancel_tokens:
                continue
            rec = self.records[held]
            if withdraw is not None and withdraw(token):  # it never started there
                self._forget_token(token)
                rec.attempt = max(0, rec.attempt - 1)  # an attempt that never ran
                self._move(rec, site, why)
                continue
            self._moving[token] = why
            executor = site.executor
            self._actions.append(lambda t=token, ex=executor: ex.cancel(t, "moved"))
            self._after(self.site_set.move_timeout, self._move_overdue, token)

    def _move_overdue(self: Engine, token: int) -> None:
        """The down site did not confirm within ``move_timeout``: presume the attempt lost."""
        if token not in self._moving or token not in self._tokens:
            return
        why = self._moving[token]
        timeout = self.site_set.move_timeout
        self._inbox.append(
            TaskEnded(
                token,
                ok=False,
                ended_at=self._now(),
                reason="moved",
                error=f"{why}; it did not confirm the task stopped within {timeout:g} s",
            )
        )
        self._wake()

    def _forget_token(self: Engine, token: int) -> None:
        task_id = self._tokens.pop(token, None)
        site = self._token_site.pop(token, None)
        if site is not None:
            site.running.discard(token)
        if task_id is not None:
            self._token_of.pop(task_id, None)
            self._at.pop(task_id, None)
            if site is not None:
                site.placement.ended(task_id)

    def _move(
        self: Engine,
        rec: TaskRecord,
        source: SiteRuntime,
        why: str,
        *,
        attempt: int | None = None,
        target: SiteRuntime | None = None,
    ) -> None:
        """Record the move of ``rec`` off ``source`` and queue it at another site (or park
        it until one can take it). ``attempt``: the attempt stopped there, if it ran."""
        now = self._now()
        target = target or self._route(rec, avoid=source)  # None: parked, with the reason
        to = target.name if target is not None else None
        rec.moves = (*rec.moves, TaskMove(now, source.name, to, why, attempt))
        rec.reason = "moved"
        rec.error = why + (f"; moved to {to}" if to else "; waits for a site that can take it")
        if attempt is not None:
            rec.preemptions += 1  # stopped by the site, not by the task: not a retry
            rec.ended_at = now
        if rec.state is not S.READY:
            self._set(rec, S.READY)
        else:
            self._dirty[rec.id] = rec
        self._events.append(
            NewEvent(
                TASK_MOVED,
                self._project,
                f"{rec.run_id}/{rec.id}",
                now,
                {
                    "run": rec.run_id,
                    "task": rec.id,
                    "from": source.name,
                    "to": to,
                    "reason": why,
                    "attempt": attempt,
                },
            )
        )
        if target is not None:
            self._place(rec, target)
        else:
            rec.site = None


__all__ = ["SITE_FAILURES", "SiteBinding", "SiteMixin", "SiteObserver", "SiteRuntime", "SiteSet"]
