"""FunctionPools: one warm WorkerPool (the local executor's) per function environment.

Functions whose environment (project, env, cpus, memory) is the same share a pool. A pool
starts ``min_workers`` workers; when every worker is busy and calls queue, it starts more,
up to ``max_workers``; workers idle for ``idle_after`` seconds beyond the minimum stop.
Everything runs on the gateway's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from hexflow.executors.local.pool import Answer, WorkerPool
from hexflow.model.functions import FunctionDef


class FunctionPools:
    def __init__(
        self,
        scratch_dir: str,
        on_answer: Callable[[Answer], None],
        on_lost: Callable[[int, str], None],
        *,
        idle_after: float = 30.0,
    ) -> None:
        self._scratch = scratch_dir
        self._on_answer = on_answer
        self._on_lost = on_lost
        self._idle_after = idle_after
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pools: dict[tuple[Any, ...], WorkerPool] = {}
        self._busy_at: dict[tuple[Any, ...], float] = {}  # last time a pool had queued calls
        self._limits: dict[tuple[Any, ...], tuple[int, int]] = {}
        self._of_token: dict[int, WorkerPool] = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def pool(self, fn: FunctionDef) -> WorkerPool:
        env = fn.environment
        pool = self._pools.get(env)
        if pool is None:
            assert self._loop is not None, "FunctionPools.start first"
            pool = WorkerPool(
                size=max(1, fn.min_workers),
                scratch_dir=self._scratch,
                on_answer=self._answered,
                on_lost=self._lost,
                max_size=fn.max_workers,
            )
            pool.start(self._loop)
            self._pools[env] = pool
            self._limits[env] = (fn.min_workers, fn.max_workers)
        return pool

    def submit(self, fn: FunctionDef, job: tuple[Any, ...]) -> str:
        pool = self.pool(fn)
        self._of_token[job[0]] = pool
        worker = pool.submit(job)
        if pool.queued:
            self._busy_at[fn.environment] = time.monotonic()
        return worker

    def kill(self, token: int, reason: str) -> bool:
        pool = self._of_token.get(token)
        return pool.kill(token, reason) if pool is not None else False

    def _answered(self, answer: Answer) -> None:
        self._of_token.pop(answer[0], None)
        self._on_answer(answer)

    def _lost(self, token: int, reason: str) -> None:
        self._of_token.pop(token, None)
        self._on_lost(token, reason)

    def shrink(self) -> int:
        """Stop workers idle beyond each pool's minimum once its burst is over."""
        now = time.monotonic()
        stopped = 0
        for env, pool in self._pools.items():
            if now - self._busy_at.get(env, 0.0) >= self._idle_after:
                stopped += pool.retire_idle(self._limits[env][0])
        return stopped

    def stats(self) -> list[dict[str, Any]]:
        return [
            {
                "project": env[0],
                "env": dict(env[1]),
                "workers": pool.idle + pool.busy,
                "busy": pool.busy,
                "queued": pool.queued,
                "min": self._limits[env][0],
                "max": self._limits[env][1],
            }
            for env, pool in self._pools.items()
        ]

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.shutdown()
        self._pools.clear()
        self._of_token.clear()
