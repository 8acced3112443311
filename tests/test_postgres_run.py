"""A whole workflow run with PostgreSQL as the store (HEXFLOW_DB), when CI provides one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hexflow as hx
from hexflow.settings import Settings

PG_URL = os.environ.get("HEXFLOW_TEST_POSTGRES_URL")


@hx.task(retries=1, backoff=0)
def flaky(marker: str) -> int:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return 21


@hx.task
def double(x: int) -> int:
    return 2 * x


@pytest.mark.skipif(
    not PG_URL, reason="set HEXFLOW_TEST_POSTGRES_URL (scripts/test.sh does as root)"
)
def test_run_and_resume_bookkeeping_on_postgres(tmp_path: Path) -> None:
    settings = Settings.from_env(
        env={"HEXFLOW_HOME": str(tmp_path / ".hexflow"), "HEXFLOW_DB": str(PG_URL)}, cwd=tmp_path
    )
    with hx.Workflow("pg", workdir=tmp_path) as wf:
        d = double(flaky(str(tmp_path / "marker")))
    run = wf.run(settings=settings)
    assert run.ok and d.result() == 42
    assert run.tasks["flaky-1"].attempt == 2

    from hexflow.store import open_store

    store = open_store(settings.db_url)
    try:
        stored = {t.id: t for t in store.load_tasks(run.id)}
        assert store.get_run(run.id).state.value == "succeeded"
        assert stored["double-1"].state.value == "succeeded" and stored["flaky-1"].attempt == 2
    finally:
        store.close()
