"""The Python SDK of service mode: ``hexflow.Client(url, token=...)`` talks to a ``hexflow
server`` over its REST API (httpx, synchronous). It never imports server code.

``_http`` sends requests (retries, errors), ``_sse`` reads event streams, ``_client`` is
the API, ``_runs`` the handles whose futures resolve remotely, ``_functions`` functions,
invocations, triggers and the event log, ``_hooks`` signs webhooks, ``config`` the CLI's
token file.
"""

from hexflow.client._client import Client
from hexflow.client._functions import EventPage, Invocation
from hexflow.client._hooks import signed_headers, verify_callback
from hexflow.client._runs import RemoteFuture, RemoteRun

__all__ = [
    "Client",
    "EventPage",
    "Invocation",
    "RemoteFuture",
    "RemoteRun",
    "signed_headers",
    "verify_callback",
]
