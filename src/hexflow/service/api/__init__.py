"""The HTTP layer of service mode (FastAPI): thin adapters from requests to the service.

Routes validate input, call one service method, and shape the answer; ``errors.py`` is
the one place that turns hexflow errors into JSON error responses.
"""

from hexflow.service.api.app import PUBLIC_PATHS, create_app

__all__ = ["PUBLIC_PATHS", "create_app"]
