"""ServiceLog: what the service remembers about requests — the audit log, idempotency
keys of submitting requests, and the client assertions (``jti``) already used.

Idempotency: (user, key) -> run id is inserted in the transaction that creates the run
(``group_commit``); the primary key makes a concurrent or later retry fail there and find
the first reservation instead. Keys are remembered ``IDEMPOTENCY_TTL`` seconds.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select

from hexflow.errors import Conflict
from hexflow.model.access import AuditEntry
from hexflow.store.group_commit import IDEMPOTENCY_TTL
from hexflow.store.service_schema import audit_log, idempotency_keys, oauth_assertions

if TYPE_CHECKING:
    from hexflow.store.service_db import ServiceDb

__all__ = ["IDEMPOTENCY_TTL", "Reservation", "ServiceLog"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """The run an idempotency key stands for, and the request that reserved it."""

    run_id: str
    project: str
    fingerprint: str
    created_at: float


class ServiceLog:
    def __init__(self, db: ServiceDb) -> None:
        self._db = db

    # ------------------------------------------------------------------ audit
    # Entries are appended through the group commit (``group_commit.AuditRow``).
    def entries(
        self,
        *,
        projects: Collection[str] | None,
        project: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        """Newest first. ``projects``: the projects visible (None: all, with site-wide ones)."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if projects is not None:
            query = query.where(audit_log.c.project.in_(list(projects)))
        if project is not None:
            query = query.where(audit_log.c.project == project)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        with self._db.read() as conn:
            return [
                AuditEntry(
                    id=r.id,
                    at=r.at,
                    actor=r.actor,
                    project=r.project,
                    action=r.action,
                    target=r.target,
                    outcome=r.outcome,
                    status=r.status,
                    source=r.source,
                    detail=r.detail,
                )
                for r in conn.execute(query)
            ]

    # ------------------------------------------------------------------ idempotency
    def reservation(self, user: str, key: str) -> Reservation | None:
        """What ``key`` of ``user`` stands for, if it is stored."""
        with self._db.read() as conn:
            row = conn.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.user_name == user, idempotency_keys.c.key == key
                )
            ).first()
        return (
            Reservation(row.run_id, row.project, row.fingerprint, row.created_at) if row else None
        )

    def forget(self, user: str, key: str, created_at: float) -> None:
        """Drop an expired reservation (only the one seen: a newer one stays)."""
        with self._db.write() as conn:
            conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.user_name == user,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.created_at == created_at,
                )
            )

    # ------------------------------------------------------------------ client assertions
    def use_assertion(self, client_id: str, jti: str, *, expires_at: float, now: float) -> bool:
        """Record a client assertion's ``jti``; False if it was used before (a replay)."""
        with self._db.write() as conn:
            conn.execute(delete(oauth_assertions).where(oauth_assertions.c.expires_at < now))
        try:
            with self._db.write(conflict="replayed") as conn:
                conn.execute(
                    insert(oauth_assertions).values(
                        client_id=client_id, jti=jti, expires_at=expires_at
                    )
                )
        except Conflict:
            return False
        return True
