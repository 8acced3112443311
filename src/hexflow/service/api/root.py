"""Public routes: the root page (a placeholder for the dashboard) and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter()

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hexflow</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>hexflow</h1>
<p>A workflow service for HPC facilities. The dashboard will live here.</p>
<ul>
<li><a href="/docs">API documentation</a> (interactive)</li>
<li><a href="/redoc">API reference</a></li>
<li><a href="/openapi.json">OpenAPI document</a></li>
<li><a href="/metrics">Prometheus metrics</a></li>
</ul>
</body></html>
"""


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
def root() -> str:
    return _PAGE


@router.get("/metrics", tags=["service"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics (text format); public, holds no project data."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
