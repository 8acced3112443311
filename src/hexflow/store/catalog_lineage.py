"""Provenance in the catalog: activities (one per task of a run) and the versions each
used and generated, and the lineage graph walked from a version, level by level.

Edges are only ever added: recording an activity again adds just the edges it lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select

from hexflow.errors import StoreError
from hexflow.model.datasets import LineageEdge, VersionRecord
from hexflow.store.catalog_rows import VERSION_COLUMNS, version_id, version_record
from hexflow.store.data_schema import activities, activity_io, dataset_versions, datasets

if TYPE_CHECKING:
    from hexflow.store.data_db import DataDb

_V, _D = dataset_versions, datasets


class CatalogLineageMixin:
    """The provenance methods of ``CatalogSql``."""

    _db: DataDb

    def record_activity(
        self,
        run_id: str,
        task_id: str,
        used: Sequence[VersionRecord],
        generated: Sequence[VersionRecord],
        now: float,
    ) -> None:
        with self._db.write() as conn:
            act = conn.execute(
                select(activities.c.id).where(
                    activities.c.run_id == run_id, activities.c.task_id == task_id
                )
            ).scalar()
            if act is None:
                act = conn.execute(
                    insert(activities).values(run_id=run_id, task_id=task_id, created_at=now)
                ).inserted_primary_key[0]  # type: ignore[index]
            have = {
                (r.version_id, r.role)
                for r in conn.execute(
                    select(activity_io.c.version_id, activity_io.c.role).where(
                        activity_io.c.activity_id == act
                    )
                )
            }
            rows = []
            for role, versions in (("used", used), ("generated", generated)):
                for v in versions:
                    key = (version_id(conn, v), role)
                    if key not in have:
                        have.add(key)
                        rows.append({"activity_id": act, "version_id": key[0], "role": role})
            if rows:
                conn.execute(insert(activity_io), rows)

    def run_activities(
        self, run_id: str
    ) -> list[tuple[str, list[VersionRecord], list[VersionRecord]]]:
        """(task id, versions used, versions generated) of every task of the run that the
        catalog knows of, in the order they were recorded."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(activities.c.id, activities.c.task_id, activity_io.c.role, *VERSION_COLUMNS)
                .select_from(
                    activities.join(activity_io, activity_io.c.activity_id == activities.c.id)
                    .join(_V, _V.c.id == activity_io.c.version_id)
                    .join(_D, _D.c.id == _V.c.dataset_id)
                )
                .where(activities.c.run_id == run_id)
                .order_by(activities.c.id, _D.c.name, _V.c.number)
            ).all()
        out: dict[int, tuple[str, list[VersionRecord], list[VersionRecord]]] = {}
        for r in rows:
            entry = out.setdefault(r[0], (r.task_id, [], []))
            (entry[1] if r.role == "used" else entry[2]).append(version_record(r))
        return list(out.values())

    def producers(self, v: VersionRecord) -> list[tuple[str, str]]:
        """The (run id, task id) of the activities that generated ``v``."""
        with self._db.read() as conn:
            vid = version_id(conn, v)
            rows = conn.execute(
                select(activities.c.run_id, activities.c.task_id)
                .select_from(activity_io.join(activities))
                .where(activity_io.c.version_id == vid, activity_io.c.role == "generated")
            )
            return [(r.run_id, r.task_id) for r in rows]

    def lineage(self, v: VersionRecord, direction: str, depth: int) -> list[LineageEdge]:
        """Edges upstream (what ``v`` was made from) or downstream (what was made from it),
        level by level up to ``depth`` activities away."""
        if direction not in ("upstream", "downstream"):
            raise StoreError(f"lineage direction must be upstream or downstream: {direction}")
        start_role, next_role = (
            ("generated", "used") if direction == "upstream" else ("used", "generated")
        )
        edges: list[LineageEdge] = []
        with self._db.read() as conn:
            frontier = {version_id(conn, v)}
            seen_versions = set(frontier)
            seen_acts: set[int] = set()
            refs: dict[int, str] = {}
            for level in range(1, depth + 1):
                if not frontier:
                    break
                acts = {
                    r.activity_id
                    for r in conn.execute(
                        select(activity_io.c.activity_id).where(
                            activity_io.c.version_id.in_(frontier),
                            activity_io.c.role == start_role,
                        )
                    )
                } - seen_acts
                seen_acts |= acts
                if not acts:
                    break
                io_rows = conn.execute(
                    select(
                        activity_io.c.activity_id,
                        activity_io.c.version_id,
                        activity_io.c.role,
                        activities.c.run_id,
                        activities.c.task_id,
                    )
                    .select_from(activity_io.join(activities))
                    .where(activity_io.c.activity_id.in_(acts))
                ).all()
                self._load_refs(conn, {r.version_id for r in io_rows} - set(refs), refs)
                by_act: dict[int, dict[str, list[int]]] = {}
                meta: dict[int, tuple[str, str]] = {}
                for r in io_rows:
                    by_act.setdefault(r.activity_id, {"used": [], "generated": []})[r.role].append(
                        r.version_id
                    )
                    meta[r.activity_id] = (r.run_id, r.task_id)
                nxt: set[int] = set()
                for act_id in sorted(by_act):
                    run_id, task_id = meta[act_id]
                    used, generated = by_act[act_id]["used"], by_act[act_id]["generated"]
                    # only the edges through the versions being followed from
                    if direction == "downstream":
                        used = [u for u in used if u in frontier]
                    else:
                        generated = [g for g in generated if g in frontier]
                    ins: list[int | None] = [*sorted(used)] or [None]
                    outs: list[int | None] = [*sorted(generated)] or [None]
                    for i in ins:
                        for o in outs:
                            edges.append(
                                LineageEdge(
                                    run_id,
                                    task_id,
                                    refs.get(i) if i is not None else None,
                                    refs.get(o) if o is not None else None,
                                    level,
                                )
                            )
                    nxt.update(by_act[act_id][next_role])
                frontier = nxt - seen_versions
                seen_versions |= frontier
        return edges

    @staticmethod
    def _load_refs(conn: Connection, ids: set[int], refs: dict[int, str]) -> None:
        if not ids:
            return
        rows = conn.execute(
            select(_V.c.id, _D.c.name, _V.c.number)
            .select_from(_V.join(_D, _V.c.dataset_id == _D.c.id))
            .where(_V.c.id.in_(ids))
        )
        for r in rows:
            refs[r.id] = f"{r.name}@{r.number}"
