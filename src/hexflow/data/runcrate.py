"""A whole workflow run as an RO-Crate of the Workflow Run Crate family (Process,
Workflow and Provenance Run Crate 0.5), written with the ``rocrate`` library, and a checker
for what those profiles require.

What goes in: ``workflow.json`` (the run's tasks as hexflow ran them: commands, resources,
dependencies, datasets) as the crate's main entity, a ``ComputationalWorkflow`` and
``HowTo`` whose tools (one per task) and steps are contextual entities; the run as a
``CreateAction`` (its inputs: versions it used but did not make; its results: versions it
made that no task of it used); each task run as a ``CreateAction`` of its tool, with the
versions it used and generated, orchestrated by a ``ControlAction`` of its step; hexflow as
the engine's ``OrganizeAction``. The versions the run made are data entities: their files
(copied from a replica, checked against the manifest), in ``NAME-vN/``; versions from
outside the run are referred to by their persistent identifiers.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
from collections.abc import Sequence
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

from hexflow.data.backends.posix import PosixBackend
from hexflow.data.catalog import Catalog
from hexflow.data.copy import CopyPolicy, copy_item
from hexflow.data.errors import DataInputError
from hexflow.data.rocrate_export import METADATA_NAME, check_crate, pick_replica
from hexflow.model import RunRecord, TaskRecord
from hexflow.model.datasets import VersionRecord
from hexflow.model.transfers import TransferItem

WORKFLOW_NAME = "workflow.json"
_VERSION = _version("hexflow")
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": "Process Run Crate",
    "https://w3id.org/ro/wfrun/workflow/0.5": "Workflow Run Crate",
    "https://w3id.org/ro/wfrun/provenance/0.5": "Provenance Run Crate",
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": "Workflow RO-Crate",
}
_STATUS = {
    "succeeded": "http://schema.org/CompletedActionStatus",
    "failed": "http://schema.org/FailedActionStatus",
    "cancelled": "http://schema.org/FailedActionStatus",
    "upstream_failed": "http://schema.org/FailedActionStatus",
}


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def workflow_document(run: RunRecord, tasks: Sequence[TaskRecord]) -> dict[str, Any]:
    """The run's tasks as hexflow ran them (no payloads: a Python task is its function)."""
    out = []
    for rec in tasks:
        spec = rec.spec
        entry: dict[str, Any] = {
            "id": spec.id,
            "kind": spec.kind.value,
            "after": list(spec.deps),
            "resources": spec.resources.describe(),
        }
        if spec.command:
            entry["command"] = list(spec.command)
        if "function" in spec.tags:
            entry["function"] = spec.tags["function"]
        if spec.image:
            entry["image"] = rec.image_digest or spec.image
        if spec.reads:
            entry["inputs"] = [d.ref for d in spec.reads]
        if spec.writes:
            entry["outputs"] = [d.name for d in spec.writes]
        out.append(entry)
    return {"format": "hexflow.run/1", "name": run.name, "run": run.id, "tasks": out}


