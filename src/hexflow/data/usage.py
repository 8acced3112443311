"""Usage and quotas per tier and project: what each project's namespace in each tier of
this site holds (by listing it), next to its quota and the tier's capacity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hexflow.data.backends import Backend
from hexflow.data.tiers import StorageConfig, TierSpec


def usage(
    storage: StorageConfig,
    backend: Callable[[TierSpec], Backend],
    *,
    project: str | None,
) -> list[dict[str, Any]]:
    """One row per (tier, project); every project found in a tier when ``project`` is None."""
    rows = []
    for tier in storage.local_tiers():
        store = backend(tier)
        per_project: dict[str, list[int]] = {}
        if project is not None:
            used, files = store.usage(project)
            per_project[project] = [used, files]
        else:
            for obj in store.list(""):
                owner = obj.key.split("/", 1)[0]
                cell = per_project.setdefault(owner, [0, 0])
                cell[0] += obj.size
                cell[1] += 1
            for name, quotas in storage.quotas.items():
                if tier.name in quotas:
                    per_project.setdefault(name, [0, 0])
        tier_total = sum(c[0] for c in per_project.values()) if project is None else None
        for name, (used, files) in sorted(per_project.items()):
            quota = storage.quota(name, tier.name)
            rows.append(
                {
                    "tier": tier.name,
                    "site": tier.site,
                    "kind": tier.kind,
                    "project": name,
                    "used": used,
                    "files": files,
                    "quota": quota,
                    "quota_used": (used / quota) if quota else None,
                    "capacity": tier.capacity,
                    "tier_used": tier_total,
                }
            )
        if not per_project:
            rows.append(
                {
                    "tier": tier.name,
                    "site": tier.site,
                    "kind": tier.kind,
                    "project": None,
                    "used": 0,
                    "files": 0,
                    "quota": None,
                    "quota_used": None,
                    "capacity": tier.capacity,
                    "tier_used": 0,
                }
            )
    return rows
