"""Site selection: which site a ready task goes to, among those it may use. Pure.

The policy within a site (``policy.decide``) sees that site as a ``Site`` of its own
cluster; this module decides between sites. A site is eligible for a task when it is not
down and, if it has a planned outage ahead, the task ends before it starts (its time limit,
or the site's ``default_walltime`` for a task without one): a site drains before its
outage. Among eligible sites: up before degraded, then higher priority, then the less
loaded (queued and running cpus over capacity), then the name. Same input, same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hexflow.model.sites import SiteState

_RANK = {SiteState.UP: 0, SiteState.DEGRADED: 1, SiteState.DOWN: 2}


@dataclass(frozen=True, slots=True)
class SiteView:
    """What site selection knows of one site now."""

    name: str
    state: SiteState
    priority: int = 0
    load: float = 0.0  # cpus queued and running there, over its capacity
    outage_start: float | None = None  # the next planned outage that has not ended
    outage_end: float | None = None
    default_walltime: float = 3600.0


def blocked(site: SiteView, walltime: float | None, now: float) -> str | None:
    """Why ``site`` cannot take a task of this ``walltime`` now; None: it can."""
    if site.state is SiteState.DOWN:
        return f"site {site.name} is down"
    start = site.outage_start
    if start is not None and (site.outage_end is None or site.outage_end > now):
        need = walltime if walltime is not None else site.default_walltime
        if now + need > start:
            return (
                f"site {site.name} drains for its planned outage in {max(0.0, start - now):.0f} s"
            )
    return None


def choose_site(
    sites: Sequence[SiteView], walltime: float | None, now: float
) -> tuple[str | None, str]:
    """The site for a task among ``sites`` (those it may use and fits in), and why.

    Returns (name, "") or (None, the reasons no site can take it now)."""
    best: SiteView | None = None
    key: tuple[int, int, float, str] | None = None
    reasons = []
    for site in sites:
        why = blocked(site, walltime, now)
        if why is not None:
            reasons.append(why)
            continue
        k = (_RANK[site.state], -site.priority, site.load, site.name)
        if key is None or k < key:
            best, key = site, k
    if best is not None:
        return best.name, ""
    return None, "; ".join(reasons) or "no site it may use"


__all__ = ["SiteView", "blocked", "choose_site"]
