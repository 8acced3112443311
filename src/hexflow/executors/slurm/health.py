"""Is a Slurm cluster able to run work? One ``sinfo`` call, read into a site ``Health``.

The partitions that matter are the site's (``partitions``; none given: the default
partition). A partition that is not up, or whose nodes are all down, drained, failing or
not responding, makes the site down; some such nodes make it degraded. When ``sinfo``
itself fails the check raises ``SlurmCommandError``: whether that means the site is down
is the caller's call (one failed check is often a busy controller).
"""

from __future__ import annotations

from collections.abc import Sequence

from hexflow.executors.slurm.commands import SlurmCommands
from hexflow.executors.slurm.parse import PartitionInfo
from hexflow.model.sites import Health, SiteState

# Node states (sinfo %t) that take new work; a trailing * (not responding) means they do not.
USABLE = frozenset({"idle", "mix", "alloc", "comp", "plnd", "resv", "mixed", "allocated"})


def usable(node_state: str) -> bool:
    state = node_state.rstrip("~#%!")  # powered down / powering up: still usable
    return not state.endswith("*") and not state.endswith("$") and state in USABLE


def health_of(parts: Sequence[PartitionInfo], partitions: Sequence[str] = ()) -> Health:
    """The site's health from ``sinfo`` lines (pure)."""
    if partitions:
        mine = [p for p in parts if p.name in partitions]
        missing = sorted(set(partitions) - {p.name for p in mine})
        if missing:
            return Health(SiteState.DOWN, f"Slurm has no partition {', '.join(missing)}")
    else:
        mine = [p for p in parts if p.default] or list(parts)
    if not mine:
        return Health(SiteState.DOWN, "Slurm lists no partition")
    names = ", ".join(sorted({p.name for p in mine}))
    if not any(p.available for p in mine):
        return Health(SiteState.DOWN, f"partition {names} is not up")
    total = sum(p.nodes for p in mine)
    good = sum(p.nodes for p in mine if p.available and usable(p.node_state))
    bad = sorted({p.node_state for p in mine if not usable(p.node_state)})
    if good == 0:
        return Health(
            SiteState.DOWN, f"no node of partition {names} can run jobs ({', '.join(bad)})"
        )
    if good < total:
        return Health(
            SiteState.DEGRADED,
            f"{total - good} of {total} nodes of partition {names} cannot run jobs "
            f"({', '.join(bad)})",
        )
    return Health(SiteState.UP, f"{good} node(s) of partition {names} up")


def slurm_health(commands: SlurmCommands, partitions: Sequence[str] = ()) -> Health:
    """One ``sinfo`` call; raises ``SlurmCommandError`` when it fails."""
    return health_of(commands.sinfo(), partitions)


__all__ = ["USABLE", "health_of", "slurm_health", "usable"]
