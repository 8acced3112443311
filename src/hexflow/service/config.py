"""ServiceConfig: the settings of ``hexflow server``, read once at the entry point (CLI or
test) and passed to ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hexflow.data.tiers import StorageConfig
from hexflow.events.config import EventsConfig
from hexflow.service.sites import SiteOutage
from hexflow.settings import Settings


@dataclass(frozen=True)
class ServiceConfig:
    settings: Settings  # home (signing key, run files) and the database URL
    access_token_ttl: int = 600  # seconds an OAuth access token lives (sfapi_client wants >= 120)
    # Seconds a validated credential is trusted without reading the database again: the
    # bound on how late a revocation or membership change takes effect (0: at once).
    auth_cache_ttl: float = 1.0
    max_parallel_runs: int = 4  # runs driven at once; more wait in a queue, state pending
    # The token URL(s) client assertions must name as ``aud``. Empty: the URL the request
    # came to (fine on one host; set it behind a proxy, as ``--token-url``).
    token_urls: tuple[str, ...] = ()
    max_body_bytes: int = 1 << 20  # largest workflow document accepted
    issuer: str = "hexflow"
    resume_on_start: bool = True
    # Accept Python workflows from the SDK (their tasks run code as the server's OS user,
    # like shell tasks; the server itself never unpickles them: docs/sdk.md).
    python_workflows: bool = True
    site_name: str = "local"  # the name of the server's own executor as a site
    # SFAPI facade (docs/sfapi.md): machine name -> site. sfapi_client accepts only its own
    # machine names (perlmutter, dtns, dtn01), so they map to the local site by default.
    sfapi_machines: tuple[tuple[str, str], ...] = (("perlmutter", "local"),)
    # SFAPI Globus endpoints: name -> "files" (the project directories) or TIER[@SITE].
    # None: the machines and "dtn" are "files", and every local tier is its own name.
    sfapi_endpoints: tuple[tuple[str, str], ...] | None = None
    outages: tuple[SiteOutage, ...] = ()  # announced outages (--outages FILE)
    events: EventsConfig = field(default_factory=EventsConfig)  # bus, functions, triggers
    # Storage tiers, quotas (docs/data.md); None: $HEXFLOW_HOME/storage.yaml or the defaults
    storage: StorageConfig | None = None
    # Seconds between two passes of the storage settings' lifecycle rules (0: never)
    lifecycle_interval: float = 3600.0
    # Seconds between two looks at the sites file's sites for site.state_changed events
    # (None: the sites file's check_interval; 0: never)
    site_check_interval: float | None = None
    # Once started, keep everything the server holds so far out of the cyclic garbage
    # collector's full passes (gc.freeze): they walked it all, ~80 ms each, a few times a
    # minute under load — the tail of the event path's latency. For a server process (the
    # CLI sets it); not for tests that start many apps in one process.
    freeze_gc: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def db_url(self) -> str:
        return self.settings.db_url
