"""TransferManager: plans, runs and resumes transfers between tiers (or local paths).

A transfer is planned (its files listed, quota checked) and persisted before any byte
moves; files are then copied in parallel by a pool of threads, each with ``copy_item``.
State is written in batches (group commit): an item is recorded DONE only after its
destination is published and synced, so after a crash ``resume`` redoes exactly the files
not recorded done, going on from their last checkpoint. Only one process drives a transfer
at a time (``owner``).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from hexflow.data.backends import Backend, open_backend
from hexflow.data.copy import CopyPolicy, ItemCallbacks, copy_item
from hexflow.data.errors import (
    BackendError,
    DataInputError,
    DataNotFound,
    QuotaExceeded,
    TransferFailed,
)
from hexflow.data.tiers import Location, StorageConfig, TierSpec, parse_location
from hexflow.errors import StoreError
from hexflow.model.resources import format_bytes
from hexflow.model.transfers import ItemState, TransferItem, TransferRecord, TransferState
from hexflow.store.data_db import DataDb


@dataclass(frozen=True, slots=True)
class Progress:
    transfer_id: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    failed: int


BackendFactory = Callable[[TierSpec | None], Backend]


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine: we cannot tell; its lease is taken over
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TransferManager:
    def __init__(
        self,
        db: DataDb,
        storage: StorageConfig,
        *,
        project: str = "default",
        workers: int = 8,
        policy: CopyPolicy | None = None,
        backends: BackendFactory | None = None,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.25,
    ) -> None:
        self.db = db
        self.storage = storage
        self.project = project
        self.workers = max(1, workers)
        self.policy = policy or CopyPolicy()
        self._backends = backends or (lambda tier: open_backend(tier))
        self._opened: dict[tuple[str, str] | None, Backend] = {}
        self.clock = clock
        self.flush_interval = flush_interval

    # ------------------------------------------------------------------ planning

    def backend(self, tier: TierSpec | None) -> Backend:
        key = None if tier is None else (tier.site, tier.name)
        if key not in self._opened:
            self._opened[key] = self._backends(tier)
        return self._opened[key]

    def locate(self, text: str, cwd: str | None = None) -> Location:
        return parse_location(text, self.storage, cwd or os.getcwd())

    def plan(
        self,
        source: str,
        destination: str,
        *,
        cwd: str | None = None,
        expected: dict[str, str] | None = None,
    ) -> TransferRecord:
        """List what to copy, check quota and capacity, persist the transfer (QUEUED).

        A file goes to the destination path, or into it when that is a directory or ends
        with '/'; a directory's files go under the destination with the same relative
        paths. ``expected`` maps a source-relative path to a digest known for it.
        """
        src_loc, dst_loc = self.locate(source, cwd), self.locate(destination, cwd)
        src, dst = self.backend(src_loc.tier), self.backend(dst_loc.tier)
        src_key, dst_key = src_loc.key(self.project), dst_loc.key(self.project)
        if src_loc.tier == dst_loc.tier and src_key.rstrip("/") == dst_key.rstrip("/"):
            raise DataInputError(
                f"{source} and {destination} are the same place",
                hint="give a different destination",
            )
        pairs: list[tuple[str, str, int, str]] = []  # src key, dst key, size, rel
        info = src.stat(src_key.rstrip("/"))
        if info is not None:
            name = src_key.rstrip("/").rsplit("/", 1)[-1]
            into = dst_loc.path.endswith("/") or dst_loc.path == "" or dst.is_dir(dst_key)
            target = f"{dst_key.rstrip('/')}/{name}" if into else dst_key
            pairs.append((info.key, target, info.size, name))
        elif src.is_dir(src_key.rstrip("/")):
            base = src_key.rstrip("/")
            for obj in src.list(base):
                rel = obj.key[len(base) + 1 :] if base else obj.key
                pairs.append((obj.key, f"{dst_key.rstrip('/')}/{rel}", obj.size, rel))
        else:
            raise DataNotFound(
                f"{source}: no such file or directory",
                hint="list a tier with `hexflow data ls TIER:`",
            )
        total = sum(p[2] for p in pairs)
        self._check_space(dst_loc, total)
        now = self.clock()
        rec = TransferRecord(
            id=secrets.token_hex(6),
            project=self.project,
            source=src_loc.text if src_loc.tier else src_loc.path,
            destination=dst_loc.text if dst_loc.tier else dst_loc.path,
            created_at=now,
            files_total=len(pairs),
            bytes_total=total,
            options={"src": _tier_ref(src_loc.tier), "dst": _tier_ref(dst_loc.tier)},
        )
        items = [
            TransferItem(
                transfer_id=rec.id,
                seq=i,
                src=s,
                dst=d,
                size=size,
                expected_hash=(expected or {}).get(rel),
            )
            for i, (s, d, size, rel) in enumerate(pairs)
        ]
        self.db.transfers.create(rec, items)
        return rec

    def _check_space(self, dst: Location, incoming: int) -> None:
        tier = dst.tier
        if tier is None:
            return
        quota = (
            self.storage.quota(self.project, tier.name) if tier.site == self.storage.site else None
        )
        backend = self.backend(tier)
        if quota is not None:
            used, _ = backend.usage(self.project)
            if used + incoming > quota:
                raise QuotaExceeded(
                    f"project {self.project} would use {format_bytes(used + incoming)} of its "
                    f"{format_bytes(quota)} quota on {tier.name} ({format_bytes(used)} used, "
                    f"{format_bytes(incoming)} to copy)",
                    hint=f"free space on {tier.name} (hexflow data usage) or ask for more quota",
                    project=self.project,
                    tier=tier.name,
                )
        if tier.capacity is not None:
            used, _ = backend.usage("")
            if used + incoming > tier.capacity:
                raise QuotaExceeded(
                    f"tier {tier.name} would hold {format_bytes(used + incoming)}, over its "
                    f"capacity of {format_bytes(tier.capacity)}",
                    hint="free space on the tier or pick another one",
                    tier=tier.name,
                )

    # ------------------------------------------------------------------ running

    def copy(
        self,
        source: str,
        destination: str,
        *,
        cwd: str | None = None,
        expected: dict[str, str] | None = None,
        progress: Callable[[Progress], None] | None = None,
    ) -> TransferRecord:
        rec = self.plan(source, destination, cwd=cwd, expected=expected)
        return self.run(rec.id, progress=progress)

    def resume(
        self, transfer_id: str, progress: Callable[[Progress], None] | None = None
    ) -> TransferRecord:
        return self.run(transfer_id, progress=progress)

    def run(
        self, transfer_id: str, progress: Callable[[Progress], None] | None = None
    ) -> TransferRecord:
        """Copy every file not done yet; raises ``TransferFailed`` if some could not be."""
        rec = self.get(transfer_id)
        if rec.state == TransferState.SUCCEEDED:
            return rec
        me = _owner()
        if rec.owner and rec.owner != me and _owner_alive(rec.owner):
            raise DataInputError(
                f"transfer {rec.id} is being run by process {rec.owner}",
                hint="wait for it, or stop that process first",
            )
        if not self.db.transfers.claim(rec.id, rec.owner, me):
            raise DataInputError(f"transfer {rec.id} was taken by another process just now")
        rec.owner = me
        src, dst = self._backends_of(rec)
        items = self.db.transfers.items(rec.id)
        todo = [it for it in items if it.state != ItemState.DONE]
        for it in todo:
            if it.state != ItemState.PENDING:
                it.set_state(ItemState.PENDING)
            it.attempts, it.error = 0, None
        if rec.state != TransferState.QUEUED:
            rec.set_state(TransferState.QUEUED)
        rec.set_state(TransferState.RUNNING)
        rec.started_at = rec.started_at or self.clock()
        rec.ended_at, rec.error = None, None
        rec.files_done = len(items) - len(todo)
        rec.bytes_done = sum(it.size for it in items if it.state == ItemState.DONE)
        self.db.transfers.save(rec, todo)
        run = _Run(self, rec, src, dst, todo, progress)
        try:
            run.execute()
        except BaseException:
            run.flush(final=True)
            rec.set_state(TransferState.QUEUED)  # interrupted: resumable
            rec.owner = None
            self._save_quietly(rec)
            raise
        failed = [it for it in todo if it.state == ItemState.FAILED]
        rec.ended_at = self.clock()
        rec.owner = None
        if failed:
            reasons = [f"{it.src}: {it.error}" for it in failed[:5]]
            rec.error = f"{len(failed)} of {rec.files_total} file(s) failed; first: {reasons[0]}"
            rec.set_state(TransferState.FAILED)
        else:
            rec.set_state(TransferState.SUCCEEDED)
        run.flush(final=True)
        if failed:
            raise TransferFailed(
                f"transfer {rec.id}: {rec.error}",
                hint=f"fix the cause, then `hexflow transfers {rec.id} --resume`; "
                "the source was not changed",
                transfer=rec.id,
                failed=len(failed),
                reasons=reasons,
            )
        return rec

    def _save_quietly(self, rec: TransferRecord) -> None:
        try:
            self.db.transfers.save(rec)
        except StoreError:
            pass

    def _backends_of(self, rec: TransferRecord) -> tuple[Backend, Backend]:
        ends = []
        for side in ("src", "dst"):
            ref = rec.options.get(side)
            tier = None if ref is None else self.storage.tier(ref["tier"], ref["site"])
            ends.append(self.backend(tier))
        return ends[0], ends[1]

    # ------------------------------------------------------------------ reading

    def get(self, transfer_id: str) -> TransferRecord:
        try:
            return self.db.transfers.get(transfer_id)
        except StoreError as exc:
            raise DataNotFound(exc.message, hint=exc.hint) from None

    def recent(self, limit: int = 50, all_projects: bool = False) -> list[TransferRecord]:
        return self.db.transfers.recent(None if all_projects else self.project, limit)

    def items(self, transfer_id: str) -> list[TransferItem]:
        return self.db.transfers.items(self.get(transfer_id).id)


def _tier_ref(tier: TierSpec | None) -> dict[str, str] | None:
    return None if tier is None else {"tier": tier.name, "site": tier.site}


class _Run(ItemCallbacks):
    """One run of a transfer: the thread pool, the shared counters and the group commit."""

    def __init__(
        self,
        manager: TransferManager,
        rec: TransferRecord,
        src: Backend,
        dst: Backend,
        todo: list[TransferItem],
        progress: Callable[[Progress], None] | None,
    ) -> None:
        self.m, self.rec, self.src, self.dst, self.todo = manager, rec, src, dst, todo
        self.progress = progress
        self.lock = threading.Lock()
        self.dirty: dict[int, TransferItem] = {}
        self.finished: list[TransferItem] = []  # done or failed since the last flush
        self.moving = 0  # bytes of files in flight
        self.failed = 0

    # callbacks from the worker threads
    def bytes_moved(self, item: TransferItem, delta: int) -> None:
        with self.lock:
            self.moving += delta

    def checkpointed(self, item: TransferItem, offset: int, state: dict[str, Any]) -> None:
        with self.lock:
            item.offset, item.resume = offset, state
            self.dirty[item.seq] = item

    def attempt_failed(self, item: TransferItem, error: BackendError) -> None:
        with self.lock:
            item.error = f"attempt {item.attempts}: {error.message}"
            self.dirty[item.seq] = item

    def _work(self, item: TransferItem) -> None:
        with self.lock:
            item.set_state(ItemState.COPYING)
        token = f"{self.rec.id}-{item.seq}"
        try:
            copy_item(item, self.src, self.dst, token=token, policy=self.m.policy, callbacks=self)
        except BackendError as exc:
            with self.lock:
                item.error = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
                item.set_state(ItemState.FAILED)
                self.finished.append(item)
            return
        with self.lock:
            self.finished.append(item)  # DONE once synced and recorded (flush)

    def execute(self) -> None:
        pool = ThreadPoolExecutor(self.m.workers, thread_name_prefix=f"transfer-{self.rec.id}")
        pending: set[Future[None]] = set()
        queue = list(reversed(self.todo))
        try:
            while queue or pending:
                while queue and len(pending) < self.m.workers * 4:
                    pending.add(pool.submit(self._work, queue.pop()))
                done, pending = wait(
                    pending, timeout=self.m.flush_interval, return_when=FIRST_COMPLETED
                )
                for fut in done:
                    fut.result()  # a bug of ours surfaces here
                self.flush()
        except BaseException:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    _last_flush = 0.0

    def flush(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last_flush < self.m.flush_interval:
            self._report()
            return
        self._last_flush = now
        with self.lock:
            finished, self.finished = self.finished, []
        ok = [it for it in finished if it.state != ItemState.FAILED]
        if ok:
            self.dst.sync()  # the published files are durable before they are recorded
        with self.lock:
            for it in ok:
                it.set_state(ItemState.DONE)
                it.error = None
                self.rec.files_done += 1
                self.rec.bytes_done += it.size
                self.moving -= it.size
            for it in finished:
                self.dirty[it.seq] = it
                if it.state == ItemState.FAILED:
                    self.failed += 1
            rows = list(self.dirty.values())
            self.dirty = {}
        self.m.db.transfers.save(self.rec, rows)
        self._report()

    def _report(self) -> None:
        if self.progress is None:
            return
        with self.lock:
            snapshot = Progress(
                transfer_id=self.rec.id,
                files_done=self.rec.files_done,
                files_total=self.rec.files_total,
                bytes_done=self.rec.bytes_done + max(0, self.moving),
                bytes_total=self.rec.bytes_total,
                failed=self.failed,
            )
        self.progress(snapshot)
