"""SQL of transfers: a transfer row and one row per file (item).

``save`` writes a batch of transfer and item changes in one transaction: the transfer
manager calls it once per flush (group commit), so per-file bookkeeping of thousands of small
files costs a few commits, and an item is recorded DONE only after its destination is
committed (renamed or completed), which is what makes a resume after a crash safe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update

from hexflow.errors import StoreError
from hexflow.model.transfers import ItemState, TransferItem, TransferRecord, TransferState
from hexflow.store.data_schema import transfer_items, transfers

if TYPE_CHECKING:
    from hexflow.store.data_db import DataDb

_ITEM_MUTABLE = ("state", "hash", "offset", "attempts", "error", "resume")
_TRANSFER_MUTABLE = (
    "state",
    "started_at",
    "ended_at",
    "owner",
    "files_total",
    "files_done",
    "bytes_total",
    "bytes_done",
    "error",
)


def _transfer_row(rec: TransferRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "project": rec.project,
        "source": rec.source,
        "destination": rec.destination,
        "state": rec.state.value,
        "created_at": rec.created_at,
        "started_at": rec.started_at,
        "ended_at": rec.ended_at,
        "owner": rec.owner,
        "files_total": rec.files_total,
        "files_done": rec.files_done,
        "bytes_total": rec.bytes_total,
        "bytes_done": rec.bytes_done,
        "error": rec.error,
        "options": json.dumps(rec.options, sort_keys=True),
    }


def _transfer(row: Any) -> TransferRecord:
    return TransferRecord(
        id=row.id,
        project=row.project,
        source=row.source,
        destination=row.destination,
        state=TransferState(row.state),
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        owner=row.owner,
        files_total=row.files_total,
        files_done=row.files_done,
        bytes_total=row.bytes_total,
        bytes_done=row.bytes_done,
        error=row.error,
        options=json.loads(row.options),
    )


def _item_row(item: TransferItem) -> dict[str, Any]:
    return {
        "transfer_id": item.transfer_id,
        "seq": item.seq,
        "src": item.src,
        "dst": item.dst,
        "size": item.size,
        "state": item.state.value,
        "hash": item.hash,
        "expected_hash": item.expected_hash,
        "offset": item.offset,
        "attempts": item.attempts,
        "error": item.error,
        "resume": json.dumps(item.resume, sort_keys=True),
    }


def _item(row: Any) -> TransferItem:
    return TransferItem(
        transfer_id=row.transfer_id,
        seq=row.seq,
        src=row.src,
        dst=row.dst,
        size=row.size,
        state=ItemState(row.state),
        hash=row.hash,
        expected_hash=row.expected_hash,
        offset=row.offset,
        attempts=row.attempts,
        error=row.error,
        resume=json.loads(row.resume),
    )


class TransferSql:
    def __init__(self, db: DataDb) -> None:
        self._db = db
        t, i = transfers, transfer_items
        self._update_transfer = (
            update(t)
            .where(t.c.id == bindparam("b_id"))
            .values({c: bindparam(c) for c in _TRANSFER_MUTABLE})
        )
        self._update_item = (
            update(i)
            .where(i.c.transfer_id == bindparam("b_tid"), i.c.seq == bindparam("b_seq"))
            .values({c: bindparam(c) for c in _ITEM_MUTABLE})
        )

    def create(self, rec: TransferRecord, items: Sequence[TransferItem]) -> None:
        with self._db.write() as conn:
            conn.execute(insert(transfers), [_transfer_row(rec)])
            if items:
                conn.execute(insert(transfer_items), [_item_row(it) for it in items])

    def save(self, rec: TransferRecord | None = None, items: Sequence[TransferItem] = ()) -> None:
        with self._db.write() as conn:
            if rec is not None:
                row = _transfer_row(rec)
                params = {c: row[c] for c in _TRANSFER_MUTABLE}
                params["b_id"] = rec.id
                conn.execute(self._update_transfer, [params])
            if items:
                rows = []
                for it in items:
                    row = _item_row(it)
                    params = {c: row[c] for c in _ITEM_MUTABLE}
                    params["b_tid"], params["b_seq"] = it.transfer_id, it.seq
                    rows.append(params)
                conn.execute(self._update_item, rows)

    def claim(self, transfer_id: str, expected_owner: str | None, owner: str) -> bool:
        """Set the owner if it is still ``expected_owner`` (atomic)."""
        seen = (
            transfers.c.owner.is_(None)
            if expected_owner is None
            else transfers.c.owner == expected_owner
        )
        with self._db.write() as conn:
            result = conn.execute(
                update(transfers).where(transfers.c.id == transfer_id, seen).values(owner=owner)
            )
            return bool(result.rowcount == 1)

    def get(self, transfer_id: str) -> TransferRecord:
        with self._db.read() as conn:
            rows = conn.execute(
                select(transfers).where(transfers.c.id.startswith(transfer_id)).limit(2)
            ).all()
        exact = [r for r in rows if r.id == transfer_id]
        if exact:
            return _transfer(exact[0])
        if not rows:
            raise StoreError(
                f"no transfer {transfer_id!r}",
                hint="list transfers with `hexflow transfers`",
            )
        if len(rows) > 1:
            raise StoreError(
                f"transfer id {transfer_id!r} is ambiguous", hint="give more characters"
            )
        return _transfer(rows[0])

    def recent(self, project: str | None = None, limit: int = 50) -> list[TransferRecord]:
        query = select(transfers).order_by(transfers.c.created_at.desc()).limit(limit)
        if project is not None:
            query = query.where(transfers.c.project == project)
        with self._db.read() as conn:
            return [_transfer(r) for r in conn.execute(query)]

    def items(self, transfer_id: str) -> list[TransferItem]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(transfer_items)
                .where(transfer_items.c.transfer_id == transfer_id)
                .order_by(transfer_items.c.seq)
            )
            return [_item(r) for r in rows]
