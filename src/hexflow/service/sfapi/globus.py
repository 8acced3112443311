"""SFAPI's Globus transfers (``storage/globus``) as hexflow data transfers.

An endpoint (SFAPI's ``source_uuid``/``target_uuid``) names either the project
directories the file utilities use (``files``: ``perlmutter`` and ``dtn`` by default) or a
storage tier (each local tier by its name, by default). Both ends of a transfer lie in one
project, the transfer's: a path is checked as the file utilities check theirs (inside the
project's directory, or its namespace on a POSIX tier, both as written and with symlinks
resolved; a source directory may hold no symlink pointing out, a target directory no
symlink leading out). The copy is a real, verified, resumable hexflow transfer
(``DataService``), visible under /api/v1/transfers too; its id is the transfer id.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexflow.data.errors import DataError
from hexflow.data.tiers import StorageConfig, TierSpec
from hexflow.errors import Forbidden, NotFound, SpecError
from hexflow.model.access import Scope
from hexflow.model.transfers import TransferRecord, TransferState
from hexflow.service.audit import Audit
from hexflow.service.auth import Principal
from hexflow.service.data import DataService
from hexflow.service.sfapi.files import Area, FileProblem, check_writes, project_root, tree

FILES = "files"  # an endpoint target: the project directories of the file utilities
GLOBUS = "globus"  # the status resource sfapi_client reads (`client.storage.globus()`)
_STATES = {
    TransferState.QUEUED: "ACTIVE",
    TransferState.RUNNING: "ACTIVE",
    TransferState.SUCCEEDED: "SUCCEEDED",
    TransferState.FAILED: "FAILED",
    TransferState.CANCELLED: "CANCELED",
}


@dataclass(frozen=True)
class Endpoint:
    name: str
    tier: TierSpec | None  # None: the project directories (FILES)

    @property
    def target(self) -> str:
        return FILES if self.tier is None else self.tier.label


def endpoints(
    configured: Iterable[tuple[str, str]] | None,
    machines: Iterable[str],
    storage: StorageConfig,
) -> dict[str, Endpoint]:
    """Endpoint name -> Endpoint. ``configured`` pairs are NAME=files or NAME=TIER[@SITE];
    None: every machine and ``dtn`` (sfapi_client's name for dtns/dtn01) are the project
    directories, and every local tier is reached by its name."""
    if configured is None:
        out = {m: Endpoint(m, None) for m in [*machines, "dtn"]}
        for tier in storage.local_tiers():
            out.setdefault(tier.name, Endpoint(tier.name, tier))
        return out
    found: dict[str, Endpoint] = {}
    for name, target in configured:
        if target == FILES:
            found[name] = Endpoint(name, None)
            continue
        tier_name, _, site = target.partition("@")
        try:
            found[name] = Endpoint(name, storage.tier(tier_name, site or None))
        except DataError as exc:
            raise SpecError(
                f"--sfapi-endpoint {name}={target}: {exc.message}",
                hint=f"map it to {FILES!r} or to a tier; {exc.hint}",
            ) from None
    return found


def _iso(at: float | None) -> str | None:
    return None if at is None else dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


class GlobusTransfers:
    def __init__(
        self,
        *,
        home: Path,
        data: DataService,
        audit: Audit,
        endpoints: Mapping[str, Endpoint],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._home = home
        self._data = data
        self._audit = audit
        self.endpoints = dict(endpoints)
        self._now = clock

    def status(self, now: float) -> dict[str, Any]:
        named = ", ".join(f"{e.name} ({e.target})" for e in self.endpoints.values())
        return {
            "name": GLOBUS,
            "full_name": "hexflow transfers (SFAPI Globus facade)",
            "description": f"verified copies between endpoints: {named or 'none'}",
            "system_type": "service",
            "status": "active" if self.endpoints else "unavailable",
            "notes": [],
            "updated_at": _iso(now),
        }

    # ------------------------------------------------------------------ start
    def start(
        self,
        who: Principal,
        *,
        source_uuid: str,
        target_uuid: str,
        source_dir: str,
        target_dir: str,
        label: str,
        address: str | None,
    ) -> dict[str, Any]:
        """Check both ends, plan the transfer, start it in the background; refusals are
        HTTP errors (sfapi_client ignores ``status: ERROR`` here and would go on to ask
        for transfer ``""``)."""
        target = f"{source_uuid}:{source_dir} -> {target_uuid}:{target_dir}"
        with self._audit.action(
            who.name, "sfapi.globus.transfer", target=target[:256], source=address
        ) as note:
            note.detail = f"label: {label}" if label else None
            src_end = self._endpoint(source_uuid, "source_uuid")
            dst_end = self._endpoint(target_uuid, "target_uuid")
            project = self._project(who, dst_end, target_dir)
            note.project = project
            who.check_project(project, Scope.SUBMIT)
            src, src_tree = self._source(src_end, project, source_dir)
            dst = self._target(dst_end, project, target_dir, src_tree)
            rec = self._data.start_checked(project, src, dst)
            note.target = f"{rec.id}: {target}"[:256]
            return {"transfer_id": rec.id, "status": "OK", "reason": None}

    def _endpoint(self, name: str, field: str) -> Endpoint:
        found = self.endpoints.get(name)
        if found is None:
            known = ", ".join(f"{e.name} ({e.target})" for e in self.endpoints.values())
            raise NotFound(
                f"no transfer endpoint {name!r}",
                hint=f"endpoints here: {known or 'none'} (hexflow server --sfapi-endpoint)",
                field=field,
            )
        return found

    def _root(self, end: Endpoint, project: str) -> Path | None:
        """The project's directory at the endpoint (None: an S3 tier, no directory)."""
        if end.tier is None:
            return project_root(self._home, project)
        if end.tier.kind != "posix":
            return None
        root = Path(end.tier.root) / project
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Path(os.path.realpath(root))

    def _project(self, who: Principal, target: Endpoint, target_dir: str) -> str:
        """The credential's project, or the only one; with several, the one whose
        directory holds an absolute target path."""
        reachable = sorted(who.projects(Scope.SUBMIT))
        if who.bound_project in reachable:
            return who.bound_project
        if len(reachable) == 1:
            return reachable[0]
        if not reachable:
            raise Forbidden(
                f"user {who.name!r} may start transfers in no project",
                hint="ask a project administrator for the member role",
            )
        if target_dir.startswith("/"):
            path = Path(os.path.normpath("/" + target_dir.lstrip("/")))
            for project in reachable:
                root = self._root(target, project)
                if root is not None and path.is_relative_to(root):
                    return project
        raise SpecError(
            f"which project? you may start transfers in several ({', '.join(reachable)})",
            hint="give an absolute target_dir inside one project's directory, or use a "
            "credential bound to one project",
            field="target_dir",
        )

    def _area(self, end: Endpoint, project: str) -> Area | None:
        root = self._root(end, project)
        return None if root is None else Area((root,), root)

    def _resolve(self, end: Endpoint, project: str, raw: str, field: str) -> tuple[Path, Area]:
        if not raw.strip() or "\0" in raw:
            raise SpecError(f"{field}: {raw!r} is not a path", hint="give a path", field=field)
        area = self._area(end, project)
        assert area is not None
        try:
            path, _ = area.resolve(raw)
            area.check_target(path, raw)
        except FileProblem as exc:
            raise _refused(exc, field) from None
        return path, area

    def _source(self, end: Endpoint, project: str, raw: str) -> tuple[str, list[str] | None]:
        """The source location, and the relative paths under it when it is a directory."""
        if end.tier is not None and end.tier.kind != "posix":
            return _in_tier(end.tier, raw, "source_dir"), None
        path, area = self._resolve(end, project, raw, "source_dir")
        rels = None
        if path.is_dir():
            try:
                rels = tree(area, path, raw)
            except FileProblem as exc:
                raise _refused(exc, "source_dir") from None
        return _location(end, area, path, raw), rels

    def _target(self, end: Endpoint, project: str, raw: str, rels: list[str] | None) -> str:
        if end.tier is not None and end.tier.kind != "posix":
            return _in_tier(end.tier, raw, "target_dir")
        path, area = self._resolve(end, project, raw, "target_dir")
        if rels is not None:  # a directory's files go under the target, as they are there
            try:
                check_writes(area, path, rels, raw)
            except FileProblem as exc:
                raise _refused(exc, "target_dir") from None
        return _location(end, area, path, raw)

    # ------------------------------------------------------------------ follow
    def result(self, who: Principal, transfer_id: str) -> dict[str, Any]:
        rec, _ = self._data.transfer(who, transfer_id)
        return shape(rec)


def shape(rec: TransferRecord) -> dict[str, Any]:
    """A transfer as SFAPI's GlobusTransferResult."""
    out: dict[str, Any] = {
        "status": "OK",
        "reason": rec.error,
        "globus_status": _STATES[rec.state],
        "bytes_transferred": rec.bytes_done,
        "files_transferred": rec.files_done,
        "files_total": rec.files_total,
        "bytes_total": rec.bytes_total,
    }
    if rec.state.terminal and rec.ended_at is not None:
        out["completion_time"] = _iso(rec.ended_at)
        took = rec.ended_at - (rec.started_at or rec.created_at)
        out["effective_bytes_per_second"] = int(rec.bytes_done / took) if took > 0 else 0
    return out


def _refused(exc: FileProblem, field: str) -> Forbidden:
    return Forbidden(
        str(exc),
        hint="both ends of a transfer lie in your project's directory (no '..', no "
        "symlink or absolute path leading out)",
        field=field,
    )


def _location(end: Endpoint, area: Area, path: Path, raw: str) -> str:
    """``TIER@SITE:PATH`` in the project's namespace, or the local path (a directory's
    trailing '/' kept: "into it")."""
    slash = "/" if raw.endswith("/") else ""
    if end.tier is None:
        return str(path).rstrip("/") + slash
    rel = path.relative_to(area.roots[0]).as_posix()
    rel = "" if rel == "." else rel
    return f"{end.tier.label}:{rel}{slash if rel else ''}"


def _in_tier(tier: TierSpec, raw: str, field: str) -> str:
    """A path in the project's namespace of an S3 tier: '/' is the namespace's root;
    '..' is refused when the location is parsed."""
    if not raw.strip() or "\0" in raw:
        raise SpecError(f"{field}: {raw!r} is not a path", hint="give a path", field=field)
    return f"{tier.label}:{raw.lstrip('/')}"
