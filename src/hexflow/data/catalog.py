"""Catalog: datasets with immutable, content-addressed versions, their replicas in tiers,
provenance and search — the data layer's face over ``store.catalog_sql``.

``add`` hashes a directory (or file) into a manifest; the version is the manifest's digest,
so adding identical content again returns the existing version. Files added from a local
path are copied (verified against the manifest) into ``TIER:datasets/NAME/<digest>/``;
files already in a tier are registered where they are. References are ``NAME`` (latest),
``NAME@N``, ``NAME@<digest prefix>`` or a version's PID.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hexflow.data.backends import Backend
from hexflow.data.checksum import ALGO, digest_of, new_hasher
from hexflow.data.errors import DataError, DataInputError, DataNotFound
from hexflow.data.manifest import (
    PID_PREFIX,
    manifest_digest,
    search_text,
    version_pid,
)
from hexflow.data.tiers import Location, TierSpec
from hexflow.data.transfers import Progress, TransferManager
from hexflow.errors import SpecError, StoreError
from hexflow.model.datasets import (
    FileEntry,
    LineageEdge,
    Replica,
    VersionRecord,
    check_metadata,
    check_name,
    check_relpath,
)
from hexflow.store.data_db import DataDb

DATASETS_DIR = "datasets"


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``NAME[@SELECTOR]`` → (name, selector or None)."""
    name, _, selector = ref.partition("@")
    try:
        check_name(name)
    except SpecError as exc:
        raise DataInputError(
            f"{ref!r} is not a dataset reference: {exc.message}",
            hint="write NAME, NAME@VERSION (a number or digest prefix) or a PID",
        ) from None
    if "@" in ref and not selector:
        raise DataInputError(f"{ref!r}: nothing after '@'", hint="write NAME@3 or NAME@latest")
    return name, selector or None


def hash_files(backend: Backend, base: str) -> list[FileEntry]:
    """Read every file under ``base`` (or the file ``base``) and hash it."""
    info = backend.stat(base)
    if info is not None:
        listing = [(info, base.rsplit("/", 1)[-1])]
    elif backend.is_dir(base):
        listing = [
            (obj, obj.key[len(base) + 1 :] if base else obj.key) for obj in backend.list(base)
        ]
    else:
        raise DataNotFound(f"{backend.label}: {base}: no such file or directory")
    entries = []
    for obj, rel in listing:
        hasher = new_hasher(ALGO, size_hint=obj.size)
        size = 0
        for chunk in backend.read(obj.key):
            hasher.update(chunk)
            size += len(chunk)
        entries.append(FileEntry(check_relpath(rel), size, digest_of(hasher, ALGO)))
    return entries


