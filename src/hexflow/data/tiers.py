"""Storage tiers and locations, parsed from the storage settings (pure: no I/O).

A site has named tiers (by default ``qss``, ``pss``, ``offplatform``, ``archive``), each a
POSIX directory or an S3 bucket (``s3://bucket/prefix``), with an optional capacity and
per-project quotas. Inside a tier every project has its own namespace: ``qss:run1/out.h5``
of project ``climate`` is ``<qss root>/climate/run1/out.h5``. A location is ``TIER:PATH``,
``TIER@SITE:PATH`` (another site's tier), or a local path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from hexflow.data.errors import DataInputError, DataNotFound
from hexflow.model.datasets import check_name
from hexflow.model.resources import parse_memory

DEFAULT_TIERS = ("qss", "pss", "offplatform", "archive")
TIER_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_LOCATION_RE = re.compile(r"^(?P<tier>[a-z][a-z0-9_-]{0,31})(?:@(?P<site>[\w.-]+))?:(?P<path>.*)$")
_TIER_KEYS = {
    "path",
    "url",
    "endpoint_url",
    "region",
    "capacity",
    "create_bucket",
    "description",
}


@dataclass(frozen=True, slots=True)
class TierSpec:
    name: str
    site: str
    kind: str  # "posix" | "s3"
    root: str = ""  # posix: absolute directory
    bucket: str = ""  # s3
    prefix: str = ""  # s3: key prefix inside the bucket (no trailing '/')
    endpoint_url: str | None = None
    region: str | None = None
    capacity: int | None = None  # bytes, all projects together
    create_bucket: bool = False
    description: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}@{self.site}"

    def url(self) -> str:
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return self.root

    def summary(self) -> dict[str, Any]:
        return {
            "tier": self.name,
            "site": self.site,
            "kind": self.kind,
            "url": self.url(),
            "endpoint_url": self.endpoint_url,
            "capacity": self.capacity,
        }


@dataclass(frozen=True, slots=True)
class StorageConfig:
    site: str  # the site this process runs at
    tiers: Mapping[tuple[str, str], TierSpec]  # (site, name) -> tier
    quotas: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # project->tier->B
    lifecycle: tuple[Mapping[str, Any], ...] = ()  # raw rules; data.lifecycle parses them

    def tier(self, name: str, site: str | None = None) -> TierSpec:
        where = site or self.site
        try:
            return self.tiers[(where, name)]
        except KeyError:
            known = ", ".join(sorted(t.label for t in self.tiers.values())) or "none"
            raise DataNotFound(
                f"no tier {name!r} at site {where!r}",
                hint=f"known tiers: {known} (configure them in the storage settings file)",
            ) from None

    def local_tiers(self) -> list[TierSpec]:
        return [t for (s, _), t in sorted(self.tiers.items()) if s == self.site]

    def quota(self, project: str, tier: str) -> int | None:
        return self.quotas.get(project, {}).get(tier)


@dataclass(frozen=True, slots=True)
class Location:
    """Where files are: a tier and a path in the project's namespace, or a local path."""

    tier: TierSpec | None  # None: the local filesystem
    path: str  # tier: relative path ('' = the project's root); local: absolute path
    text: str  # as the user wrote it

    @property
    def is_local(self) -> bool:
        return self.tier is None

    def key(self, project: str) -> str:
        """The key inside the backend: ``project/path`` in a tier; the path locally."""
        if self.tier is None:
            return self.path.lstrip("/")
        return f"{project}/{self.path}".rstrip("/") if self.path else project


def parse_location(text: str, config: StorageConfig, cwd: str = "/") -> Location:
    """``TIER:PATH``, ``TIER@SITE:PATH`` or a local path (``./x:y`` forces a local path)."""
    if not text:
        raise DataInputError("empty location", hint="give TIER:PATH or a local path")
    match = _LOCATION_RE.match(text)
    if match and (match["site"] or config.site, match["tier"]) in config.tiers:
        tier = config.tier(match["tier"], match["site"])
        raw = match["path"]
        trailing = raw.endswith("/")
        parts = [p for p in raw.split("/") if p not in ("", ".")]
        if ".." in parts or raw.startswith("/"):
            raise DataInputError(
                f"{text}: the path inside a tier must be relative, without '..'",
                hint=f"write it as {match['tier']}:dir/file",
            )
        path = "/".join(parts) + ("/" if trailing and parts else "")
        return Location(tier, path, text)
    if match and ":" in text and not text.startswith(("/", ".")):
        known = ", ".join(sorted(t.label for t in config.tiers.values()))
        raise DataInputError(
            f"{text}: {match['tier']!r} is not a configured tier",
            hint=f"known tiers: {known}; for a local file whose name has a ':', write ./{text}",
        )
    full = text if text.startswith("/") else f"{cwd.rstrip('/')}/{text}"
    normal = _normalize(PurePosixPath(full))
    return Location(None, normal + ("/" if text.endswith("/") and normal != "/" else ""), text)


