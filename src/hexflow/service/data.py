"""DataService: what the data API does — storage usage and quotas, transfers between tiers
(run in the background, resumable), the dataset catalog (datasets, versions, lineage,
search, registration from a tier) and RO-Crate export — always inside the projects the
caller's credential reaches.

Invariants: a request names only tier locations (``TIER:PATH`` in its project's
namespace, never a path of the server's own filesystem); what belongs to a project the
caller cannot reach is reported as not found; every request that changes something (a
transfer started or resumed, a version registered) or takes data out (an export) is
audited, allowed or not.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexflow.data import DataServices
from hexflow.data.catalog import Catalog, parse_ref
from hexflow.data.errors import DataError, DataInputError, DataNotFound
from hexflow.data.tiers import StorageConfig, parse_location
from hexflow.data.transfers import TransferManager
from hexflow.data.usage import usage
from hexflow.errors import Conflict, SpecError, StoreError
from hexflow.model.access import Scope
from hexflow.model.datasets import FileEntry, LineageEdge, Replica, VersionRecord, check_name
from hexflow.model.transfers import TransferItem, TransferRecord, TransferState
from hexflow.service.audit import Audit, AuditNote
from hexflow.service.auth import Principal
from hexflow.store.data_db import DataDb

log = logging.getLogger("hexflow.service.data")


@dataclass(frozen=True)
class VersionView:
    version: VersionRecord
    files: list[FileEntry]
    replicas: list[Replica]


class DataService:
    def __init__(
        self,
        db_url: str,
        storage: StorageConfig,
        audit: Audit,
        *,
        clock: Callable[[], float] = time.time,
        max_transfers: int = 2,
        workers: int = 8,
    ) -> None:
        self.storage = storage
        self._db = DataDb(db_url)
        self._audit = audit
        self._now = clock
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_transfers, thread_name_prefix="hexflow-transfer")
        self._projects: dict[str, DataServices] = {}
        self._active: set[str] = set()  # transfers submitted to the pool, not yet ended
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop taking transfers; one still copying stays resumable (its checkpoints)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._db.close()

    def apply_lifecycle(
        self, finished_runs: Callable[[Any], frozenset[str]]
    ) -> list[dict[str, Any]]:
        """One pass of the lifecycle rules over every project with replicas on this site
        (``service.lifecycle`` schedules it); each action is audited by the runner."""
        if not self.storage.lifecycle:
            return []
        from hexflow.data.lifecycle_run import LifecycleRunner

        site = self.storage.site
        projects = sorted({v.project for v, r in self._db.catalog.replicas() if r.site == site})
        results: list[dict[str, Any]] = []
        for project in projects:
            runner = LifecycleRunner(self._data(project).catalog, finished_runs=finished_runs)
            results += runner.apply(runner.plan(self._now()))
        return results

    def _data(self, project: str) -> DataServices:
        with self._lock:
            found = self._projects.get(project)
            if found is None:
                transfers = TransferManager(
                    self._db, self.storage, project=project, workers=self._workers, clock=self._now
                )
                found = DataServices(self._db, transfers, Catalog(self._db, transfers))
                self._projects[project] = found
            return found

    @staticmethod
    def _project(who: Principal, project: str | None, needed: Scope) -> str:
        project = project or who.default_project(needed)
        who.check_project(project, needed)
        return project

    @contextmanager
    def _audited(
        self, who: Principal, action: str, project: str | None, target: str, source: str | None
    ) -> Iterator[AuditNote]:
        with self._audit.action(
            who.name, action, project=project, target=target, source=source
        ) as note:
            yield note

    def _location(self, text: str, field: str) -> str:
        """``text`` if it names a tier location; local paths of the server are refused."""
        if not text.strip():
            raise DataInputError(f"{field}: empty location", hint="give TIER:PATH", field=field)
        try:
            loc = parse_location(text, self.storage, "/")
        except DataError as exc:
            raise DataInputError(f"{field}: {exc.message}", hint=exc.hint, field=field) from None
        if loc.tier is None:
            raise DataInputError(
                f"{field}: {text!r} is not a tier location",
                hint="write TIER:PATH inside your project's namespace, e.g. qss:run1/ "
                f"(tiers: {', '.join(sorted(t.label for t in self.storage.tiers.values()))})",
                field=field,
            )
        return text

    def _tier(self, text: str) -> None:
        name, _, site = text.partition("@")
        try:
            self.storage.tier(name, site or None)
        except DataError as exc:
            raise DataInputError(f"tier: {exc.message}", hint=exc.hint, field="tier") from None

    # ------------------------------------------------------------------ storage
    def usage(self, who: Principal, project: str | None) -> tuple[str, list[dict[str, Any]]]:
        """Bytes and files of the project in each tier of this site, quotas, capacities."""
        project = self._project(who, project, Scope.READ)
        data = self._data(project)
        return project, usage(self.storage, data.transfers.backend, project=project)

    # ------------------------------------------------------------------ transfers
    def start_transfer(
        self,
        who: Principal,
        project: str | None,
        source: str,
        destination: str,
        *,
        address: str | None,
    ) -> TransferRecord:
        """Plan the transfer (files listed, quota checked, persisted), then copy in the
        background; the record is returned as planned."""
        target = f"{source} -> {destination}"
        with self._audited(who, "data.transfer", project, target, address) as note:
            project = self._project(who, project, Scope.SUBMIT)
            note.project = project
            self._location(source, "source")
            self._location(destination, "destination")
            data = self._data(project)
            rec = data.transfers.plan(source, destination)
            note.target = f"{rec.id}: {target}"
            self._start(project, rec.id)
            return rec

    def start_checked(self, project: str, source: str, destination: str) -> TransferRecord:
        """Plan and start a transfer whose ends the caller has authorized and confined
        itself (the SFAPI facade: local paths inside the project's directories); not
        audited here, the caller audits it."""
        rec = self._data(project).transfers.plan(source, destination)
        self._start(project, rec.id)
        return rec

    def _start(self, project: str, transfer_id: str) -> None:
        with self._lock:
            if transfer_id in self._active:
                raise Conflict(
                    f"transfer {transfer_id} is running",
                    hint="wait for it to end (GET it), then resume it if it failed",
                    transfer=transfer_id,
                )
            self._active.add(transfer_id)
        self._pool.submit(self._run, project, transfer_id)

    def _run(self, project: str, transfer_id: str) -> None:
        try:
            self._data(project).transfers.run(transfer_id)
        except DataError as exc:  # recorded on the transfer: its state, error and items
            log.info("transfer %s ended: %s", transfer_id, exc.message)
        except Exception:  # noqa: BLE001 - a bug; the transfer stays resumable
            log.exception("transfer %s stopped", transfer_id)
        finally:
            with self._lock:
                self._active.discard(transfer_id)

    def running(self) -> int:
        """Transfers this server is copying or about to copy now."""
        with self._lock:
            return len(self._active)

    def transfers(self, who: Principal, project: str | None, limit: int) -> list[TransferRecord]:
        project = self._project(who, project, Scope.READ)
        return self._db.transfers.recent(project, limit)

    def transfer(
        self, who: Principal, transfer_id: str
    ) -> tuple[TransferRecord, list[TransferItem]]:
        rec = self._visible_transfer(who, transfer_id, Scope.READ)
        return rec, self._db.transfers.items(rec.id)

    def _visible_transfer(self, who: Principal, transfer_id: str, needed: Scope) -> TransferRecord:
        who.require_scope(needed)
        missing = DataNotFound(
            f"no transfer {transfer_id!r} in your projects",
            hint="list your transfers with GET /api/v1/transfers",
        )
        try:
            rec = self._db.transfers.get(transfer_id)
        except StoreError:
            raise missing from None
        if rec.id != transfer_id or rec.project not in who.roles:
            raise missing  # another project's: as if it did not exist (no prefix matching)
        who.check_project(rec.project, needed)
        return rec

    def resume(self, who: Principal, transfer_id: str, *, address: str | None) -> TransferRecord:
        """Go on with a failed or interrupted transfer, in the background."""
        with self._audited(who, "data.transfer.resume", None, transfer_id, address) as note:
            rec = self._visible_transfer(who, transfer_id, Scope.SUBMIT)
            note.project = rec.project
            if rec.state is TransferState.SUCCEEDED:
                note.detail = "already succeeded"
                return rec
            self._start(rec.project, rec.id)  # another live process holding it: it fails
            return rec

    # ------------------------------------------------------------------ catalog
    def datasets(self, who: Principal, project: str | None) -> tuple[str, list[dict[str, Any]]]:
        project = self._project(who, project, Scope.READ)
        return project, self._data(project).catalog.datasets()

    def versions(
        self, who: Principal, project: str | None, name: str
    ) -> tuple[str, list[VersionRecord]]:
        project = self._project(who, project, Scope.READ)
        _check_name(name)
        return project, self._data(project).catalog.versions(name)

    def version(self, who: Principal, project: str | None, name: str, selector: str) -> VersionView:
        project = self._project(who, project, Scope.READ)
        catalog = self._data(project).catalog
        version = catalog.resolve(_ref(name, selector))
        return VersionView(version, catalog.files(version), catalog.replicas(version))

    def lineage(
        self,
        who: Principal,
        project: str | None,
        name: str,
        selector: str,
        *,
        downstream: bool,
        depth: int,
    ) -> tuple[VersionRecord, list[LineageEdge]]:
        project = self._project(who, project, Scope.READ)
        catalog = self._data(project).catalog
        version = catalog.resolve(_ref(name, selector))
        direction = "downstream" if downstream else "upstream"
        return version, catalog.lineage(version.ref, direction, depth)

    def search(
        self,
        who: Principal,
        project: str | None,
        *,
        text: str | None,
        name: str | None,
        meta: Sequence[str],
        limit: int,
        order: str,
    ) -> tuple[str, list[VersionRecord]]:
        project = self._project(who, project, Scope.READ)
        filters = _meta_filters(meta)
        if not ((text and text.strip()) or name or filters):
            raise DataInputError(
                "nothing to search for", hint="give q=words, name= or meta=KEY=VALUE", field="q"
            )
        catalog = self._data(project).catalog
        return project, catalog.search(text, name=name, meta=filters, limit=limit, order=order)

    def register(
        self,
        who: Principal,
        project: str | None,
        *,
        name: str,
        source: str,
        tier: str | None,
        metadata: Mapping[str, Any],
        inputs: Sequence[str],
        address: str | None,
    ) -> tuple[VersionRecord, bool]:
        """Register the files at a tier location as a version of ``name`` (in place, or
        copied verified into ``tier``); identical content is the existing version."""
        with self._audited(who, "data.register", project, f"{name} <- {source}", address) as note:
            project = self._project(who, project, Scope.SUBMIT)
            note.project = project
            _check_name(name)
            self._location(source, "source")
            if tier is not None:
                self._tier(tier)
            catalog = self._data(project).catalog
            version, created = catalog.add(
                name, source, tier=tier, metadata=metadata, inputs=list(inputs)
            )
            note.target = f"{version.ref} <- {source}"
            note.detail = "new version" if created else "same content as the existing version"
            return version, created

    def export(
        self,
        who: Principal,
        project: str | None,
        name: str,
        selector: str,
        *,
        license: str | None,
        address: str | None,
    ) -> tuple[VersionRecord, Path]:
        """The version as an RO-Crate in a zip file (a temporary: the caller deletes it)."""
        from hexflow.data.rocrate_export import check_crate, export_version

        target = _ref(name, selector)
        with self._audited(who, "data.export", project, target, address) as note:
            project = self._project(who, project, Scope.READ)
            note.project = project
            catalog = self._data(project).catalog
            version = catalog.resolve(target)
            note.target = version.ref
            work = Path(tempfile.mkdtemp(prefix="hexflow-crate-"))
            try:
                crate = work / "crate"
                export_version(catalog, version.ref, crate, license=license)
                problems = check_crate(crate)
                if problems:  # our bug, not the caller's: never hand out a bad crate
                    raise DataError(f"the RO-Crate of {version.ref} is invalid: {problems[0]}")
                archive = shutil.make_archive(str(work / "crate"), "zip", root_dir=crate)
                shutil.rmtree(crate)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            return version, Path(archive)


def _check_name(name: str) -> None:
    try:
        check_name(name)
    except SpecError as exc:
        raise DataInputError(exc.message, hint=exc.hint, field="name") from None


def _ref(name: str, selector: str) -> str:
    _check_name(name)
    ref = f"{name}@{selector}"
    try:
        parse_ref(ref)
    except DataInputError as exc:
        raise DataInputError(exc.message, hint=exc.hint, field="version") from None
    return ref


def _meta_filters(items: Sequence[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataInputError(
                f"meta {item!r}: expected KEY=VALUE", hint="e.g. meta=keywords=ocean", field="meta"
            )
        filters[key.strip()] = value
    return filters