def export_run(
    catalog: Catalog,
    run: RunRecord,
    tasks: Sequence[TaskRecord],
    out_dir: Path,
    *,
    license: str,
    with_data: bool = True,
    policy: CopyPolicy | None = None,
) -> dict[str, Any]:
    """Write the crate of ``run`` into ``out_dir`` (new or empty); a short report."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    if not license:
        raise DataInputError("an RO-Crate must carry a license", hint="pass --license URL")
    out_dir = out_dir.resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise DataInputError(f"{out_dir} is not empty", hint="export into a new or empty directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    activities = {
        task: (used, made) for task, used, made in catalog.db.catalog.run_activities(run.id)
    }
    made = {v.ref: v for _, (_, gen) in activities.items() for v in gen}
    used = {v.ref: v for _, (use, _) in activities.items() for v in use}
    external = {ref: v for ref, v in used.items() if ref not in made}
    finals = {ref: v for ref, v in made.items() if ref not in used}

    (out_dir / WORKFLOW_NAME).write_text(json.dumps(workflow_document(run, tasks), indent=2))
    crate = ROCrate()
    root = crate.root_dataset
    root["name"] = f"Run {run.id} of workflow {run.name}"
    root["description"] = (
        f"Workflow run {run.id} ({run.name}) by hexflow {_VERSION}: "
        f"{len(tasks)} task(s), {run.state.value}; its dataset versions and their provenance."
    )
    root["datePublished"] = dt.date.today().isoformat()
    root["license"] = _license(crate, license)
    root["conformsTo"] = [
        crate.add(ContextEntity(crate, uri, properties={"@type": "CreativeWork", "name": name}))
        for uri, name in PROFILES.items()
    ]
    language = crate.add(
        ContextEntity(
            crate,
            "#hexflow-workflow-language",
            properties={
                "@type": "ComputerLanguage",
                "name": "hexflow workflow",
                "alternateName": "hexflow",
                "version": _VERSION,
            },
        )
    )
    workflow = crate.add_file(
        out_dir / WORKFLOW_NAME,
        dest_path=WORKFLOW_NAME,
        properties={
            "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
            "name": run.name,
            "encodingFormat": "application/json",
            "programmingLanguage": language,
        },
    )
    root["mainEntity"] = workflow

    versions: dict[str, Any] = {}
    for ref, v in sorted(made.items()):
        versions[ref] = (
            _add_version_data(crate, catalog, v, out_dir, policy)
            if with_data
            else _add_version_ref(crate, v)
        )
    for ref, v in sorted(external.items()):
        versions[ref] = _add_version_ref(crate, v)

    tools, steps, controls = [], [], []
    for position, rec in enumerate(tasks):
        tool = crate.add(
            ContextEntity(
                crate,
                f"{WORKFLOW_NAME}#{rec.id}",
                properties={
                    "@type": "SoftwareApplication",
                    "name": rec.spec.tags.get("function") or rec.spec.name,
                    "description": _describe(rec),
                },
            )
        )
        step = crate.add(
            ContextEntity(
                crate,
                f"{WORKFLOW_NAME}#step/{rec.id}",
                properties={"@type": "HowToStep", "position": str(position), "workExample": tool},
            )
        )
        use, gen = activities.get(rec.id, ([], []))
        props: dict[str, Any] = {
            "@type": "CreateAction",
            "name": f"Run of task {rec.id}",
            "instrument": tool,
            "actionStatus": {"@id": _STATUS.get(rec.state.value, _STATUS["failed"])},
        }
        for key, when in (("startTime", rec.started_at), ("endTime", rec.ended_at)):
            if when is not None:
                props[key] = _iso(when)
        if rec.state.value != "succeeded" and rec.error:
            props["error"] = rec.error[:500]
        action = crate.add(ContextEntity(crate, f"#task-{run.id}-{rec.id}", properties=props))
        if use:
            action["object"] = [versions[v.ref] for v in use]
        if gen:
            action["result"] = [versions[v.ref] for v in gen]
        control = crate.add(
            ContextEntity(
                crate,
                f"#control-{run.id}-{rec.id}",
                properties={
                    "@type": "ControlAction",
                    "name": f"orchestrate {rec.id}",
                    "instrument": step,
                    "object": action,
                },
            )
        )
        tools.append(tool)
        steps.append(step)
        controls.append(control)
    workflow["hasPart"] = tools
    workflow["step"] = steps

    run_props: dict[str, Any] = {
        "@type": "CreateAction",
        "name": f"Run {run.id} of {run.name}",
        "instrument": workflow,
        "actionStatus": {"@id": _STATUS.get(run.state.value, _STATUS["failed"])},
    }
    for key, when in (("startTime", run.started_at), ("endTime", run.ended_at)):
        if when is not None:
            run_props[key] = _iso(when)
    run_action = crate.add(ContextEntity(crate, f"#run-{run.id}", properties=run_props))
    if external:
        run_action["object"] = [versions[r] for r in sorted(external)]
    if finals:
        run_action["result"] = [versions[r] for r in sorted(finals)]
    submitted_by = run.config.get("submitted_by")
    if isinstance(submitted_by, str):
        run_action["agent"] = crate.add(
            ContextEntity(
                crate, f"#user-{submitted_by}", properties={"@type": "Person", "name": submitted_by}
            )
        )
    root["mentions"] = [run_action]
    engine = crate.add(
        ContextEntity(
            crate,
            "#hexflow",
            properties={
                "@type": "SoftwareApplication",
                "name": f"hexflow {_VERSION}",
                "version": _VERSION,
            },
        )
    )
    crate.add(
        ContextEntity(
            crate,
            f"#engine-{run.id}",
            properties={
                "@type": "OrganizeAction",
                "name": f"hexflow run {run.id}",
                "instrument": engine,
                "object": controls,
                "result": run_action,
                **({"startTime": _iso(run.started_at)} if run.started_at else {}),
            },
        )
    )
    crate.write(out_dir)
    return {
        "run": run.id,
        "directory": str(out_dir),
        "tasks": len(tasks),
        "versions_made": sorted(made),
        "versions_used": sorted(external),
        "with_data": with_data,
    }


def _describe(rec: TaskRecord) -> str:
    spec = rec.spec
    if spec.command:
        return "command: " + " ".join(spec.command)[:300]
    return f"{spec.kind.value} task {spec.tags.get('function') or spec.name}"


def _license(crate: Any, license: str) -> Any:
    from rocrate.model.contextentity import ContextEntity

    if license.startswith(("http://", "https://")):
        return crate.add(
            ContextEntity(crate, license, properties={"@type": "CreativeWork", "name": license})
        )
    return license


def _add_version_ref(crate: Any, v: VersionRecord) -> Any:
    from rocrate.model.contextentity import ContextEntity

    return crate.add(
        ContextEntity(
            crate,
            v.pid,
            properties={
                "@type": "CreativeWork",
                "additionalType": "Dataset",
                "name": v.ref,
                "identifier": v.pid,
                "contentSize": str(v.size),
            },
        )
    )


def _add_version_data(
    crate: Any, catalog: Catalog, v: VersionRecord, out_dir: Path, policy: CopyPolicy | None
) -> Any:
    """The version's files under ``NAME-vN/``, each checked against the manifest."""
    folder = f"{v.name}-v{v.number}"  # no '@': it would be percent-encoded in the @id
    replica = pick_replica(catalog, v)
    src = catalog.transfers.backend(catalog.storage.tier(replica.tier, replica.site))
    dst = PosixBackend(str(out_dir))
    base = f"{v.project}/{replica.location}".rstrip("/")
    entries = catalog.files(v)
    for i, entry in enumerate(entries):
        item = TransferItem(
            transfer_id="export-run",
            seq=i,
            src=f"{base}/{entry.path}",
            dst=f"{folder}/{entry.path}",
            size=entry.size,
            expected_hash=entry.hash,
        )
        copy_item(item, src, dst, token=f"run-{i}", policy=policy or CopyPolicy())
    dst.sync()
    catalog.touch(v, replica)
    directory = crate.add_dataset(
        out_dir / folder,
        dest_path=f"{folder}/",
        properties={
            "name": v.title,
            "identifier": v.pid,
            "version": str(v.number),
            "description": v.metadata.get("description") or f"version {v.number} of {v.name}",
        },
    )
    parts = []
    for entry in entries:
        props: dict[str, Any] = {"contentSize": str(entry.size), "identifier": entry.hash}
        kind = mimetypes.guess_type(entry.path)[0]
        if kind:
            props["encodingFormat"] = kind
        parts.append(
            crate.add_file(
                out_dir / folder / entry.path, dest_path=f"{folder}/{entry.path}", properties=props
            )
        )
    directory["hasPart"] = parts
    return directory


