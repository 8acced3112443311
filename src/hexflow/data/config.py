"""Reading the storage settings file (YAML or JSON) at an entry point.

Where: ``--storage`` / ``HEXFLOW_STORAGE``, else ``$HEXFLOW_HOME/storage.yaml`` if it exists,
else the defaults (every tier a directory under ``$HEXFLOW_HOME/tiers``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hexflow.data.errors import DataInputError
from hexflow.data.tiers import StorageConfig, default_storage, parse_storage


def load_storage(home: Path, path: Path | None = None) -> StorageConfig:
    if path is None:
        candidate = home / "storage.yaml"
        if not candidate.exists():
            return default_storage(str(home))
        path = candidate
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataInputError(
            f"cannot read the storage settings {path}: {exc.strerror}",
            hint="check --storage / HEXFLOW_STORAGE",
        ) from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise DataInputError(f"{path}: not valid YAML/JSON: {exc}") from None
    return parse_storage(doc, home=str(home), source=str(path))
