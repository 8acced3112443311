"""Request and response bodies of the data API (storage, transfers, datasets, search):
what the OpenAPI document promises for docs/data.md's objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hexflow.model.datasets import LineageEdge, Replica, VersionRecord
from hexflow.model.transfers import TransferItem, TransferRecord


class TierUsageOut(BaseModel):
    tier: str
    site: str
    kind: str = Field(description="posix or s3")
    used: int = Field(description="bytes of the project in the tier")
    files: int
    quota: int | None = Field(None, description="the project's quota in bytes, if any")
    quota_used: float | None = Field(None, description="used / quota")
    capacity: int | None = Field(None, description="the tier's capacity in bytes, if set")


class StorageOut(BaseModel):
    project: str
    site: str
    tiers: list[TierUsageOut]


class TransferIn(BaseModel):
    source: str = Field(
        min_length=1, max_length=4096, description="TIER:PATH in your project (qss:run1/)"
    )
    destination: str = Field(
        min_length=1, max_length=4096, description="TIER:PATH; a file goes into a directory"
    )


class TransferItemOut(BaseModel):
    seq: int
    src: str
    dst: str
    size: int
    state: str
    hash: str | None
    attempts: int
    error: str | None

    @classmethod
    def of(cls, item: TransferItem) -> TransferItemOut:
        return cls(**item.summary())


class TransferOut(BaseModel):
    id: str
    project: str
    source: str
    destination: str
    state: str = Field(description="queued, running, succeeded or failed")
    created_at: float
    started_at: float | None
    ended_at: float | None
    files_total: int
    files_done: int
    bytes_total: int
    bytes_done: int
    error: str | None
    items: list[TransferItemOut] | None = Field(None, description="each file (GET one only)")

    @classmethod
    def of(cls, rec: TransferRecord, items: list[TransferItem] | None = None) -> TransferOut:
        s = rec.summary()
        s["id"] = s.pop("transfer_id")
        listed = [TransferItemOut.of(i) for i in items] if items is not None else None
        return cls(**s, items=listed)


class TransferPage(BaseModel):
    items: list[TransferOut]


class DatasetOut(BaseModel):
    name: str
    versions: int
    latest: int = Field(description="the newest version's number")
    created_at: float


class DatasetList(BaseModel):
    project: str
    items: list[DatasetOut]


class VersionOut(BaseModel):
    project: str
    name: str
    version: int
    ref: str = Field(description="NAME@N")
    digest: str = Field(description="content digest of the manifest (algo:hex)")
    pid: str = Field(description="persistent identifier")
    created_at: float
    size: int
    files: int
    metadata: dict[str, Any]

    @classmethod
    def of(cls, v: VersionRecord) -> VersionOut:
        return cls(**v.summary())


class DatasetDetail(BaseModel):
    project: str
    name: str
    versions: list[VersionOut]


class FileOut(BaseModel):
    path: str
    size: int
    hash: str


class ReplicaOut(BaseModel):
    site: str
    tier: str
    location: str = Field(description="directory inside the project's namespace of the tier")
    created_at: float
    last_read_at: float | None

    @classmethod
    def of(cls, r: Replica) -> ReplicaOut:
        s = r.summary()
        s.pop("ref")
        return cls(**s)


class VersionDetail(VersionOut):
    file_list: list[FileOut]
    replicas: list[ReplicaOut]


class RegisterIn(BaseModel):
    name: str = Field(min_length=1, max_length=128, description="dataset name")
    source: str = Field(
        min_length=1, max_length=4096, description="TIER:PATH of a file or directory"
    )
    tier: str | None = Field(
        None, description="copy the files (verified) into this tier; default: register in place"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="free JSON; title, creators, description, keywords, license... are checked",
    )
    inputs: list[str] = Field(
        default_factory=list, description="provenance: versions it was made from (NAME@N)"
    )


class RegisterOut(VersionOut):
    created: bool = Field(description="false: the dataset already had this exact content")


class EdgeOut(BaseModel):
    run_id: str
    task_id: str
    input: str | None = Field(description="NAME@N used, or null")
    output: str | None = Field(description="NAME@N generated, or null")
    depth: int = Field(description="task runs away from the version asked about")

    @classmethod
    def of(cls, e: LineageEdge) -> EdgeOut:
        return cls(**e.summary())


class LineageOut(BaseModel):
    ref: str
    direction: str
    edges: list[EdgeOut]


class SearchOut(BaseModel):
    project: str
    items: list[VersionOut]
