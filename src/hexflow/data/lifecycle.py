"""Lifecycle rules and their evaluation (pure: the time, the replicas and the finished runs
come in as arguments; the actions come out).

Rules, in the ``lifecycle:`` list of the storage settings, applied in order (the first rule
that acts on a replica wins)::

    - {rule: run_finished, from: qss, to: pss}        # outputs of finished runs move
    - {rule: unread, days: 30, from: pss, to: archive} # not read for 30 days: move
    - {rule: keep_last, versions: 5, tier: qss}       # older versions leave qss

A move is a verified copy then a delete of the source replica; a delete never removes the
last replica of a version (the action is skipped, with the reason).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hexflow.data.errors import DataInputError

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class RunFinished:
    src: str
    dst: str

    def describe(self) -> str:
        return f"run_finished: {self.src} → {self.dst}"


@dataclass(frozen=True, slots=True)
class Unread:
    days: float
    src: str
    dst: str | None  # None: delete (only where another replica exists)

    def describe(self) -> str:
        where = f"→ {self.dst}" if self.dst else "delete"
        return f"unread {self.days:g} days: {self.src} {where}"


@dataclass(frozen=True, slots=True)
class KeepLast:
    versions: int
    tier: str

    def describe(self) -> str:
        return f"keep_last {self.versions} on {self.tier}"


Rule = RunFinished | Unread | KeepLast


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """What the rules see of one replica."""

    project: str
    name: str
    number: int
    tier: str
    created_at: float
    last_read_at: float | None
    producers: tuple[str, ...]  # run ids of the activities that generated the version
    tiers: frozenset[str]  # every tier holding this version

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # "move" | "delete" | "skip"
    project: str
    ref: str
    src: str
    dst: str | None
    rule: str
    reason: str

    def summary(self) -> dict[str, Any]:
        return {
            "action": self.kind,
            "project": self.project,
            "ref": self.ref,
            "from": self.src,
            "to": self.dst,
            "rule": self.rule,
            "reason": self.reason,
        }


def parse_rules(raw: Iterable[Mapping[str, Any]], tiers: Iterable[str]) -> tuple[Rule, ...]:
    known = set(tiers)
    rules: list[Rule] = []
    for i, doc in enumerate(raw):
        where = f"lifecycle rule {i + 1}"
        kind = doc.get("rule")

        def tier(
            key: str, required: bool = True, *, _doc: Mapping[str, Any] = doc, where: str = where
        ) -> Any:
            value = _doc.get(key)
            if value is None and not required:
                return None
            if value not in known:
                raise DataInputError(
                    f"{where}: {key}: {value!r} is not a tier",
                    hint=f"tiers: {', '.join(sorted(known))}",
                )
            return value

        if kind == "run_finished":
            _only(doc, {"rule", "from", "to"}, where)
            rules.append(RunFinished(tier("from"), tier("to")))
        elif kind == "unread":
            _only(doc, {"rule", "days", "from", "to"}, where)
            days = doc.get("days")
            if not isinstance(days, int | float) or isinstance(days, bool) or days < 0:
                raise DataInputError(f"{where}: days must be a number ≥ 0, got {days!r}")
            rules.append(Unread(float(days), tier("from"), tier("to", required=False)))
        elif kind == "keep_last":
            _only(doc, {"rule", "versions", "tier"}, where)
            keep = doc.get("versions")
            if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
                raise DataInputError(f"{where}: versions must be an integer ≥ 1, got {keep!r}")
            rules.append(KeepLast(keep, tier("tier")))
        else:
            raise DataInputError(
                f"{where}: unknown rule {kind!r}",
                hint="rule: run_finished, unread or keep_last",
            )
    return tuple(rules)


def _only(doc: Mapping[str, Any], keys: set[str], where: str) -> None:
    extra = set(doc) - keys
    if extra:
        raise DataInputError(
            f"{where}: unknown key(s) {', '.join(sorted(extra))}",
            hint=f"this rule takes {', '.join(sorted(keys))}",
        )


def evaluate(
    rules: Sequence[Rule],
    replicas: Sequence[ReplicaView],
    *,
    finished_runs: frozenset[str],
    now: float,
) -> list[Action]:
    """The actions the rules ask for now, in rule order; one action per replica at most."""
    claimed: set[tuple[str, str, int, str]] = set()
    holders: dict[tuple[str, str, int], set[str]] = {}
    for r in replicas:
        holders.setdefault((r.project, r.name, r.number), set()).update(r.tiers | {r.tier})
    actions: list[Action] = []

    def act(r: ReplicaView, kind: str, dst: str | None, rule: Rule, reason: str) -> None:
        key = (r.project, r.name, r.number, r.tier)
        if key in claimed:
            return
        claimed.add(key)
        here = holders[(r.project, r.name, r.number)]
        if kind == "move" and dst in here:
            kind, reason = "delete", f"{reason}; already on {dst}"
        if kind == "delete" and not (here - {r.tier}):
            kind, reason = "skip", f"{reason}; not deleted: the only replica"
        if kind == "delete":
            here.discard(r.tier)
        elif kind == "move" and dst is not None:
            here.discard(r.tier)
            here.add(dst)
        actions.append(Action(kind, r.project, r.ref, r.tier, dst, rule.describe(), reason))

    for rule in rules:
        if isinstance(rule, RunFinished):
            for r in replicas:
                done = [run for run in r.producers if run in finished_runs]
                if r.tier == rule.src and done:
                    act(r, "move", rule.dst, rule, f"produced by finished run {done[0]}")
        elif isinstance(rule, Unread):
            for r in replicas:
                seen = r.last_read_at if r.last_read_at is not None else r.created_at
                idle = (now - seen) / DAY
                if r.tier == rule.src and idle >= rule.days:
                    kind = "move" if rule.dst else "delete"
                    act(r, kind, rule.dst, rule, f"not read for {idle:.1f} days")
        else:
            by_dataset: dict[tuple[str, str], list[ReplicaView]] = {}
            for r in replicas:
                if r.tier == rule.tier:
                    by_dataset.setdefault((r.project, r.name), []).append(r)
            for group in by_dataset.values():
                group.sort(key=lambda r: r.number, reverse=True)
                for r in group[rule.versions :]:
                    act(r, "delete", None, rule, f"older than the last {rule.versions} versions")
    return actions
