"""The data lifecycle: storage tiers, verified transfers, the dataset catalog with
provenance and search, lifecycle rules and RO-Crate export.

    from hexflow.data import open_data
    data = open_data(db_url, storage)           # storage: hexflow.data.load_storage(...)
    data.transfers.copy("qss:run1/", "pss:run1/")
    version, created = data.catalog.add("climate", "pss:run1", metadata={"title": "..."})

See docs/data.md. Layer: above store/ and executors/, below engine/, flow/ and service/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hexflow.data.catalog import Catalog, parse_ref
from hexflow.data.config import load_storage
from hexflow.data.copy import CopyPolicy
from hexflow.data.errors import (
    BackendError,
    DataError,
    DataInputError,
    DataNotFound,
    IntegrityError,
    QuotaExceeded,
    TransferFailed,
)
from hexflow.data.lifecycle import Action, evaluate, parse_rules
from hexflow.data.lifecycle_run import LifecycleRunner
from hexflow.data.tiers import Location, StorageConfig, TierSpec, parse_location, parse_storage
from hexflow.data.transfers import Progress, TransferManager
from hexflow.store.data_db import DataDb


@dataclass
class DataServices:
    """The catalog and the transfer manager of one project, on one database."""

    db: DataDb
    transfers: TransferManager
    catalog: Catalog

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> DataServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_data(
    db_url: str,
    storage: StorageConfig,
    *,
    project: str = "default",
    workers: int = 8,
    policy: CopyPolicy | None = None,
    clock: Callable[[], float] = time.time,
) -> DataServices:
    db = DataDb(db_url)
    transfers = TransferManager(
        db, storage, project=project, workers=workers, policy=policy, clock=clock
    )
    return DataServices(db, transfers, Catalog(db, transfers, clock=clock))


__all__ = [
    "Action",
    "BackendError",
    "Catalog",
    "CopyPolicy",
    "DataError",
    "DataInputError",
    "DataNotFound",
    "DataServices",
    "IntegrityError",
    "LifecycleRunner",
    "Location",
    "Progress",
    "QuotaExceeded",
    "StorageConfig",
    "TierSpec",
    "TransferFailed",
    "TransferManager",
    "evaluate",
    "load_storage",
    "open_data",
    "parse_location",
    "parse_ref",
    "parse_rules",
    "parse_storage",
]
