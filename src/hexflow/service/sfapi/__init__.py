"""The NERSC Superfacility API (v1.2) facade: what the official ``sfapi_client`` needs,
in hexflow's terms (docs/sfapi.md). ``sbatch`` and ``files`` are pure helpers; ``jobs``
maps jobs, commands and tasks to runs; ``views`` answers status, meta and account."""

from hexflow.service.sfapi.jobs import SfapiJobs
from hexflow.service.sfapi.views import AccountViews, StatusViews

__all__ = ["AccountViews", "SfapiJobs", "StatusViews"]