class Catalog:
    def __init__(
        self,
        db: DataDb,
        transfers: TransferManager,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.transfers = transfers
        self.storage = transfers.storage
        self.project = transfers.project
        self.clock = clock

    # ------------------------------------------------------------------ adding

    def add(
        self,
        name: str,
        source: str,
        *,
        tier: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        cwd: str | None = None,
        produced_by: tuple[str, str] | None = None,
        inputs: Sequence[str] = (),
        progress: Callable[[Progress], None] | None = None,
    ) -> tuple[VersionRecord, bool]:
        """Register the files at ``source`` as a version of dataset ``name``.

        Returns ``(version, created)``; ``created`` is False when the dataset already had
        this exact content. A local source is copied into ``tier`` (default ``pss``); a tier
        source stays where it is unless another ``tier`` is given.
        """
        check_name(name)
        meta = self._metadata(name, metadata)
        loc = self.transfers.locate(source, cwd)
        backend = self.transfers.backend(loc.tier)
        key = loc.key(self.project).rstrip("/")
        entries = hash_files(backend, key)
        if not entries:
            raise DataInputError(
                f"{source}: no files to register", hint="give a non-empty directory"
            )
        digest = manifest_digest(entries)
        existing = self._existing(name, digest)
        target_tier = self._target_tier(loc, tier)
        if target_tier is None:  # registered in place
            assert loc.tier is not None
            where = (loc.tier, loc.path.rstrip("/"))
            single = backend.stat(key) is not None
            if single:  # a single file: its directory is the version's location
                where = (loc.tier, loc.path.rstrip("/").rpartition("/")[0])
        else:
            location = f"{DATASETS_DIR}/{name}/{digest.split(':')[1][:16]}"
            where = (target_tier, location)
            if existing is None or not self._has_replica(existing, target_tier):
                expected = {e.path: e.hash for e in entries}
                dest = f"{target_tier.name}@{target_tier.site}:{location}/"
                src_text = source if loc.tier is not None else loc.path
                self.transfers.copy(src_text, dest, cwd=cwd, expected=expected, progress=progress)
        version, created = self.register(name, entries, meta, digest=digest)
        self.db.catalog.add_replica(version, where[0].site, where[0].name, where[1], self.clock())
        if produced_by is not None or inputs:
            run_id, task_id = produced_by or ("manual", f"add-{name}")
            self.record_provenance(run_id, task_id, used=inputs, generated=[version.ref])
        return version, created

    def register(
        self,
        name: str,
        entries: Sequence[FileEntry],
        metadata: Mapping[str, Any] | None = None,
        *,
        digest: str | None = None,
    ) -> tuple[VersionRecord, bool]:
        """Record a version from a manifest computed elsewhere (no file is read)."""
        check_name(name)
        meta = self._metadata(name, metadata)
        digest = digest or manifest_digest(entries)
        try:
            return self.db.catalog.add_version(
                project=self.project,
                name=name,
                entries=list(entries),
                digest=digest,
                pid=version_pid(self.project, name, digest),
                metadata=meta,
                search_text=search_text(name, meta, entries),
                now=self.clock(),
            )
        except StoreError as exc:
            raise DataError(f"cannot register {name}: {exc.message}") from exc

    def _metadata(self, name: str, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        try:
            meta = check_metadata(metadata or {})
        except SpecError as exc:
            raise DataInputError(
                exc.message, hint=exc.hint or "see docs/data.md", field=exc.fields.get("field")
            ) from None
        meta.setdefault("title", name)
        meta.setdefault(
            "dateCreated", dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime("%Y-%m-%d")
        )
        return meta

    def _existing(self, name: str, digest: str) -> VersionRecord | None:
        return self.db.catalog.get_version(self.project, name, digest)

    def _has_replica(self, v: VersionRecord, tier: TierSpec) -> bool:
        return any(r.tier == tier.name and r.site == tier.site for r in self.replicas(v))

    def _target_tier(self, loc: Location, tier: str | None) -> TierSpec | None:
        if tier is not None:
            chosen = self.storage.tier(*_split_tier(tier))
            if loc.tier is not None and chosen == loc.tier:
                return None
            return chosen
        if loc.tier is None:
            return self.storage.tier("pss")
        return None

    # ------------------------------------------------------------------ reading

    def resolve(self, ref: str) -> VersionRecord:
        if ref.startswith(PID_PREFIX):
            found = self.db.catalog.get_by_pid(ref)
            if found is None:
                raise DataNotFound(f"no version with identifier {ref}")
            return found
        name, selector = parse_ref(ref)
        try:
            found = self.db.catalog.get_version(self.project, name, selector)
        except StoreError as exc:
            raise DataInputError(exc.message, hint="give more characters of the digest") from None
        if found is None:
            what = f"dataset {name!r}" if selector is None else f"version {ref!r}"
            raise DataNotFound(
                f"no {what} in project {self.project}",
                hint="list datasets with `hexflow data ls`, versions with `hexflow data show NAME`",
            )
        return found

    def files(self, version: VersionRecord) -> list[FileEntry]:
        return self.db.catalog.files(version)

    def replicas(self, version: VersionRecord | None = None) -> list[Replica]:
        return [r for _, r in self.db.catalog.replicas(self.project, version)]

    def datasets(self) -> list[dict[str, Any]]:
        return self.db.catalog.list_datasets(self.project)

    def versions(self, name: str) -> list[VersionRecord]:
        check_name(name)
        found = self.db.catalog.list_versions(self.project, name)
        if not found:
            raise DataNotFound(f"no dataset {name!r} in project {self.project}")
        return found

    def search(
        self,
        text: str | None = None,
        *,
        name: str | None = None,
        meta: Mapping[str, str] | None = None,
        limit: int = 50,
        all_projects: bool = False,
        order: str = "newest",
    ) -> list[VersionRecord]:
        """Versions matching every filter, newest first; ``order="relevance"`` puts the
        best full-text matches first (it ranks every match: slower on a large catalog)."""
        if limit < 1:
            raise DataInputError("--limit must be at least 1", field="limit")
        if order not in ("newest", "relevance"):
            raise DataInputError(f"order must be newest or relevance, not {order!r}", field="order")
        if order == "relevance" and not (text and text.strip()):
            raise DataInputError("ordering by relevance needs words to search for", field="order")
        try:
            return self.db.catalog.search(
                project=None if all_projects else self.project,
                words=text,
                name=name,
                meta=dict(meta or {}),
                limit=limit,
                order=order,
            )
        except StoreError as exc:
            raise DataInputError(exc.message, hint="metadata filters look like key=value") from None

    def touch(self, version: VersionRecord, replica: Replica) -> None:
        self.db.catalog.touch_read(version, replica.site, replica.tier, self.clock())

    # ------------------------------------------------------------------ provenance

    def record_provenance(
        self,
        run_id: str,
        task_id: str,
        *,
        used: Sequence[str] = (),
        generated: Sequence[str] = (),
    ) -> None:
        """Task ``run_id/task_id`` read the versions ``used`` and produced ``generated``."""
        ins = [self.resolve(r) for r in used]
        outs = [self.resolve(r) for r in generated]
        self.db.catalog.record_activity(run_id, task_id, ins, outs, self.clock())

    def lineage(self, ref: str, direction: str = "upstream", depth: int = 10) -> list[LineageEdge]:
        if direction not in ("upstream", "downstream"):
            raise DataInputError(f"direction must be upstream or downstream, not {direction!r}")
        if depth < 1:
            raise DataInputError("--depth must be at least 1")
        return self.db.catalog.lineage(self.resolve(ref), direction, depth)

    # ------------------------------------------------------------------ integrity

    def verify(self, version: VersionRecord, replica: Replica) -> list[str]:
        """Re-read a replica and compare it with the manifest: the problems found."""
        tier = self.storage.tier(replica.tier, replica.site)
        backend = self.transfers.backend(tier)
        base = f"{version.project}/{replica.location}".rstrip("/")
        problems = []
        for entry in self.files(version):
            key = f"{base}/{entry.path}"
            hasher = new_hasher(ALGO, size_hint=entry.size)
            size = 0
            try:
                for chunk in backend.read(key):
                    hasher.update(chunk)
                    size += len(chunk)
            except DataError as exc:
                problems.append(f"{entry.path}: {exc.message}")
                continue
            if size != entry.size:
                problems.append(f"{entry.path}: {size} bytes, manifest says {entry.size}")
            elif digest_of(hasher, ALGO) != entry.hash:
                problems.append(f"{entry.path}: content differs from the manifest")
        return problems


def _split_tier(text: str) -> tuple[str, str | None]:
    name, _, site = text.partition("@")
    return name, site or None
