"""Failover against a real Slurm: a workflow running on a Slurm site when its node is set
DOWN (``scontrol update nodename=localhost state=down``) finishes on the local site —
nothing lost, no task run twice to completion, every move recorded with its reason.

Runs on a private cluster of the session (tests/slurm_private.py), so that taking its
node down does not fail other test runs' jobs on the shared one.
"""

from __future__ import annotations

import asyncio
import pickle
import time
import uuid
from pathlib import Path

import pytest

from hexflow.engine import Engine
from hexflow.flow.sites import site_set
from hexflow.model import Resources, RunRecord, TaskRecord, TaskSpec
from hexflow.model.events import TASK_MOVED
from hexflow.settings import Settings
from hexflow.store import MemoryStore
from tests import slurm_private
from tests.executor_contract import python_spec, shell_spec
from tests.slurm_private import resume_node, scontrol

private_slurm = slurm_private.private_slurm  # the fixture

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

SITES = """\
check_interval: 0.5s
move_timeout: 20s
sites:
  hpc:
    executor: slurm
    priority: 10
    slurm: {{conf: {conf}, poll: 0.5s, partition: regular}}
  laptop:
    executor: local
    local: {{cpus: 4}}
"""


def lines(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []


def total(*parts: int) -> int:
    return sum(parts)


def test_node_down_moves_the_workflow_to_the_local_site(tmp_path: Path, private_slurm: str) -> None:
    conf = private_slurm
    resume_node(conf)
    (tmp_path / "sites.yaml").write_text(SITES.format(conf=conf))
    settings = Settings.from_env(
        {"HEXFLOW_HOME": str(tmp_path / ".hexflow"), "HEXFLOW_SITES": str(tmp_path / "sites.yaml")},
        cwd=tmp_path,
    )
    sites = site_set(settings)
    assert sites is not None
    # 8 tasks of 4 cpus on a 16-cpu node: 4 run, 4 wait in Slurm's queue; then a join
    work: list[TaskSpec] = [
        shell_spec(
            f"t{i}",
            f'echo "$HEXFLOW_SITE $HEXFLOW_ATTEMPT" >> {tmp_path}/start.t{i}; sleep 4 && '
            f'echo "$HEXFLOW_SITE" >> {tmp_path}/done.t{i}',
            resources=Resources(cpus=4, walltime=120),
        )
        for i in range(8)
    ]
    join = python_spec("sum", total, *[_ref(s.id) for s in work])

    async def take_the_node_down(store: MemoryStore, run_id: str) -> None:
        deadline = time.monotonic() + 90
        while sum(len(lines(tmp_path / f"start.t{i}")) for i in range(8)) < 2:
            assert time.monotonic() < deadline, "no task started on Slurm"
            await asyncio.sleep(0.1)
        await asyncio.to_thread(
            scontrol, conf, "update", "NodeName=localhost", "State=DOWN", "Reason=hexflow-test"
        )

    store = MemoryStore()
    engine = Engine(store, sites.bindings[0].executor, sites=sites, cancel_poll_interval=0.1)
    run = engine.create_run(
        "failover",
        [*work, join],
        workdir=str(tmp_path),
        run_id=uuid.uuid4().hex[:12],
        config={"home": str(settings.home)},
    )

    async def main() -> RunRecord:
        driving = asyncio.ensure_future(engine.drive(run.id))
        await asyncio.wait_for(take_the_node_down(store, run.id), 120)
        return await asyncio.wait_for(driving, 180)

    try:
        final = asyncio.run(main())
    finally:
        resume_node(conf)
    recs: dict[str, TaskRecord] = dict(engine.records)
    assert final.state.value == "succeeded", {
        k: (r.state, r.reason, r.error) for k, r in recs.items()
    }
    assert pickle.loads(recs["sum"].result or b"") == 0  # each command's exit code
    moved = 0
    for i in range(8):
        rec, done = recs[f"t{i}"], lines(tmp_path / f"done.t{i}")
        assert len(done) == 1, (rec.id, done)  # nothing lost, nothing completed twice
        if rec.moves:
            moved += 1
            assert done == ["laptop"] and rec.site == "laptop"
            move = rec.moves[0]
            assert (move.source, move.to) == ("hpc", "laptop")
            assert "site hpc is down" in move.reason, move.reason
            assert lines(tmp_path / f"start.t{i}")[-1].startswith("laptop")
        else:
            assert done == ["hpc"]  # it had finished on Slurm before the node went down
    assert moved >= 4  # at least those waiting in Slurm's queue
    events = [e for e in store.events_after(0, 100_000) if e.kind == TASK_MOVED]
    assert len(events) == moved


def _ref(task_id: str) -> object:
    from hexflow.model.refs import TaskRef

    return TaskRef(task_id)
