"""TriggerRuns: the runs workflow triggers submit (the trigger manager's ``workflows``).

A workflow trigger holds a YAML workflow, a template: its ``params:`` are filled from the
trigger's constant ``args`` and the event's fields of the same names. Each event submits
it once, as a run of the trigger's project owned by the trigger's creator, with the run id
the manager derives from the trigger and the event (a redelivered event finds the run and
submits nothing), labelled with both (``config.labels``: ``trigger``, ``event``) for
provenance. Tasks left at the default QoS run ``urgent``, as event work does. (Whether the
creator may still submit in the project is checked by the trigger manager before.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import replace

import yaml

from hexflow.errors import HexflowError, SpecError
from hexflow.model.events import Event
from hexflow.model.qos import QoS
from hexflow.model.triggers import Trigger
from hexflow.service.manager import RunManager
from hexflow.service.workflow_body import read_workflow
from hexflow.store.service_db import ServiceDb

MAX_WORKFLOW_BYTES = 1 << 20


class TriggerRuns:
    def __init__(self, db: ServiceDb, manager: RunManager) -> None:
        self._db = db
        self._manager = manager

    def params(self, project: str, workflow: str) -> Collection[str]:
        """The params ``workflow`` declares, once it has been read whole (with each param
        at its default, or a placeholder where it has none): SpecError names what is wrong."""
        if not isinstance(workflow, str) or not workflow.strip():
            raise SpecError("workflow: the YAML text of a workflow", field="workflow")
        try:
            top = yaml.safe_load(workflow)
        except yaml.YAMLError as exc:
            raise SpecError(f"workflow: not YAML: {exc}", field="workflow") from None
        if not isinstance(top, dict):
            raise SpecError("workflow: a YAML mapping with name and tasks", field="workflow")
        declared = top.get("params") or {}
        if not isinstance(declared, dict):
            raise SpecError("workflow: params must be a mapping", field="workflow.params")
        trial = {str(k): "0" if v is None else str(v) for k, v in declared.items()}
        try:
            read_workflow(
                workflow.encode(),
                "application/yaml",
                trial,
                max_bytes=MAX_WORKFLOW_BYTES,
                allow_python=False,
            )
        except HexflowError as exc:
            raise SpecError(f"workflow: {exc.message}", hint=exc.hint, field="workflow") from None
        return list(trial)

    async def submit(
        self, trigger: Trigger, event: Event, params: dict[str, str], run_id: str
    ) -> bool:
        return await asyncio.to_thread(self._submit, trigger, event, params, run_id)

    def _submit(self, trigger: Trigger, event: Event, params: dict[str, str], run_id: str) -> bool:
        assert trigger.workflow is not None
        if self._db.runs.get_run(run_id, [trigger.project]) is not None:
            return False  # submitted for this event before (a redelivery)
        doc = read_workflow(
            trigger.workflow.encode(),
            "application/yaml",
            params,
            max_bytes=MAX_WORKFLOW_BYTES,
            allow_python=False,
        )
        specs = [replace(s, qos=QoS.URGENT) if s.qos is QoS.REGULAR else s for s in doc.specs]
        labels = {"trigger": trigger.id, "event": str(event.seq)}
        try:
            self._manager.create(
                doc.name,
                specs,
                run_id=run_id,
                project=trigger.project,
                user=trigger.created_by,
                labels=labels,
            )
        except HexflowError:
            if self._db.runs.get_run(run_id, [trigger.project]) is not None:
                return False  # the same event, submitted at the same moment elsewhere
            raise
        return True


__all__ = ["TriggerRuns"]
