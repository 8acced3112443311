"""The OpenAPI document is the API's contract: a snapshot (tests/data/openapi.json) guards
it against unintended changes. After an intended change, regenerate it with
``HEXFLOW_UPDATE_OPENAPI=1 pytest tests/test_service_openapi.py`` and review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hexflow.service.api import PUBLIC_PATHS, create_app
from tests.service_env import make_config

SNAPSHOT = Path(__file__).parent / "data" / "openapi.json"


def _document(tmp_path: Path) -> dict:
    app = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}"))
    return app.openapi()


def test_openapi_matches_the_snapshot(tmp_path: Path) -> None:
    doc = _document(tmp_path)
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if os.environ.get("HEXFLOW_UPDATE_OPENAPI"):
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), "no snapshot: run with HEXFLOW_UPDATE_OPENAPI=1 to write it"
    assert json.loads(SNAPSHOT.read_text()) == doc, (
        "the OpenAPI document changed; if intended, regenerate tests/data/openapi.json "
        "with HEXFLOW_UPDATE_OPENAPI=1 and review the diff"
    )
    assert not (tmp_path / "unused.db").exists()  # building the app opens nothing


def test_private_routes_declare_bearer_auth_and_errors(tmp_path: Path) -> None:
    doc = _document(tmp_path)
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path in PUBLIC_PATHS:
                assert "security" not in op, (method, path)
                continue
            assert op["security"] == [{"HTTPBearer": []}], (method, path)
            assert {"401", "403", "404", "422"} <= set(op["responses"]), (method, path)
    submit = doc["paths"]["/api/v1/runs"]["post"]
    assert set(submit["requestBody"]["content"]) == {"application/yaml", "application/json"}
    assert any(p["name"] == "Idempotency-Key" for p in submit["parameters"])
