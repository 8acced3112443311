"""TriggerService and EventService: triggers (create, list, delete: audited) and the event
log (read after an offset, follow), within the projects the caller's credential reaches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from typing import Any

from hexflow.errors import ServiceError
from hexflow.events.system import EventSystem
from hexflow.model.access import Scope
from hexflow.model.events import Event
from hexflow.model.triggers import Trigger
from hexflow.service.audit import Audit
from hexflow.service.auth import Principal


class TriggerService:
    def __init__(self, events: EventSystem, audit: Audit) -> None:
        self._events = events
        self._audit = audit

    def create(
        self,
        who: Principal,
        project: str | None,
        *,
        name: str,
        kind: str,
        function: str,
        config: dict[str, Any],
        args: dict[str, Any],
        source: str | None,
        workflow: str | None = None,
    ) -> Trigger:
        with self._audit.action(who.name, "trigger.create", project=project, source=source) as note:
            project = project or who.default_project(Scope.SUBMIT)
            note.project = project
            who.check_project(project, Scope.SUBMIT)
            trigger = self._events.triggers.create(
                project,
                name=name,
                kind=kind,
                function=function,
                config=config,
                args=args,
                user=who.name,
                workflow=workflow,
            )
            note.target, note.detail = trigger.id, f"{trigger.kind.value} -> {trigger.target}"
            return trigger

    def list_triggers(self, who: Principal, project: str | None) -> list[Trigger]:
        who.require_scope(Scope.READ)
        projects = who.projects(Scope.READ)
        if project is not None:
            who.check_project(project, Scope.READ)
            projects = {project}
        return self._events.triggers.list_triggers(projects)

    def delete(self, who: Principal, trigger_id: str, *, source: str | None) -> Trigger:
        with self._audit.action(
            who.name, "trigger.delete", target=trigger_id, source=source
        ) as note:
            who.require_scope(Scope.SUBMIT)
            visible = self._events.triggers.get(trigger_id, who.projects(Scope.READ))
            note.project = visible.project
            who.check_project(visible.project, Scope.SUBMIT)
            return self._events.triggers.delete(trigger_id, [visible.project])


class EventService:
    def __init__(self, events: EventSystem) -> None:
        self._events = events

    def projects(self, who: Principal, project: str | None) -> Collection[str]:
        who.require_scope(Scope.READ)
        if project is not None:
            who.check_project(project, Scope.READ)
            return {project}
        return who.projects(Scope.READ)

    async def read(
        self, who: Principal, *, after: int, project: str | None, wait: float, limit: int
    ) -> tuple[list[Event], int]:
        """(events after ``after``, the seq to pass as ``after`` next), waiting up to
        ``wait`` seconds for the first one."""
        projects = self.projects(who, project)
        await self.check_kept(after)
        return await self._events.bus.wait(after, projects=projects, timeout=wait, limit=limit)

    def follow(
        self, who: Principal, *, after: int, project: str | None
    ) -> AsyncIterator[Event | None]:
        return self._events.bus.stream(after, projects=self.projects(who, project))

    async def check_kept(self, after: int) -> None:
        """A reader asking for events the retention deleted is told so (410), rather than
        missing them; ``after=0`` reads from the oldest event kept."""
        if self._events.config.retention <= 0 or after <= 0:
            return
        pruned = await asyncio.to_thread(self._events.log.pruned_upto)
        if after < pruned:
            raise ServiceError(
                f"the events up to seq {pruned} are gone: the server keeps events for "
                f"{self._events.config.retention:g} s once every consumer has handled them",
                hint=f"read from after={pruned} (or after=0: the oldest kept)",
                status=410,
                field="after",
            )
