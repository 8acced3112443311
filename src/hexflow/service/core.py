"""Service: the one object ``hexflow server`` runs — database, keys, authentication,
audit, run manager and the run/OAuth logic — built from a ServiceConfig, started and
closed by the web app's lifespan. No globals: tests build as many as they like."""

from __future__ import annotations

import time
from collections.abc import Callable

from hexflow.data.config import load_storage
from hexflow.data.taskdata import TaskData
from hexflow.events.system import EventSystem
from hexflow.service.audit import Audit
from hexflow.service.auth import Authenticator
from hexflow.service.config import ServiceConfig
from hexflow.service.containers import ServiceContainers, Supervisor
from hexflow.service.data import DataService
from hexflow.service.functions import FunctionService
from hexflow.service.keys import load_signing_key
from hexflow.service.lifecycle import LifecycleSchedule, finished_runs
from hexflow.service.manager import RunManager
from hexflow.service.oauth import OAuthService
from hexflow.service.runs import RunService
from hexflow.service.sfapi import AccountViews, SfapiJobs, StatusViews
from hexflow.service.sfapi.globus import GlobusTransfers, endpoints
from hexflow.service.sfapi.groups import SfapiGroups
from hexflow.service.site_events import SiteEvents
from hexflow.service.sites import LocalSite, SiteRegistry, Usage, monitored_sites
from hexflow.service.tasks import TaskService
from hexflow.service.tokens import AccessTokens
from hexflow.service.trigger_runs import TriggerRuns
from hexflow.service.triggers import EventService, TriggerService
from hexflow.store.service_db import ServiceDb


class Service:
    def __init__(self, config: ServiceConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Settings that can be wrong are checked before anything is opened
        storage = config.storage or load_storage(config.home)
        globus_endpoints = endpoints(
            config.sfapi_endpoints, [m for m, _ in config.sfapi_machines], storage
        )
        self.db = ServiceDb(config.db_url)
        try:
            self.tokens = AccessTokens(
                load_signing_key(config.home), issuer=config.issuer, ttl=config.access_token_ttl
            )
        except BaseException:
            self.db.close()
            raise
        self.auth = Authenticator(self.db, self.tokens, cache_ttl=config.auth_cache_ttl)
        self.audit = Audit(self.db, clock)
        self.manager = RunManager(
            config.settings, self.db.writer, max_parallel=config.max_parallel_runs
        )
        self.runs = RunService(
            self.db,
            self.manager,
            self.audit,
            max_body_bytes=config.max_body_bytes,
            allow_python=config.python_workflows,
            clock=clock,
        )
        self.oauth = OAuthService(self.db, self.tokens, self.audit, clock)
        self.tasks = TaskService(self.db, self.runs, self.manager, self.audit)
        settings = config.settings
        local = LocalSite(
            config.site_name,
            cpus=settings.cpus,
            memory=settings.memory,
            gpus=settings.gpus,
            usage=self._usage,
            outages=config.outages,
        )
        self.sites = SiteRegistry([local])  # Slurm/Dask sites register here too
        self.site_events: SiteEvents | None = None
        if settings.sites is not None:  # the sites file's, with the engines' states
            from hexflow.flow.sites import monitor

            for site in monitored_sites(monitor(settings).status):
                self.sites.register(site)
            # site.state_changed events, whether or not a run is active (docs/sites.md)
            self.site_events = SiteEvents(
                self.db,
                monitor(settings).observe,
                {s.name: s.projects for s in settings.sites.sites},
                interval=settings.sites.check_interval
                if config.site_check_interval is None
                else config.site_check_interval,
                clock=clock,
            )
        machines = dict(config.sfapi_machines)
        self.sfapi = SfapiJobs(
            home=config.home,
            db=self.db,
            manager=self.manager,
            audit=self.audit,
            sites=self.sites,
            machines=machines,
            clock=clock,
        )
        self.sfapi_status = StatusViews(self.sites, machines)
        self.sfapi_account = AccountViews(self.db)
        self.sfapi_groups = SfapiGroups(self.db, self.audit, clock)
        # The event bus, functions and triggers; started on the app's loop (``start_events``).
        self.events = EventSystem(
            self.db,
            config.events,
            home=config.home,
            clock=clock,
            cwd=str(settings.workdir),
            storage=storage,
        )
        self.functions = FunctionService(
            self.db, self.events, self.manager, self.audit, clock=clock
        )
        self.triggers = TriggerService(self.events, self.audit)
        self.events.triggers.workflows = TriggerRuns(self.db, self.manager)
        self.event_log = EventService(self.events)
        self.data = DataService(config.db_url, storage, self.audit, clock=clock)
        self.sfapi_globus = GlobusTransfers(
            home=config.home,
            data=self.data,
            audit=self.audit,
            endpoints=globus_endpoints,
            clock=clock,
        )
        self.manager.task_hook = TaskData(config.db_url, storage)  # tasks' datasets
        # The lifecycle rules, applied on a schedule (docs/data.md)
        self.lifecycle = LifecycleSchedule(
            self.data, finished_runs(config.db_url), config.lifecycle_interval
        )
        # Long-lived service containers of projects, and their supervisor (docs/containers.md)
        roots = [str(r) for r in settings.allowed_mount_roots]
        self.services = ServiceContainers(self.db, self.audit, clock=clock, mount_roots=roots)
        self.services_supervisor = Supervisor(self.services)

    def _usage(self) -> Usage:
        cpus, gpus, running, waiting = self.db.runs.usage()
        return Usage(cpus, gpus, running, waiting, self.manager.queued, self.manager.active)

    def start(self) -> list[str]:
        """Start driving runs; returns the ids of the runs resumed after a restart."""
        self.db.start_checkpoints()
        self.services_supervisor.start()
        self.lifecycle.start()
        if self.site_events is not None:
            self.site_events.start()
        return self.manager.start(self.db if self.config.resume_on_start else None)

    def close(self) -> None:
        if self.site_events is not None:
            self.site_events.stop()
        self.services_supervisor.stop()
        self.lifecycle.stop()
        self.manager.stop()
        self.data.close()
        self.db.close()
