"""ServiceLog: what the service remembers about requests — the audit log, idempotency
keys of submitting requests, and the client assertions (``jti``) already used.

Idempotency: ``reserve`` inserts (user, key) -> run id before the run is created; the
primary key makes a concurrent or later retry find the first reservation instead.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select

from hexflow.errors import Conflict
from hexflow.model.access import AuditEntry
from hexflow.store.service_schema import audit_log, idempotency_keys, oauth_assertions

if TYPE_CHECKING:
    from hexflow.store.service_db import ServiceDb

IDEMPOTENCY_TTL = 24 * 3600.0  # seconds a key is remembered


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
    def record(
        self,
        *,
        at: float,
        actor: str,
        project: str | None,
        action: str,
        target: str,
        outcome: str,
        status: int | None = None,
        source: str | None = None,
        detail: str | None = None,
    ) -> int:
        with self._db.write() as conn:
            result = conn.execute(
                insert(audit_log).values(
                    at=at,
                    actor=actor[:128],
                    project=project,
                    action=action,
                    target=target[:256],
                    outcome=outcome,
                    status=status,
                    source=(source or None) and source[:64],
                    detail=detail,
                )
            )
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

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
    def reserve(
        self, user: str, key: str, *, fingerprint: str, run_id: str, project: str, now: float
    ) -> Reservation | None:
        """Reserve ``key`` for a new run: None when reserved now, else the earlier one."""
        with self._db.write() as conn:
            conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL
                )
            )
        try:
            with self._db.write(conflict="key taken") as conn:
                conn.execute(
                    insert(idempotency_keys).values(
                        user_name=user,
                        key=key,
                        fingerprint=fingerprint,
                        run_id=run_id,
                        project=project,
                        created_at=now,
                    )
                )
            return None
        except Conflict:
            pass
        with self._db.read() as conn:
            row = conn.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.user_name == user, idempotency_keys.c.key == key
                )
            ).first()
        if row is None:  # expired and purged between the two statements: a fresh try
            return self.reserve(
                user, key, fingerprint=fingerprint, run_id=run_id, project=project, now=now
            )
        return Reservation(row.run_id, row.project, row.fingerprint, row.created_at)

    def release(self, user: str, key: str, run_id: str) -> None:
        """Forget a reservation whose run could not be created (the request failed)."""
        with self._db.write() as conn:
            conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.user_name == user,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.run_id == run_id,
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
