"""Service mode: hexflow as a long-lived, multi-user server (``hexflow server``).

``create_app(ServiceConfig(...))`` builds the FastAPI app; ``Service`` wires the database,
keys, authentication, audit log and the run manager; ``Admin`` is what ``hexflow admin``
does. Layers: api/ (HTTP) -> service modules -> flow/engine/store.
"""

from hexflow.service.admin import Admin
from hexflow.service.config import ServiceConfig
from hexflow.service.core import Service

__all__ = ["Admin", "Service", "ServiceConfig"]
