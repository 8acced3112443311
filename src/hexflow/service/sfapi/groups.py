"""SFAPI groups in hexflow's terms: each project is the (read-only) group of its members,
and a project's administrators may create named groups inside it (``account/groups``).

A named group belongs to one project; only members of that project see it, only its
administrators (admin role, with a credential holding the ``admin`` scope) create it or
change its members, and its members must be members of the project. Every attempt to
change a group is audited (``sfapi.group.create``, ``sfapi.group.add``,
``sfapi.group.remove``), allowed or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hexflow.errors import Conflict, NotFound, SpecError
from hexflow.model.access import Scope, UserGroup, check_name
from hexflow.service.audit import Audit
from hexflow.service.auth import Principal
from hexflow.service.sfapi.views import number
from hexflow.store.service_db import ServiceDb

ACTIONS = {"batch_add": "sfapi.group.add", "batch_remove": "sfapi.group.remove"}


def _shape(name: str, users: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {"gid": number(name), "name": name,
            "users": [{"uid": number(u), "name": u} for u in users]}  # fmt: skip


class SfapiGroups:
    def __init__(self, db: ServiceDb, audit: Audit, clock: Callable[[], float] = time.time):
        self._db = db
        self._audit = audit
        self._now = clock

    # ------------------------------------------------------------------ reading
    def group(self, who: Principal, name: str) -> dict[str, Any]:
        who.require_scope(Scope.READ)
        if name in who.roles:  # a project: the group of its members
            return _shape(name, [m.user for m in self._db.accounts.members_of(name)])
        return _shape(name, self._visible(who, name).members)

    def groups(self, who: Principal) -> dict[str, Any]:
        """Your projects (as groups), then the named groups of your projects."""
        who.require_scope(Scope.READ)
        out = [self.group(who, p) for p in sorted(who.roles)]
        out += [_shape(g.name, g.members) for g in self._db.groups.in_projects(set(who.roles))]
        return {"groups": out}

    def _visible(self, who: Principal, name: str) -> UserGroup:
        found = self._db.groups.get(name)
        if found is None or found.project not in who.roles:
            raise NotFound(
                f"no group {name!r}",
                hint="GET account/groups lists your projects and the groups in them",
                group=name,
            )
        return found

    # ------------------------------------------------------------------ changing
    def create(
        self, who: Principal, name: str, project: str, *, source: str | None
    ) -> dict[str, Any]:
        """A new, empty group in ``project`` (you must administer it)."""
        with self._audit.action(
            who.name, "sfapi.group.create", project=project or None, target=name[:256],
            source=source,
        ) as note:  # fmt: skip
            try:
                check_name(name, "group")
            except SpecError as exc:
                raise SpecError(exc.message, hint=exc.hint, field="name") from None
            who.check_project(project, Scope.ADMIN)
            group = self._db.groups.create(name, project, by=who.name, now=self._now())
            note.detail = f"in project {project}"
            return _shape(group.name, group.members)

    def change(
        self,
        who: Principal,
        name: str,
        *,
        action: str,
        usernames: str,
        group: str | None,
        source: str | None,
    ) -> dict[str, Any]:
        """Add (``batch_add``) or remove (``batch_remove``) users, all or none; adding a
        member or removing a non-member changes nothing."""
        with self._audit.action(
            who.name, ACTIONS[action], target=name[:256], source=source
        ) as note:
            note.detail = usernames[:1000]
            if group and group != name:
                raise SpecError(
                    f"the form names group {group!r} but the path {name!r}",
                    hint="send the same group in both, or leave the form's group out",
                    field="group",
                )
            if name in who.roles:
                raise Conflict(
                    f"group {name!r} is project {name!r}: its members are the project's",
                    hint="change them with `hexflow admin project add-member`, or create a "
                    "named group in the project (POST account/groups)",
                    group=name,
                )
            found = self._visible(who, name)
            note.project = found.project
            who.check_project(found.project, Scope.ADMIN)
            users = self._users(found.project, usernames)
            if action == "batch_add":
                self._db.groups.add(name, users, by=who.name, now=self._now())
            else:
                self._db.groups.remove(name, users)
            return self.group(who, name)

    def _users(self, project: str, usernames: str) -> list[str]:
        names = list(dict.fromkeys(u.strip() for u in usernames.split(",") if u.strip()))
        if not names:
            raise SpecError(
                "no usernames given", hint="send usernames=a,b (comma-separated)",
                field="usernames",
            )  # fmt: skip
        members = {m.user for m in self._db.accounts.members_of(project)}
        strangers = [u for u in names if u not in members]
        if strangers:
            raise SpecError(
                f"not members of project {project!r}: {', '.join(strangers)}",
                hint="a group holds members of its project; add them to the project first "
                "(`hexflow admin project add-member`)",
                field="usernames",
            )
        return names