def _normalize(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts[1:]:
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


# ------------------------------------------------------------------ settings parsing


def default_storage(home: str, site: str = "local") -> StorageConfig:
    """Every default tier a directory under ``HOME/tiers``: works with nothing configured."""
    tiers = {
        (site, name): TierSpec(name=name, site=site, kind="posix", root=f"{home}/tiers/{name}")
        for name in DEFAULT_TIERS
    }
    return StorageConfig(site=site, tiers=tiers)


def parse_storage(doc: Mapping[str, Any], *, home: str, source: str = "storage") -> StorageConfig:
    """The storage settings document (YAML/JSON already loaded) → ``StorageConfig``.

    Missing default tiers of the local site are directories under ``HOME/tiers``.
    """
    if not isinstance(doc, Mapping):
        raise DataInputError(f"{source}: expected a mapping at the top", field="storage")
    unknown = set(doc) - {"site", "tiers", "sites", "quotas", "lifecycle"}
    if unknown:
        raise DataInputError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}",
            hint="top-level keys are site, tiers, sites, quotas, lifecycle",
        )
    site = str(doc.get("site") or "local")
    check_name(site, "site name")
    tiers: dict[tuple[str, str], TierSpec] = {}
    for name in DEFAULT_TIERS:
        tiers[(site, name)] = TierSpec(
            name=name, site=site, kind="posix", root=f"{home}/tiers/{name}"
        )
    for name, spec in _mapping(doc.get("tiers"), f"{source}: tiers").items():
        tiers[(site, name)] = _parse_tier(name, site, spec, f"{source}: tiers.{name}", home)
    for other, body in _mapping(doc.get("sites"), f"{source}: sites").items():
        check_name(other, "site name")
        body = _mapping(body, f"{source}: sites.{other}")
        for name, spec in _mapping(body.get("tiers"), f"{source}: sites.{other}.tiers").items():
            where = f"{source}: sites.{other}.tiers.{name}"
            tiers[(other, name)] = _parse_tier(name, other, spec, where, home)
    quotas: dict[str, dict[str, int]] = {}
    for project, per_tier in _mapping(doc.get("quotas"), f"{source}: quotas").items():
        check_name(project, "project name")
        quotas[project] = {}
        for tier, size in _mapping(per_tier, f"{source}: quotas.{project}").items():
            if (site, tier) not in tiers:
                raise DataInputError(
                    f"{source}: quotas.{project}.{tier}: no such tier at site {site!r}",
                    hint="quotas name tiers of this site",
                )
            quotas[project][tier] = _size(size, f"{source}: quotas.{project}.{tier}")
    rules = doc.get("lifecycle") or []
    if not isinstance(rules, list) or not all(isinstance(r, Mapping) for r in rules):
        raise DataInputError(f"{source}: lifecycle must be a list of rules (mappings)")
    return StorageConfig(site=site, tiers=tiers, quotas=quotas, lifecycle=tuple(rules))


def _parse_tier(name: str, site: str, spec: Any, where: str, home: str) -> TierSpec:
    if not TIER_NAME_RE.match(name):
        raise DataInputError(
            f"{where}: tier name {name!r} is not valid",
            hint="lower-case letters, digits, '_' or '-', starting with a letter",
        )
    if isinstance(spec, str):
        spec = {"url": spec} if spec.startswith("s3://") else {"path": spec}
    spec = _mapping(spec, where)
    unknown = set(spec) - _TIER_KEYS
    if unknown:
        raise DataInputError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
            hint=f"a tier takes {', '.join(sorted(_TIER_KEYS))}",
        )
    capacity = _size(spec["capacity"], f"{where}.capacity") if spec.get("capacity") else None
    common: dict[str, Any] = {
        "name": name,
        "site": site,
        "capacity": capacity,
        "description": str(spec.get("description") or ""),
    }
    if ("path" in spec) == ("url" in spec):
        raise DataInputError(
            f"{where}: give exactly one of 'path' (a directory) or 'url' (s3://bucket/prefix)"
        )
    if "path" in spec:
        root = str(spec["path"])
        if not root.startswith("/"):
            root = f"{home}/{root}"
        return TierSpec(kind="posix", root=_normalize(PurePosixPath(root)), **common)
    url = str(spec["url"])
    if not url.startswith("s3://") or len(url) <= 5:
        raise DataInputError(f"{where}.url: expected s3://BUCKET[/PREFIX], got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    return TierSpec(
        kind="s3",
        bucket=bucket,
        prefix=prefix.strip("/"),
        endpoint_url=spec.get("endpoint_url"),
        region=spec.get("region"),
        create_bucket=bool(spec.get("create_bucket", False)),
        **common,
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DataInputError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _size(value: Any, where: str) -> int:
    try:
        size = parse_memory(value, where)
    except DataInputError:
        raise
    except Exception as exc:  # SpecError from parse_memory: say it as bad data input
        raise DataInputError(str(exc), hint="sizes look like 500G, 2T or 1048576") from None
    if size <= 0:
        raise DataInputError(f"{where}: must be a positive size, got {value!r}")
    return size