# ---------------------------------------------------------------------- checking


def check_run_crate(path: Path) -> list[str]:
    """Problems of the Workflow Run / Provenance Run crate at ``path`` (empty: valid):
    the RO-Crate MUSTs and file digests (``check_crate``), then what the profiles ask."""
    problems = check_crate(path)
    try:
        graph = json.loads((path / METADATA_NAME).read_text())["@graph"]
    except (OSError, ValueError, KeyError):
        return problems
    by_id = {e.get("@id"): e for e in graph}

    def ids(value: Any) -> list[str]:
        items = value if isinstance(value, list) else [value] if value else []
        return [i["@id"] for i in items if isinstance(i, dict) and "@id" in i]

    def types(entity: dict[str, Any]) -> set[str]:
        t = entity.get("@type")
        return set(t if isinstance(t, list) else [t])

    for entity in graph:  # every reference resolves inside the crate
        for key, value in entity.items():
            if (
                key in ("conformsTo", "actionStatus", "@context")
                or entity.get("@id") == METADATA_NAME
            ):
                continue
            for ref in ids(value):
                if ref not in by_id:
                    problems.append(f"{entity.get('@id')}: {key} names {ref}, not in the crate")
    root = by_id.get("./", {})
    conforms = set(ids(root.get("conformsTo")))
    for uri, name in PROFILES.items():
        if uri not in conforms:
            problems.append(f"the root dataset does not conform to {name} ({uri})")
    main = by_id.get((ids(root.get("mainEntity")) or [""])[0])
    if main is None:
        return problems + ["the root dataset has no mainEntity (the workflow)"]
    needed = {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"}
    if not needed <= types(main):
        problems.append(
            f"the workflow's types {sorted(types(main))} lack {sorted(needed - types(main))}"
        )
    runs = [by_id.get(i, {}) for i in ids(root.get("mentions"))]
    if not any(
        "CreateAction" in types(a) and ids(a.get("instrument")) == [main["@id"]] for a in runs
    ):
        problems.append("no CreateAction of the workflow is in the root's mentions")
    tools, steps = set(ids(main.get("hasPart"))), set(ids(main.get("step")))
    for entity in graph:
        kinds = types(entity)
        eid = entity.get("@id")
        if "ControlAction" in kinds:
            step = (ids(entity.get("instrument")) or [""])[0]
            if step not in steps:
                problems.append(f"{eid}: its instrument is not a step of the workflow")
            action = by_id.get((ids(entity.get("object")) or [""])[0], {})
            if "CreateAction" not in types(action):
                problems.append(f"{eid}: its object is not a CreateAction")
            elif (ids(action.get("instrument")) or [""])[0] not in tools:
                problems.append(f"{action['@id']}: its instrument is not a tool of the workflow")
        if "HowToStep" in kinds and (ids(entity.get("workExample")) or [""])[0] not in tools:
            problems.append(f"{eid}: its workExample is not a tool of the workflow")
        if "OrganizeAction" in kinds:
            result = by_id.get((ids(entity.get("result")) or [""])[0], {})
            if "CreateAction" not in types(result):
                problems.append(f"{eid}: its result is not the workflow's CreateAction")
        if "CreateAction" in kinds and not ids(entity.get("instrument")):
            problems.append(f"{eid}: a CreateAction without an instrument")
    return problems
