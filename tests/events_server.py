"""``python -m tests.events_server PORT HOME DB_URL [FAULT]``: a real hexflow server process
for the crash tests, optionally frozen at a fault point of the event path (events.faults)."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from hexflow.events import EventsConfig
from hexflow.service import ServiceConfig
from hexflow.service.api import create_app
from hexflow.settings import Settings


def main() -> None:
    port, home, db_url, *rest = sys.argv[1:]
    env = {"HEXFLOW_HOME": home, "HEXFLOW_DB": db_url, "HEXFLOW_CPUS": "1"}
    settings = Settings.from_env(env=env, cwd=Path(home).parent)
    events = EventsConfig(fault=rest[0] if rest else None, poll_interval=0.05)
    config = ServiceConfig(settings=settings, events=events, max_parallel_runs=1)
    uvicorn.run(create_app(config), host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main()
