"""The server shows the sites of the sites file on /api/v1/sites with the state engines
act on: an administrator's override (``hexflow sites set``) or a planned outage makes a
site unavailable there too."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from hexflow.flow.sites import Overrides
from hexflow.model.access import parse_scopes
from hexflow.model.sites import SiteState
from hexflow.service import Admin, ServiceConfig
from hexflow.service.api import create_app
from hexflow.settings import Settings
from hexflow.store.service_db import ServiceDb
from tests.service_env import seed_accounts


def test_sites_of_the_sites_file_and_their_states_on_the_api(tmp_path: Path) -> None:
    soon = time.time() - 10
    (tmp_path / "sites.yaml").write_text(
        "sites:\n"
        "  alpha: {executor: local, priority: 10, description: the fast one}\n"
        "  beta:\n"
        "    executor: local\n"
        f"    outages: [{{start: {soon}, end: {soon + 3600}, reason: upgrade}}]\n"
        "    pools: [{name: cpu, nodes: 2, cpus: 8, memory: 16G}]\n"
    )
    db_url = f"sqlite:///{tmp_path / 'service.db'}"
    env = {
        "HEXFLOW_HOME": str(tmp_path / "home"),
        "HEXFLOW_DB": db_url,
        "HEXFLOW_CPUS": "1",
        "HEXFLOW_SITES": str(tmp_path / "sites.yaml"),
    }
    settings = Settings.from_env(env=env, cwd=tmp_path)
    Overrides(settings.home).set("alpha", SiteState.DOWN, "cooling failure")
    db = ServiceDb(db_url)
    admin = Admin(db, actor="cli:test")
    seed_accounts(admin)
    try:
        with TestClient(create_app(ServiceConfig(settings=settings))) as client:
            token = admin.create_token("alice", "p1", parse_scopes("read")).secret
            headers = {"Authorization": f"Bearer {token}"}
            items = client.get("/api/v1/sites", headers=headers).json()["items"]
            sites = {s["name"]: s for s in items}
            assert {"local", "alpha", "beta"} <= set(sites)
            assert sites["alpha"]["state"] == "unavailable"
            assert "cooling failure" in sites["alpha"]["description"]
            assert sites["beta"]["state"] == "unavailable"
            assert sites["beta"]["outages"][0]["status"] == "Active"
            assert sites["beta"]["pools"][0]["nodes"] == 2
            one = client.get("/api/v1/sites/beta", headers=headers).json()
            assert one["kind"] == "local" and "planned outage" in one["description"]
    finally:
        db.close()
