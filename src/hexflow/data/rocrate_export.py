"""RO-Crate export of a dataset version (with the ``rocrate`` library) and a checker for
what it writes.

The crate holds the version's files (copied from a replica and verified against the
manifest), ``hexflow-manifest.json``, the DataCite/schema.org core metadata on the root
dataset, the version's PID as its identifier, and provenance: one ``CreateAction`` per task
run that produced the version, with the versions it used as its ``object`` (contextual
entities named by their PIDs, typed ``CreativeWork`` + ``additionalType: Dataset`` so that
they are not taken for data entities of this crate).
``check_crate`` reads a crate back with ``rocrate`` and checks the RO-Crate 1.1 MUSTs
(descriptor, root dataset, data entities present) plus every file's size and digest.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
from pathlib import Path
from typing import Any

from hexflow.data.backends.posix import PosixBackend
from hexflow.data.catalog import Catalog
from hexflow.data.checksum import algo_of, digest_of, new_hasher
from hexflow.data.copy import CopyPolicy, copy_item
from hexflow.data.errors import DataInputError, DataNotFound
from hexflow.model.datasets import Replica, VersionRecord
from hexflow.model.transfers import TransferItem

MANIFEST_NAME = "hexflow-manifest.json"
METADATA_NAME = "ro-crate-metadata.json"


def export_version(
    catalog: Catalog,
    ref: str,
    out_dir: Path,
    *,
    license: str | None = None,
    policy: CopyPolicy | None = None,
) -> dict[str, Any]:
    version = catalog.resolve(ref)
    license = license or version.metadata.get("license")
    if not license:
        raise DataInputError(
            f"{version.ref} has no license, which an RO-Crate must carry",
            hint="pass --license URL (e.g. https://spdx.org/licenses/CC-BY-4.0) or add "
            "'license' to the dataset's metadata",
        )
    out_dir = out_dir.resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise DataInputError(f"{out_dir} is not empty", hint="export into a new or empty directory")
    replica = pick_replica(catalog, version)
    entries = catalog.files(version)
    src = catalog.transfers.backend(catalog.storage.tier(replica.tier, replica.site))
    dst = PosixBackend(str(out_dir))
    base = f"{version.project}/{replica.location}".rstrip("/")
    for i, entry in enumerate(entries):
        item = TransferItem(
            transfer_id="export",
            seq=i,
            src=f"{base}/{entry.path}",
            dst=entry.path,
            size=entry.size,
            expected_hash=entry.hash,
        )
        copy_item(item, src, dst, token=f"export-{i}", policy=policy or CopyPolicy())
    dst.sync()
    catalog.touch(version, replica)
    (out_dir / MANIFEST_NAME).write_text(
        json.dumps(
            {
                "dataset": version.name,
                "version": version.number,
                "digest": version.digest,
                "pid": version.pid,
                "files": [e.as_dict() for e in entries],
            },
            indent=2,
        )
    )
    _write_crate(catalog, version, entries, out_dir, license)
    return {
        "ref": version.ref,
        "pid": version.pid,
        "directory": str(out_dir),
        "files": len(entries),
        "size": version.size,
        "from": f"{replica.tier}@{replica.site}",
    }


def pick_replica(catalog: Catalog, version: VersionRecord) -> Replica:
    replicas = catalog.replicas(version)
    if not replicas:
        raise DataNotFound(
            f"{version.ref} has no replica in any tier", hint="its files were all deleted"
        )
    local = [r for r in replicas if r.site == catalog.storage.site]
    posix = [r for r in local if catalog.storage.tier(r.tier, r.site).kind == "posix"]
    return (posix or local or replicas)[0]


def _write_crate(
    catalog: Catalog,
    version: VersionRecord,
    entries: list[Any],
    out_dir: Path,
    license: str,
) -> None:
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    meta = version.metadata
    crate = ROCrate()
    root = crate.root_dataset
    root["name"] = version.title
    root["description"] = meta.get("description") or f"Version {version.number} of {version.name}"
    root["datePublished"] = meta.get("datePublished") or dt.date.today().isoformat()
    root["identifier"] = version.pid
    root["version"] = str(version.number)
    if meta.get("keywords"):
        root["keywords"] = list(meta["keywords"])
    if meta.get("dateCreated"):
        root["dateCreated"] = meta["dateCreated"]
    if license.startswith(("http://", "https://")):
        lic = crate.add(
            ContextEntity(crate, license, properties={"@type": "CreativeWork", "name": license})
        )
        root["license"] = lic
    else:
        root["license"] = license
    creators = []
    for i, name in enumerate(meta.get("creators") or []):
        creators.append(
            crate.add(
                ContextEntity(
                    crate, f"#creator-{i + 1}", properties={"@type": "Person", "name": name}
                )
            )
        )
    if creators:
        root["creator"] = creators
    if meta.get("publisher"):
        root["publisher"] = crate.add(
            ContextEntity(
                crate, "#publisher", properties={"@type": "Organization", "name": meta["publisher"]}
            )
        )
    for entry in entries:
        kind = mimetypes.guess_type(entry.path)[0]
        props: dict[str, Any] = {"contentSize": str(entry.size), "identifier": entry.hash}
        if kind:
            props["encodingFormat"] = kind
        crate.add_file(out_dir / entry.path, dest_path=entry.path, properties=props)
    crate.add_file(
        out_dir / MANIFEST_NAME,
        dest_path=MANIFEST_NAME,
        properties={
            "name": "hexflow manifest",
            "description": "path, size and digest of every file of this version",
            "encodingFormat": "application/json",
        },
    )
    _add_provenance(catalog, version, crate)
    crate.write(out_dir)


def _add_provenance(catalog: Catalog, version: VersionRecord, crate: Any) -> None:
    from rocrate.model.contextentity import ContextEntity

    edges = catalog.db.catalog.lineage(version, "upstream", 1)
    activities: dict[tuple[str, str], list[str]] = {}
    for edge in edges:
        inputs = activities.setdefault((edge.run_id, edge.task_id), [])
        if edge.input is not None and edge.input not in inputs:
            inputs.append(edge.input)
    for (run_id, task_id), inputs in sorted(activities.items()):
        used = []
        for ref in inputs:
            v = catalog.resolve(ref)
            used.append(
                crate.add(
                    ContextEntity(
                        crate,
                        v.pid,
                        properties={
                            "@type": "CreativeWork",
                            "additionalType": "Dataset",
                            "name": v.ref,
                            "identifier": v.pid,
                        },
                    )
                )
            )
        props: dict[str, Any] = {
            "@type": "CreateAction",
            "name": f"task {task_id} of run {run_id}",
            "result": {"@id": "./"},
        }
        action = crate.add(ContextEntity(crate, f"#run-{run_id}-{task_id}", properties=props))
        if used:
            action["object"] = used


def check_crate(path: Path) -> list[str]:
    """Problems of the RO-Crate at ``path`` (empty: valid)."""
    from rocrate.rocrate import ROCrate

    problems: list[str] = []
    meta_file = path / METADATA_NAME
    if not meta_file.is_file():
        return [f"{METADATA_NAME} is missing"]
    try:
        doc = json.loads(meta_file.read_text())
    except ValueError as exc:
        return [f"{METADATA_NAME} is not JSON: {exc}"]
    context = doc.get("@context")
    contexts = context if isinstance(context, list) else [context]
    if not any(
        isinstance(c, str) and c.startswith("https://w3id.org/ro/crate/1.") for c in contexts
    ):
        problems.append("@context does not name an RO-Crate context")
    graph = doc.get("@graph")
    if not isinstance(graph, list):
        return problems + ["@graph is missing or not a list"]
    ids = [e.get("@id") for e in graph]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        problems.append(f"entities with the same @id: {sorted(dupes)}")
    by_id = {e.get("@id"): e for e in graph}
    descriptor = by_id.get(METADATA_NAME)
    if descriptor is None:
        return problems + ["no metadata descriptor entity"]
    conforms = str((descriptor.get("conformsTo") or {}).get("@id", ""))
    if not conforms.startswith("https://w3id.org/ro/crate/1."):
        problems.append("the descriptor's conformsTo is not an RO-Crate version")
    if (descriptor.get("about") or {}).get("@id") != "./":
        problems.append("the descriptor is not about ./")
    root = by_id.get("./")
    if root is None:
        return problems + ["no root data entity ./"]
    types = root.get("@type")
    if "Dataset" not in (types if isinstance(types, list) else [types]):
        problems.append("the root entity is not a Dataset")
    for key in ("name", "description", "datePublished", "license"):
        if not root.get(key):
            problems.append(f"the root dataset has no {key}")
    try:
        dt.date.fromisoformat(str(root.get("datePublished", ""))[:10])
    except ValueError:
        problems.append("datePublished is not an ISO 8601 date")
    try:
        crate = ROCrate(path)
    except Exception as exc:  # the library's own parser refuses it
        return problems + [f"rocrate cannot read it: {type(exc).__name__}: {exc}"]
    parts = {p["@id"] for p in root.get("hasPart", [])}
    seen = set()
    for entity in crate.data_entities:
        eid = entity.id
        seen.add(eid)
        if eid not in parts:
            problems.append(f"{eid} is not listed in the root's hasPart")
        target = path / eid
        if "File" in entity.type:
            if not target.is_file():
                problems.append(f"{eid}: the file is missing")
                continue
            size = entity.get("contentSize")
            if size is not None and int(size) != target.stat().st_size:
                problems.append(f"{eid}: {target.stat().st_size} bytes, contentSize says {size}")
            digest = entity.get("identifier")
            if isinstance(digest, str) and ":" in digest and not digest.startswith("urn:"):
                algo = algo_of(digest)
                hasher = new_hasher(algo, size_hint=target.stat().st_size)
                with open(target, "rb") as f:
                    while chunk := f.read(4 << 20):
                        hasher.update(chunk)
                if digest_of(hasher, algo) != digest:
                    problems.append(f"{eid}: content does not match its digest")
    for missing in sorted(parts - seen):
        problems.append(f"hasPart names {missing}, which is not a data entity")
    return problems
