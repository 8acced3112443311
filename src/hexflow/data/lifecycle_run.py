"""Applying lifecycle rules: gather what the rules need (replicas, producing runs, which of
them finished), evaluate them (``lifecycle.evaluate``), and carry out the actions.

A move copies the replica with a transfer checked against the version's manifest, records
the new replica, and only then deletes the source files and forgets that replica. Every
action, done or failed, is written to the audit log (actor ``lifecycle``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from hexflow.data.catalog import Catalog
from hexflow.data.errors import DataError
from hexflow.data.lifecycle import Action, ReplicaView, Rule, evaluate, parse_rules
from hexflow.model.datasets import Replica, VersionRecord

FinishedRuns = Callable[[Iterable[str]], frozenset[str]]


def finished_runs(db_url: str) -> FinishedRuns:
    """Which of the given run ids have ended, read from the service's run database."""

    def finished(run_ids: Iterable[str]) -> frozenset[str]:
        from hexflow.errors import StoreError
        from hexflow.store import open_store

        ids = set(run_ids)
        if not ids:
            return frozenset()
        store = open_store(db_url)
        try:
            done = set()
            for run_id in ids:
                try:
                    if store.get_run(run_id).state.terminal:
                        done.add(run_id)
                except StoreError:
                    continue  # not a run of this database (a version recorded by hand)
            return frozenset(done)
        finally:
            store.close()

    return finished


class LifecycleRunner:
    def __init__(
        self,
        catalog: Catalog,
        *,
        finished_runs: FinishedRuns,
        rules: tuple[Rule, ...] | None = None,
    ) -> None:
        self.catalog = catalog
        storage = catalog.storage
        tiers = [t.name for t in storage.local_tiers()]
        self.rules = rules if rules is not None else parse_rules(storage.lifecycle, tiers)
        self.finished_runs = finished_runs
        self.site = storage.site

    def plan(self, now: float) -> list[Action]:
        """What the rules would do now (``--dry-run`` shows exactly this)."""
        views, _ = self._views()
        producers = {run for v in views for run in v.producers}
        return evaluate(self.rules, views, finished_runs=self.finished_runs(producers), now=now)

    def _views(
        self,
    ) -> tuple[list[ReplicaView], dict[tuple[str, str], tuple[VersionRecord, Replica]]]:
        rows = [
            (v, r)
            for v, r in self.catalog.db.catalog.replicas(self.catalog.project)
            if r.site == self.site
        ]
        tiers: dict[str, set[str]] = {}
        for _, r in rows:
            tiers.setdefault(r.ref, set()).add(r.tier)
        producers: dict[str, tuple[str, ...]] = {}
        views, index = [], {}
        for v, r in rows:
            if v.ref not in producers:
                runs = {run for run, _ in self.catalog.db.catalog.producers(v)}
                producers[v.ref] = tuple(sorted(runs))
            views.append(
                ReplicaView(
                    project=v.project,
                    name=v.name,
                    number=v.number,
                    tier=r.tier,
                    created_at=r.created_at,
                    last_read_at=r.last_read_at,
                    producers=producers[v.ref],
                    tiers=frozenset(tiers[v.ref]),
                )
            )
            index[(v.ref, r.tier)] = (v, r)
        return views, index

    def apply(self, actions: list[Action]) -> list[dict[str, Any]]:
        _, index = self._views()
        results = []
        for action in actions:
            outcome, detail = "skipped", action.reason
            if action.kind in ("move", "delete"):
                found = index.get((action.ref, action.src))
                if found is None:
                    outcome, detail = "skipped", "the replica is gone already"
                else:
                    try:
                        self._do(action, *found)
                        outcome = "done"
                    except DataError as exc:
                        outcome, detail = "failed", exc.message
            self._audit(action, outcome, detail)
            results.append({**action.summary(), "outcome": outcome, "detail": detail})
        return results

    def _do(self, action: Action, version: VersionRecord, replica: Replica) -> None:
        cat = self.catalog
        if action.kind == "move":
            assert action.dst is not None
            expected = {e.path: e.hash for e in cat.files(version)}
            src = f"{replica.tier}@{replica.site}:{replica.location}/"
            dst = f"{action.dst}@{replica.site}:{replica.location}/"
            cat.transfers.copy(src, dst, expected=expected)
            cat.db.catalog.add_replica(
                version, replica.site, action.dst, replica.location, cat.clock()
            )
        others = [
            r for r in cat.replicas(version) if (r.tier, r.site) != (replica.tier, replica.site)
        ]
        if not others:
            raise DataError(f"{action.ref}: not deleting the only replica (on {replica.tier})")
        cat.db.catalog.remove_replica(version, replica.site, replica.tier)
        backend = cat.transfers.backend(cat.storage.tier(replica.tier, replica.site))
        base = f"{version.project}/{replica.location}".rstrip("/")
        for entry in cat.files(version):
            backend.delete(f"{base}/{entry.path}")

    def _audit(self, action: Action, outcome: str, detail: str) -> None:
        self.catalog.db.catalog.audit(
            actor="lifecycle",
            project=action.project,
            action=f"data.{action.kind}",
            target=f"{action.ref} {action.src}" + (f"→{action.dst}" if action.dst else ""),
            outcome=outcome,
            detail=json.dumps({"rule": action.rule, "reason": detail}),
            now=self.catalog.clock(),
        )
