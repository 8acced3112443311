"""Groups: named sets of users inside one project, in the service database (the SFAPI
facade's ``account/groups``).

Group and project names share one namespace (a project is also shown as the group of its
members). A group's members are read joined with the project's memberships, so a user
who leaves the project leaves its groups with it. Each call is one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, exists, insert, select

from hexflow.errors import Conflict
from hexflow.model.access import UserGroup
from hexflow.store.service_schema import memberships, projects, user_group_members, user_groups

if TYPE_CHECKING:
    from hexflow.store.service_db import ServiceDb


class Groups:
    def __init__(self, db: ServiceDb) -> None:
        self._db = db

    def create(self, name: str, project: str, *, by: str, now: float) -> UserGroup:
        taken = f"the name {name!r} is taken (by a group or a project)"
        with self._db.write(conflict=taken) as conn:
            if conn.execute(select(exists().where(projects.c.name == name))).scalar():
                raise Conflict(taken, hint="pick another group name", group=name)
            conn.execute(
                insert(user_groups).values(
                    name=name, project_name=project, created_by=by, created_at=now
                )
            )
        return UserGroup(name, project, (), by, now)

    def get(self, name: str) -> UserGroup | None:
        found = self._load(user_groups.c.name == name)
        return found[0] if found else None

    def in_projects(self, names: Collection[str]) -> list[UserGroup]:
        if not names:
            return []
        return self._load(user_groups.c.project_name.in_(sorted(names)))

    def _load(self, where: object) -> list[UserGroup]:
        members = (
            select(user_group_members.c.group_name, user_group_members.c.user_name)
            .join(user_groups, user_groups.c.name == user_group_members.c.group_name)
            .join(
                memberships,
                (memberships.c.user_name == user_group_members.c.user_name)
                & (memberships.c.project_name == user_groups.c.project_name),
            )
            .where(where)  # type: ignore[arg-type]
        )
        with self._db.read() as conn:
            rows = conn.execute(
                select(user_groups).where(where).order_by(user_groups.c.name)  # type: ignore[arg-type]
            ).all()
            users: dict[str, list[str]] = {}
            for m in conn.execute(members):
                users.setdefault(m.group_name, []).append(m.user_name)
        return [
            UserGroup(r.name, r.project_name, tuple(sorted(users.get(r.name, ()))),
                      r.created_by, r.created_at)
            for r in rows
        ]  # fmt: skip

    def add(self, name: str, users: Sequence[str], *, by: str, now: float) -> None:
        """Add ``users`` (already checked to be members of the group's project); those in
        the group already stay as they are."""
        with self._db.write() as conn:
            present = set(
                conn.execute(
                    select(user_group_members.c.user_name).where(
                        user_group_members.c.group_name == name
                    )
                ).scalars()
            )
            new = [u for u in dict.fromkeys(users) if u not in present]
            if new:
                conn.execute(
                    insert(user_group_members),
                    [
                        {"group_name": name, "user_name": u, "added_by": by, "added_at": now}
                        for u in new
                    ],
                )

    def remove(self, name: str, users: Sequence[str]) -> None:
        with self._db.write() as conn:
            conn.execute(
                delete(user_group_members).where(
                    user_group_members.c.group_name == name,
                    user_group_members.c.user_name.in_(list(users)),
                )
            )
