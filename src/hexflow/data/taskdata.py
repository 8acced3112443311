"""TaskData: the datasets of tasks, for the engine (its ``TaskHook``). Before a task that
declares ``inputs``/``outputs`` starts, each input version is resolved and staged to the
tier the task runs against (copied, verified against its manifest, when it has no replica
there yet), and an empty directory is made for each output; after the task succeeded, each
output directory is registered as a new version, with the provenance: this task run
generated it from exactly the input versions it was given.

What the task sees: ``HEXFLOW_INPUT_<NAME>`` / ``HEXFLOW_OUTPUT_<NAME>`` (directories) and
``HEXFLOW_DATASETS`` (JSON, read by ``hx.input_path`` / ``hx.output_path``). Outputs go to
``TIER:runs/<run>/<task>/<name>/`` in the run's project; a retry starts with them empty.
Every call opens the catalog and closes it again: the hook holds nothing between tasks.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hexflow.data import DataServices, open_data
from hexflow.data.catalog import DATASETS_DIR
from hexflow.data.errors import DataInputError
from hexflow.data.tiers import StorageConfig, TierSpec
from hexflow.model import RunRecord, TaskRecord, TaskSpec
from hexflow.model.datasets import Dataset, VersionRecord

DEFAULT_TIER = "qss"  # where tasks read and write their datasets unless they say otherwise
_OPENING = threading.Lock()


class TaskData:
    def __init__(
        self,
        db_url: str,
        storage: StorageConfig | Callable[[], StorageConfig],
        *,
        tier: str = DEFAULT_TIER,
    ) -> None:
        """``storage``: the settings, or how to read them the first time they are needed
        (a run without datasets never reads them)."""
        self.db_url = db_url
        self._storage = storage
        self.tier = tier
        self._lock = threading.Lock()
        self._used: dict[tuple[str, str], list[str]] = {}  # (run, task) -> refs staged
        self._staging: dict[tuple[str, str], threading.Lock] = {}  # (pid, tier) -> lock

    @property
    def storage(self) -> StorageConfig:
        with self._lock:
            if callable(self._storage):
                self._storage = self._storage()
            return self._storage

    def wants(self, spec: TaskSpec) -> bool:
        return bool(spec.reads or spec.writes)

    @contextmanager
    def _open(self, run: RunRecord) -> Iterator[DataServices]:
        # one at a time: opening may migrate the schema, which Alembic does not do safely
        # from two threads at once
        with _OPENING:
            data = open_data(self.db_url, self.storage, project=run.project or "default")
        with data:
            yield data

    def _tier(self, data: DataServices, ds: Dataset, role: str) -> TierSpec:
        name, _, site = (ds.tier or self.tier).partition("@")
        tier = data.transfers.storage.tier(name, site or None)
        if tier.kind != "posix":
            raise DataInputError(
                f"{role} {ds.ref}: tier {tier.label} is an object store; a task reads and "
                "writes files",
                hint="stage it to a POSIX tier (tier='qss' or 'pss')",
                field=role,
            )
        return tier

    def _path(self, tier: TierSpec, project: str, location: str) -> Path:
        return Path(tier.root) / project / location

    # ---------------------------------------------------------------- before the task
    def before_start(self, run: RunRecord, rec: TaskRecord) -> dict[str, str]:
        spec = rec.spec
        project = run.project or "default"
        inputs: dict[str, dict[str, str]] = {}
        outputs: dict[str, dict[str, str]] = {}
        with self._open(run) as data:
            for ds in spec.reads:
                version = data.catalog.resolve(ds.ref)
                tier = self._tier(data, ds, "input")
                path = self._stage(data, version, tier)
                inputs[ds.name] = {"path": str(path), "ref": version.ref, "pid": version.pid}
            for ds in spec.writes:
                tier = self._tier(data, ds, "output")
                path = self._path(tier, project, _output_location(run, rec, ds))
                if path.exists():  # an earlier attempt's: this one starts clean
                    shutil.rmtree(path)
                path.mkdir(parents=True)
                outputs[ds.name] = {"path": str(path), "tier": tier.label}
        with self._lock:
            self._used[(run.id, rec.id)] = [v["ref"] for v in inputs.values()]
        env = {"HEXFLOW_DATASETS": json.dumps({"inputs": inputs, "outputs": outputs})}
        for ds in spec.reads:
            env[f"HEXFLOW_INPUT_{ds.env_name}"] = inputs[ds.name]["path"]
        for ds in spec.writes:
            env[f"HEXFLOW_OUTPUT_{ds.env_name}"] = outputs[ds.name]["path"]
        return env

    def _stage(self, data: DataServices, version: VersionRecord, tier: TierSpec) -> Path:
        """The version's directory on ``tier``: its replica there, else a verified copy of
        another replica, recorded as a new replica. Tasks of this process that need the
        same version on the same tier wait for one copy."""
        with self._lock:
            lock = self._staging.setdefault((version.pid, tier.label), threading.Lock())
        with lock:
            return self._stage_once(data, version, tier)

    def _stage_once(self, data: DataServices, version: VersionRecord, tier: TierSpec) -> Path:
        catalog = data.catalog
        replicas = catalog.replicas(version)
        for replica in replicas:
            if (replica.tier, replica.site) == (tier.name, tier.site):
                catalog.touch(version, replica)
                return self._path(tier, version.project, replica.location)
        if not replicas:
            raise DataInputError(
                f"{version.ref} has no replica left to stage from",
                hint="its files were all deleted; register the data again",
            )
        here = [r for r in replicas if r.site == data.transfers.storage.site]
        source = (here or replicas)[0]
        location = f"{DATASETS_DIR}/{version.name}/{version.digest.split(':')[1][:16]}"
        entries = catalog.files(version)
        if len(entries) == 1:  # one file, perhaps registered in a directory holding others
            entry = entries[0]
            catalog.transfers.copy(
                _at(source.tier, source.site, source.location, entry.path),
                _at(tier.name, tier.site, location, entry.path),
                expected={entry.path.rsplit("/", 1)[-1]: entry.hash},
            )
        else:
            catalog.transfers.copy(
                _at(source.tier, source.site, source.location, "") + "/",
                _at(tier.name, tier.site, location, "") + "/",
                expected={e.path: e.hash for e in entries},
            )
        catalog.db.catalog.add_replica(version, tier.site, tier.name, location, catalog.clock())
        return self._path(tier, version.project, location)

    # ---------------------------------------------------------------- after success
    def after_success(self, run: RunRecord, rec: TaskRecord) -> None:
        spec = rec.spec
        with self._open(run) as data:
            with self._lock:
                used = self._used.pop((run.id, rec.id), None)
            if used is None:  # staged by an engine before a restart: resolve them again
                used = [data.catalog.resolve(ds.ref).ref for ds in spec.reads]
            for ds in spec.writes:
                tier = self._tier(data, ds, "output")
                location = _output_location(run, rec, ds)
                path = self._path(tier, run.project or "default", location)
                if not any(p.is_file() for p in path.rglob("*")):
                    raise DataInputError(
                        f"task {rec.name} declared output {ds.name!r} but wrote no file into "
                        f"{path}",
                        hint=f"write the files into $HEXFLOW_OUTPUT_{ds.env_name} "
                        f"(hx.output_path({ds.name!r}))",
                        field="outputs",
                    )
                metadata: dict[str, Any] = {
                    "description": f"made by task {rec.id} of run {run.id} ({run.name})",
                    **ds.metadata,
                }
                data.catalog.add(
                    ds.name,
                    f"{tier.name}@{tier.site}:{location}",
                    metadata=metadata,
                    produced_by=(run.id, rec.id),
                    inputs=used,
                )
            if not spec.writes and used:
                data.catalog.record_provenance(run.id, rec.id, used=used)


def _at(tier: str, site: str, location: str, rel: str) -> str:
    """``TIER@SITE:location/rel`` (either part may be empty)."""
    return f"{tier}@{site}:" + "/".join(p for p in (location, rel) if p)


def _output_location(run: RunRecord, rec: TaskRecord, ds: Dataset) -> str:
    return f"runs/{run.id}/{rec.id}/{ds.name}"
