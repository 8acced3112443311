"""Transfers between storage tiers: records and the one state machine they move through.

A transfer goes QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED; an interrupted one
(crash) goes RUNNING → QUEUED and a failed one FAILED → QUEUED when it is resumed. Each file
of a transfer is an item: PENDING → COPYING → DONE | FAILED, COPYING → PENDING when an
attempt is lost or retried. Any other move raises ``InvalidTransition``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hexflow.errors import InvalidTransition


class TransferState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (TransferState.SUCCEEDED, TransferState.FAILED, TransferState.CANCELLED)


class ItemState(StrEnum):
    PENDING = "pending"
    COPYING = "copying"
    DONE = "done"
    FAILED = "failed"


_T = TransferState
TRANSFER_TRANSITIONS: dict[TransferState, frozenset[TransferState]] = {
    _T.QUEUED: frozenset({_T.RUNNING, _T.CANCELLED, _T.FAILED}),
    _T.RUNNING: frozenset({_T.SUCCEEDED, _T.FAILED, _T.CANCELLED, _T.QUEUED}),
    _T.SUCCEEDED: frozenset(),
    _T.FAILED: frozenset({_T.QUEUED}),  # resumed: the items not done are tried again
    _T.CANCELLED: frozenset({_T.QUEUED}),
}

_I = ItemState
ITEM_TRANSITIONS: dict[ItemState, frozenset[ItemState]] = {
    _I.PENDING: frozenset({_I.COPYING, _I.FAILED, _I.DONE}),  # DONE: found already there
    _I.COPYING: frozenset({_I.DONE, _I.FAILED, _I.PENDING}),
    _I.DONE: frozenset(),
    _I.FAILED: frozenset({_I.PENDING}),
}


def check_transfer_transition(
    transfer_id: str, current: TransferState, new: TransferState
) -> TransferState:
    """Return ``new`` if a transfer may move from ``current`` to it, else raise."""
    if new not in TRANSFER_TRANSITIONS[current]:
        raise InvalidTransition(
            f"transfer {transfer_id}: cannot go from {current.value} to {new.value}",
            hint="allowed next states are "
            + (", ".join(s.value for s in TRANSFER_TRANSITIONS[current]) or "none (terminal)"),
            transfer=transfer_id,
            current=current.value,
            new=new.value,
        )
    return new


def check_item_transition(item: str, current: ItemState, new: ItemState) -> ItemState:
    if new not in ITEM_TRANSITIONS[current]:
        raise InvalidTransition(
            f"transfer item {item}: cannot go from {current.value} to {new.value}",
            item=item,
            current=current.value,
            new=new.value,
        )
    return new


@dataclass(slots=True)
class TransferRecord:
    id: str
    project: str
    source: str  # "tier:path" or a local path, as the user gave it
    destination: str
    state: TransferState = TransferState.QUEUED
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    owner: str | None = None  # host:pid of the process driving it
    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    error: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def set_state(self, new: TransferState) -> None:
        self.state = check_transfer_transition(self.id, self.state, new)

    def summary(self) -> dict[str, Any]:
        return {
            "transfer_id": self.id,
            "project": self.project,
            "source": self.source,
            "destination": self.destination,
            "state": self.state.value,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "files_total": self.files_total,
            "files_done": self.files_done,
            "bytes_total": self.bytes_total,
            "bytes_done": self.bytes_done,
            "error": self.error,
        }


@dataclass(slots=True)
class TransferItem:
    transfer_id: str
    seq: int
    src: str  # key inside the source backend
    dst: str  # key inside the destination backend
    size: int
    state: ItemState = ItemState.PENDING
    hash: str | None = None  # "algo:hex" of the content, once verified
    expected_hash: str | None = None  # known beforehand (a catalog manifest): checked too
    offset: int = 0  # bytes durably written at the destination (resume point)
    attempts: int = 0
    error: str | None = None
    resume: dict[str, Any] = field(default_factory=dict)  # backend state: upload id, parts

    def set_state(self, new: ItemState) -> None:
        self.state = check_item_transition(f"{self.transfer_id}/{self.seq}", self.state, new)

    def summary(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "src": self.src,
            "dst": self.dst,
            "size": self.size,
            "state": self.state.value,
            "hash": self.hash,
            "attempts": self.attempts,
            "error": self.error,
        }
