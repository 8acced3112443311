"""Archetype 5 (data lifecycle) as a sequence of steps, and demo 5 of the registry.

This module owns the steps and the demo report::

    acquire (the instrument writes to a landing directory, outside hexflow)
      -> ingest: verified transfer into pss, registered as raw-scans@1 (again: same version)
      -> preprocess: a workflow run, raw-scans@1 staged to qss -> clean-scans@1
      -> analyse: three users, three runs, all pinned to clean-scans@1
      -> archive: lifecycle rules move every replica to the archive tier, audited
      -> publish: clean-scans@1 and the preprocessing run as RO-Crates, checked

``Lab`` holds what the steps share (settings, storage, the catalog's location); the
notebook ``archetype5.ipynb`` calls the same steps one cell at a time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hexflow_examples.archetype5_data_lifecycle.source import acquire
from hexflow_examples.archetype5_data_lifecycle.tasks import ANALYSES, check_science, preprocess
from hexflow_examples.registry import register

import hexflow as hx
from hexflow.data import DataServices, LifecycleRunner, load_storage, open_data
from hexflow.data.rocrate_export import check_crate, export_version
from hexflow.data.runcrate import check_run_crate, export_run

TITLE = "Data lifecycle: ingest, preprocess, share, archive, publish"
DESCRIPTION = (
    "A beamline's scan campaign is ingested with verified transfers and registered as an "
    "immutable, content-addressed dataset version; a workflow preprocesses it with its "
    "datasets staged and registered by hexflow; three users analyse the same shared "
    "version; lifecycle rules archive everything; the version and the preprocessing run "
    "are published as RO-Crates (Workflow Run / Provenance Run Crate)."
)
PROJECT = "default"  # embedded runs belong to no service project: the CLI's default
LICENSE = "https://spdx.org/licenses/CC-BY-4.0"
PASS_THROUGH_ENV = ("HEXFLOW_CPUS", "HEXFLOW_MEMORY", "HEXFLOW_KILL_GRACE")
RULES = [  # applied in order; the first that matches a replica acts on it
    {"rule": "run_finished", "from": "qss", "to": "archive"},  # outputs of finished runs
    {"rule": "unread", "days": 0, "from": "qss", "to": "archive"},  # (0 days: a demo)
    {"rule": "unread", "days": 0, "from": "pss", "to": "archive"},
]


@dataclass
class Lab:
    """What the steps share: the directories, the settings and the figures so far."""

    workdir: Path
    settings: hx.Settings
    facts: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, hx.Run] = field(default_factory=dict)

    def data(self) -> DataServices:
        return open_data(self.settings.db_url, load_storage(self.settings.home), project=PROJECT)


def setup(workdir: Path) -> Lab:
    """Settings with the state in ``workdir/.hexflow``, three tiers as directories under
    ``workdir/tiers`` (qss, pss, archive), a quota and the lifecycle rules."""
    workdir = Path(workdir).resolve()
    env = {k: os.environ[k] for k in PASS_THROUGH_ENV if os.environ.get(k)}
    env["HEXFLOW_HOME"] = str(workdir / ".hexflow")
    settings = hx.Settings.from_env(env=env, cwd=workdir)
    settings.home.mkdir(parents=True, exist_ok=True)
    storage = {
        "site": "lab",
        "tiers": {t: str(workdir / "tiers" / t) for t in ("qss", "pss", "archive")},
        "quotas": {PROJECT: {"qss": "1G"}},
        "lifecycle": RULES,
    }
    (settings.home / "storage.yaml").write_text(yaml.safe_dump(storage))
    return Lab(workdir, settings)


def ingest(lab: Lab) -> dict[str, Any]:
    """The instrument writes its campaign; a verified transfer brings it into pss; it is
    registered in place as ``raw-scans``. Ingesting the same files again changes nothing."""
    landing = lab.workdir / "instrument" / "campaign-001"
    lab.facts["truth"] = acquire(landing)
    with lab.data() as data:
        started = time.perf_counter()
        rec = data.transfers.copy(str(landing), "pss:incoming/campaign-001")
        seconds = time.perf_counter() - started
        meta = {
            "title": "BL-5.3.1 scan campaign 001 (raw detector counts)",
            "creators": ["beamline staff"],
            "keywords": ["beamline", "spectra", "raw"],
            "license": LICENSE,
            "instrument": {"beamline": "BL-5.3.1", "channels": 2048},
        }
        raw, created = data.catalog.add("raw-scans", "pss:incoming/campaign-001", metadata=meta)
        again, created_again = data.catalog.add(
            "raw-scans", "pss:incoming/campaign-001", metadata=meta
        )
    facts = {
        "transfer": rec.id,
        "files": rec.files_done,
        "bytes": rec.bytes_done,
        "seconds": round(seconds, 3),
        "version": raw.ref,
        "pid": raw.pid,
        "created": created,
        "same_version_again": again.ref == raw.ref and not created_again,
    }
    lab.facts["ingest"] = facts
    return facts


def run_preprocessing(lab: Lab) -> dict[str, Any]:
    """A workflow run: raw-scans is staged to qss, preprocess writes clean-scans."""
    with hx.Workflow("preprocess-campaign-001", settings=lab.settings, workdir=lab.workdir) as wf:
        summary = preprocess()
    run = wf.run()
    lab.runs["preprocess"] = run
    facts: dict[str, Any] = {"run": run.id, "ok": run.ok, "tasks": run.counts()}
    if run.ok:
        facts["summary"] = summary.result()
        with lab.data() as data:
            clean = data.catalog.resolve("clean-scans")
            facts["version"] = clean.ref
            facts["lineage"] = [
                (e.input, e.output) for e in data.catalog.lineage(clean.ref, "upstream")
            ]
    lab.facts["preprocess"] = facts
    return facts


def analyse(lab: Lab) -> dict[str, Any]:
    """Three users, three runs, all from the same shared version of clean-scans."""
    shared = lab.facts["preprocess"]["version"]
    results: dict[str, dict[str, Any]] = {}
    runs = {}
    for user, analysis in ANALYSES.items():
        pinned = analysis.with_options(inputs=[shared])
        with hx.Workflow(f"analysis-{user}", settings=lab.settings, workdir=lab.workdir) as wf:
            future = pinned(user)
        run = wf.run()
        lab.runs[f"analysis-{user}"] = run
        runs[user] = {"run": run.id, "ok": run.ok}
        if run.ok:
            results[user] = future.result()
    with lab.data() as data:
        readers = {
            (e.run_id, e.output) for e in data.catalog.lineage(shared, "downstream", depth=1)
        }
    facts = {
        "shared_version": shared,
        "runs": runs,
        "readers": sorted(out or "-" for _, out in readers),
        "science": check_science(lab.facts["truth"], results) if len(results) == 3 else {},
        "results": results,
    }
    lab.facts["analyse"] = facts
    return facts


def archive(lab: Lab) -> dict[str, Any]:
    """The lifecycle rules, planned (a dry run) then applied; every action is audited."""
    with lab.data() as data:
        # By now every run of this lab has ended: all of them count as finished.
        runner = LifecycleRunner(data.catalog, finished_runs=frozenset)
        planned = runner.plan(time.time())
        done = runner.apply(planned)
        where = {
            f"{v.ref}": sorted({r.tier for r in data.catalog.replicas(v)})
            for name in [d["name"] for d in data.catalog.datasets()]
            for v in data.catalog.versions(name)
        }
        audited = [e for e in data.db.catalog.audit_entries(PROJECT) if e["actor"] == "lifecycle"]
    facts = {
        "planned": len(planned),
        "outcomes": sorted({r["outcome"] for r in done}),
        "replicas": where,
        "all_in_archive": all(tiers == ["archive"] for tiers in where.values()),
        "audited": len(audited),
    }
    lab.facts["archive"] = facts
    return facts


def publish(lab: Lab) -> dict[str, Any]:
    """clean-scans as an RO-Crate, the preprocessing run as a Provenance Run Crate, both
    read back and checked; and the catalog finds the published data by a keyword."""
    out = lab.workdir / "published"
    crate, run_crate = out / "clean-scans", out / "preprocess-run"
    for path in (crate, run_crate):
        if path.exists():
            import shutil

            shutil.rmtree(path)
    run = lab.runs["preprocess"]
    with lab.data() as data:
        version = export_version(data.catalog, lab.facts["preprocess"]["version"], crate)
        run_report = export_run(
            data.catalog, run.record, list(run.tasks.values()), run_crate, license=LICENSE
        )
        found = [v.ref for v in data.catalog.search("preprocessed spectra")]
    facts = {
        "crate": str(crate),
        "crate_problems": check_crate(crate),
        "run_crate": str(run_crate),
        "run_crate_problems": check_run_crate(run_crate),
        "pid": version["pid"],
        "versions_in_run_crate": run_report["versions_made"],
        "search_finds_it": lab.facts["preprocess"]["version"] in found,
    }
    lab.facts["publish"] = facts
    return facts


def report(lab: Lab) -> dict[str, Any]:
    f = lab.facts
    pre, ana, arc, pub = f["preprocess"], f["analyse"], f["archive"], f["publish"]
    checks = {
        "ingested_verified": f["ingest"]["files"] == 14 and f["ingest"]["created"],
        "reingest_is_same_version": f["ingest"]["same_version_again"],
        "preprocessed_from_raw": ("raw-scans@1", "clean-scans@1") in pre.get("lineage", []),
        "three_users_read_the_shared_version": sorted(ana["readers"])
        == ["drift@1", "peaks@1", "profile@1"],
        "science_holds": bool(ana["science"]) and all(ana["science"].values()),
        "archived_everything": arc["all_in_archive"] and arc["outcomes"] == ["done"],
        "lifecycle_audited": arc["audited"] == arc["planned"] > 0,
        "crates_valid": not pub["crate_problems"] and not pub["run_crate_problems"],
        "found_by_search": pub["search_finds_it"],
    }
    runs = list(lab.runs.values())
    tasks: dict[str, int] = {}
    for run in runs:
        for state, n in run.counts().items():
            tasks[state] = tasks.get(state, 0) + n
    return {
        "ok": all(checks.values()) and all(r.ok for r in runs),
        "run_id": pre.get("run"),
        "runs": [r.id for r in runs],
        "tasks": tasks,
        "checks": checks,
        "ingest": f["ingest"],
        "preprocess": {k: v for k, v in pre.items() if k != "lineage"},
        "analyses": {u: r for u, r in ana["runs"].items()},
        "science": ana["science"],
        "archive": {k: v for k, v in arc.items() if k != "replicas"},
        "published": {k: v for k, v in pub.items() if not k.endswith("problems")},
    }


@register(5, TITLE, DESCRIPTION)
def run(workdir: Path) -> dict[str, Any]:
    lab = setup(workdir)
    ingest(lab)
    run_preprocessing(lab)
    analyse(lab)
    archive(lab)
    publish(lab)
    return report(lab)
