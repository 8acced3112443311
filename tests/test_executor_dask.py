"""The Dask executor on a real ``dask.distributed`` LocalCluster (worker processes on
loopback, one thread each, each advertising one ``GPU`` resource): the executor contract
(Python tasks; shell tasks are not this executor's), then resource mapping and refusals.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hexflow.executors.base import Executor
from hexflow.model import Resources
from tests.executor_contract import ExecutorContract, drive, python_spec, shell_spec

distributed = pytest.importorskip(
    "distributed", reason="dask[distributed] is not installed: pip install -e '.[dask]'"
)

from hexflow.executors.dask import DaskExecutor  # noqa: E402
from hexflow.executors.dask.executor import cluster_shape, dask_resources  # noqa: E402

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    local = distributed.LocalCluster(
        n_workers=3,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
        resources={"GPU": 1},
        local_directory=str(tmp_path_factory.mktemp("dask")),
    )
    try:
        yield local
    finally:
        local.close()


class TestDaskExecutor(ExecutorContract):
    shell = False

    @pytest.fixture
    def executor(self, cluster: Any) -> Iterator[Executor]:
        executor = DaskExecutor(cluster.scheduler_address)
        yield executor
        executor.shutdown()  # the engine did, unless the test was skipped


def test_capacity_is_the_clusters(cluster: Any) -> None:
    executor = DaskExecutor(cluster.scheduler_address)
    try:
        assert executor.threads == 3 and executor.capacity.gpus == 3
        assert executor.capacity.cpus == 3 * 16  # handed over ahead: its backlog
        assert executor.worker_resources == {"GPU": 1.0}
    finally:
        executor.shutdown()


def test_gpu_requests_become_worker_resources(cluster: Any, tmp_path: Path) -> None:
    def gpu_job() -> str:
        from distributed import get_worker

        return str(get_worker().state.available_resources)

    specs = [
        python_spec("one", gpu_job, resources=Resources(gpus=1)),
        python_spec("two", gpu_job, resources=Resources(gpus=2)),
    ]
    _, recs = drive(DaskExecutor(cluster.scheduler_address), specs, tmp_path)
    assert recs["one"].state.value == "succeeded", recs["one"].error
    assert pickle.loads(recs["one"].result or b"") == "{'GPU': 0.0}"  # it held the GPU
    two = recs["two"]
    assert two.state.value == "failed" and two.reason == "launch_failed"
    assert "no Dask worker has GPU=2: the largest has 1" in (two.error or "")


def test_shell_tasks_are_refused_with_a_clear_reason(cluster: Any, tmp_path: Path) -> None:
    _, recs = drive(DaskExecutor(cluster.scheduler_address), [shell_spec("sh", "true")], tmp_path)
    rec = recs["sh"]
    assert rec.state.value == "failed" and rec.reason == "launch_failed"
    assert "runs Python functions only" in (rec.error or "")


def test_resource_mapping_and_cluster_shape_are_pure() -> None:
    info = {
        "workers": {
            "a": {"nthreads": 4, "memory_limit": 8 * 2**30, "resources": {"GPU": 2, "CPU": 4}},
            "b": {"nthreads": 2, "memory_limit": 4 * 2**30, "resources": {"CPU": 2}},
        }
    }
    capacity, most = cluster_shape(info)
    assert capacity == Resources(cpus=6, memory=12 * 2**30, gpus=2)
    assert most == {"GPU": 2.0, "CPU": 4.0}
    assert dask_resources(Resources(cpus=3, gpus=1, memory=2**30), most) == {"CPU": 3, "GPU": 1}
    assert dask_resources(Resources(cpus=1), {}) == {}  # nothing advertised, nothing asked
    with pytest.raises(Exception, match="no Dask worker has CPU=5"):
        dask_resources(Resources(cpus=5), most)
    unlimited, _ = cluster_shape({"workers": {"a": {"nthreads": 1, "memory_limit": 0}}})
    assert unlimited.memory == 2**62


def test_a_workflow_runs_on_dask_through_the_settings(cluster: Any, tmp_path: Path) -> None:
    import hexflow as hx
    from hexflow.settings import Settings

    @hx.task
    def where(n: int) -> tuple[int, str]:
        from distributed import get_worker

        return n * 2, get_worker().address

    with hx.Workflow("on-dask", workdir=tmp_path) as wf:
        doubled = where(21)
    settings = Settings.from_env(
        env={
            "HEXFLOW_HOME": str(tmp_path / ".hexflow"),
            "HEXFLOW_EXECUTOR": "dask",
            "HEXFLOW_DASK_SCHEDULER": cluster.scheduler_address,
        },
        cwd=tmp_path,
    )
    run = wf.run(settings=settings)
    assert run.ok
    value, address = doubled.result()
    assert value == 42 and address in cluster.scheduler_info["workers"]
