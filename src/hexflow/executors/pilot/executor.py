"""PilotExecutor: many small tasks through a few allocations (pilot jobs), not one batch job
each.

The engine's side of the channel (``channel``): ``submit`` writes a task into the queue;
pilots (``agent``) started through a ``Provider`` (Slurm, or local processes) claim tasks
that fit them and report back; one poll loop turns their reports into ``TaskStarted`` /
``TaskEnded``. A scaling loop, every ``scale_interval``, asks the provider about its
allocations (one call for all), checks heartbeats and applies the elastic rule
(``strategy.scale``): pilots are added while the queue needs them, pending ones withdrawn
when it empties, and idle ones leave by themselves.

A pilot whose heartbeat stops for ``heartbeat_timeout``, or whose allocation ends without
its goodbye, is dead: its allocation is cancelled (so a hung pilot cannot finish a task
twice) and each task it held ends ``pilot_lost``, which the engine requeues without
charging a retry. A task no pilot could ever take (larger than a pilot, or longer than a
pilot's walltime) fails at submission with ``launch_failed``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from hexflow.errors import ExecutorError
from hexflow.executors.base import Launch, Report, TaskEnded, TaskStarted
from hexflow.executors.pilot.agent import BOOT
from hexflow.executors.pilot.channel import (
    CLAIMED,
    CTL,
    ENDED,
    OUT,
    PILOTS,
    QUEUE,
    STARTED,
    TASK,
    Channel,
    task_key,
)
from hexflow.executors.pilot.provider import ENDED as JOB_ENDED
from hexflow.executors.pilot.provider import PENDING as JOB_PENDING
from hexflow.executors.pilot.provider import Block, LocalProvider, Provider
from hexflow.executors.pilot.strategy import PilotView, scale
from hexflow.model import Resources

log = logging.getLogger("hexflow.executors.pilot")


@dataclass(frozen=True)
class PilotConfig:
    """``channel_dir`` must be on a file system the pilots' nodes share with the engine."""

    channel_dir: str = ".hexflow/pilots"
    cpus: int = 1  # per pilot: one node's share the allocation asks for
    memory: int = 0  # per pilot, bytes; 0: the provider's default (tasks' memory unchecked)
    gpus: int = 0
    walltime: float = 1800.0  # of each allocation
    min_pilots: int = 0
    max_pilots: int = 4
    idle_timeout: float = 30.0  # a pilot with no work this long leaves
    heartbeat_timeout: float = 15.0  # a pilot silent this long is dead
    task_walltime: float = 600.0  # what a task without a time limit is taken to need
    backlog: float = 2.0  # tasks handed over ahead of the pilots' cpus (x max_pilots*cpus)
    poll_interval: float = 0.05  # seconds between two looks at the pilots' reports
    scale_interval: float = 1.0
    kill_grace: float = 5.0
    python: str = field(default=sys.executable)

    @property
    def margin(self) -> float:  # as the agent's
        return min(max(2.0, 0.02 * self.walltime), self.walltime / 4)


@dataclass(eq=False)
class _Pilot:
    name: str
    job: str | None = None
    state: str = "pending"  # pending | active | draining | gone
    ends_at: float = math.inf
    cpus: float = 0.0
    beat: bytes | None = None
    beat_seen: float = 0.0  # monotonic time the heartbeat last changed
    held: set[int] = field(default_factory=set)  # tokens it claimed


@dataclass(eq=False)
class _Task:
    launch: Launch
    key: str
    cpus: float
    seconds: float  # what it needs, for the walltime rule and the scaling rule
    pilot: str | None = None  # who claimed it
    asked: str | None = None  # cancelled | preempted, when the engine asked


class PilotExecutor:
    name = "pilot"
    places_work = True  # pilots pull the tasks that fit them

    def __init__(self, config: PilotConfig | None = None, provider: Provider | None = None) -> None:
        self.config = config or PilotConfig()
        self.provider: Provider = provider or LocalProvider()
        cfg = self.config
        ahead = max(1.0, cfg.backlog)
        self.capacity = Resources(
            cpus=ahead * cfg.max_pilots * cfg.cpus,
            memory=int(ahead * cfg.max_pilots * cfg.memory) if cfg.memory else 2**62,
            gpus=int(ahead * cfg.max_pilots * cfg.gpus),
        )
        self.channel = Channel(os.path.join(cfg.channel_dir, uuid.uuid4().hex[:8]))
        self._tasks: dict[int, _Task] = {}
        self._pilots: dict[str, _Pilot] = {}
        self._count = 0
        self._seq = 0
        self._report: Report | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ protocol
    def start(self, loop: asyncio.AbstractEventLoop, report: Report) -> None:
        self._loop = loop
        self._report = report
        self.channel.create()
        self._spawn(self._poll_forever())
        self._spawn(self._scale_forever())

    def submit(self, launch: Launch) -> None:
        cfg = self.config
        spec = launch.spec
        need = spec.resources
        limit = spec.time_limit
        seconds = limit[0] if limit is not None else cfg.task_walltime
        usable = cfg.walltime - cfg.margin
        if (
            need.nodes > 1
            or need.cpus > cfg.cpus
            or need.gpus > cfg.gpus
            or (cfg.memory and need.memory > cfg.memory)
        ):
            raise ExecutorError(
                f"task {spec.name!r} asks for {need.describe()} but a pilot has "
                f"{Resources(cpus=cfg.cpus, memory=cfg.memory, gpus=cfg.gpus).describe()} "
                "on one node",
                hint="raise the pilot size (cpus/memory/gpus of the pilot site), or run it "
                "on a Slurm site as a job of its own",
                task=spec.id,
            )
        if seconds > usable:
            which = "time limit" if limit is not None else "assumed duration (no time limit)"
            raise ExecutorError(
                f"task {spec.name!r} needs {seconds:g} s ({which}) but a pilot takes work "
                f"for at most {usable:g} s of its {cfg.walltime:g} s walltime",
                hint="raise the pilots' walltime, or give the task a shorter walltime",
                task=spec.id,
            )
        self._seq += 1
        rank = 99 - min(99, max(0, spec.qos.priority // 10))  # higher classes sort first
        key = task_key(rank, self._seq, launch.token, need.cpus, need.gpus, need.memory, seconds)
        self.channel.put(self.channel.path(QUEUE, key + TASK), launch)
        self._tasks[launch.token] = _Task(launch, key, need.cpus, seconds)

    def cancel(self, token: int, reason: str = "cancelled") -> None:
        self._stop(token, reason, reason)

    def preempt(self, token: int, grace: float) -> None:
        self._stop(token, "preempted", f"preempt {grace:g}")

    def withdraw(self, token: int) -> bool:
        """Take a task back if no pilot has claimed it (it never started): True if so."""
        task = self._tasks.get(token)
        if task is None or task.pilot is not None or not self.channel.withdraw(task.key):
            return False
        del self._tasks[token]
        return True

    def reap(self, worker: str) -> bool:
        """Cancel the allocation of a pilot a previous engine left (``pilot:<name>@<job>``)."""
        kind, _, rest = worker.partition(":")
        if kind != "pilot" or "@" not in rest:
            return False
        job = rest.rpartition("@")[2]
        try:
            self.provider.cancel([job])
        except Exception as exc:  # noqa: BLE001 - best effort, as the Slurm executor's
            log.warning("could not cancel pilot job %s left by a previous engine: %s", job, exc)
        return True

    def shutdown(self) -> None:
        for job in list(self._jobs):
            job.cancel()
        self._jobs.clear()
        for pilot in self._pilots.values():
            if pilot.state != "gone":
                self._touch(pilot.name, ".stop")
        jobs = [p.job for p in self._pilots.values() if p.job and p.state != "gone"]
        if jobs:  # nothing of the run outlives its engine
            try:
                self.provider.cancel(jobs)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not cancel pilot jobs %s: %s", " ".join(jobs), exc)
        self._tasks.clear()
        self._pilots.clear()
        shutil.rmtree(self.channel.root, ignore_errors=True)

    # ------------------------------------------------------------------ stopping
    def _stop(self, token: int, reason: str, request: str) -> None:
        task = self._tasks.get(token)
        if task is None:
            return
        task.asked = task.asked or reason
        if task.pilot is None and self.channel.withdraw(task.key):
            message = "cancelled by request" if reason == "cancelled" else reason
            self._end(
                TaskEnded(token, ok=False, ended_at=time.time(), reason=reason, error=message)
            )
            return
        # a pilot holds it (or is claiming it right now): ask it
        self.channel.write(self.channel.path(CTL, str(token)), request.encode())

    # ------------------------------------------------------------------ reports
    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval)
            try:
                messages = await asyncio.to_thread(self._read_out)
            except Exception:  # noqa: BLE001 - a bad poll must not stop the next ones
                log.exception("reading the pilots' reports failed")
                continue
            for name, message in messages:
                self._handle(name, message)

    def _read_out(self) -> list[tuple[str, Any]]:
        out = self.channel.path(OUT)
        names = sorted(
            (n for n in os.listdir(out) if n.endswith((STARTED, ENDED))),
            key=lambda n: (not n.endswith(STARTED), n),  # starts before ends
        )
        messages = []
        for name in names:
            message = self.channel.take(os.path.join(out, name))
            if message is not None:
                messages.append((name, message))
        return messages

    def _handle(self, name: str, message: Any) -> None:
        if name.endswith(STARTED):
            token = int(message["token"])
            task = self._tasks.get(token)
            pilot = self._pilots.get(message["pilot"])
            if task is None:
                return
            task.pilot = message["pilot"]
            if pilot is not None:
                pilot.held.add(token)
            assert self._report is not None
            worker = f"pilot:{message['pilot']}@{message['job']}"
            self._report(TaskStarted(token, worker, float(message["at"]), persist=True))
            return
        event: TaskEnded = message
        task = self._tasks.get(event.token)
        if task is not None and task.pilot is not None and task.pilot in self._pilots:
            self._pilots[task.pilot].held.discard(event.token)
        self._end(event)

    def _end(self, event: TaskEnded) -> None:
        task = self._tasks.pop(event.token, None)
        if task is None:
            return
        try:
            os.unlink(self.channel.path(CTL, str(event.token)))
        except FileNotFoundError:
            pass
        if task.asked is not None and not event.ok and event.reason != "pilot_lost":
            event.reason = task.asked
        assert self._report is not None
        self._report(event)

    # ------------------------------------------------------------------ scaling
    async def _scale_forever(self) -> None:
        while True:
            try:
                await self._scale_once()
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("scaling the pilots failed")
            await asyncio.sleep(self.config.scale_interval)

    async def _scale_once(self) -> None:
        await asyncio.to_thread(self._look_at_pilots)
        jobs = [p.job for p in self._pilots.values() if p.job and p.state != "gone"]
        status = await asyncio.to_thread(self.provider.status, jobs) if jobs else {}
        now, mono = time.time(), time.monotonic()
        cfg = self.config
        for pilot in list(self._pilots.values()):
            if pilot.state == "gone" or pilot.job is None:
                continue
            state = status.get(pilot.job, JOB_ENDED)
            silent = pilot.state != "pending" and mono - pilot.beat_seen > cfg.heartbeat_timeout
            if state == JOB_ENDED:
                self._gone(pilot, "its allocation ended" if pilot.held else None)
            elif silent:
                self._gone(pilot, f"sent no heartbeat for {cfg.heartbeat_timeout:g} s", cancel=True)
            elif state == JOB_PENDING and pilot.state == "active":
                pass  # the provider lags behind the pilot's hello
        queued = [(t.cpus, t.seconds) for t in self._tasks.values() if t.pilot is None]
        views = [
            PilotView(
                p.name,
                p.state,
                p.cpus,
                free_cpus=max(0.0, p.cpus - sum(self._cpus(t) for t in p.held)),
                remaining=p.ends_at - now,
            )
            for p in self._pilots.values()
            if p.state != "gone"
        ]
        decision = scale(
            queued, views, cpus=cfg.cpus, min_pilots=cfg.min_pilots, max_pilots=cfg.max_pilots
        )
        for name in decision.withdraw:
            extra = self._pilots.get(name)
            if extra is not None and extra.job is not None:
                self._gone(extra, None, cancel=True)
        for _ in range(decision.submit):
            self._spawn(self._start_pilot())

    def _cpus(self, token: int) -> float:
        task = self._tasks.get(token)
        return task.cpus if task is not None else 0.0

    def _look_at_pilots(self) -> None:
        """Hellos, heartbeats and goodbyes (blocking: a few small files)."""
        mono = time.monotonic()
        for pilot in self._pilots.values():
            if pilot.state == "gone":
                continue
            if pilot.state == "pending":
                hello = self._read_json(pilot.name, ".json")
                if hello is None:
                    continue
                pilot.state = "active"
                pilot.ends_at = float(hello["ends_at"])
                pilot.cpus = float(hello["cpus"])
                pilot.beat_seen = mono
            beat = self.channel.heartbeat(pilot.name)
            if beat != pilot.beat:
                pilot.beat, pilot.beat_seen = beat, mono
            if os.path.exists(self.channel.path(PILOTS, pilot.name + ".bye")):
                pilot.state = "draining"  # it left; its allocation ends with it

    def _read_json(self, name: str, suffix: str) -> dict[str, Any] | None:
        try:
            with open(self.channel.path(PILOTS, name + suffix)) as f:
                value: dict[str, Any] = json.load(f)
                return value
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    async def _start_pilot(self) -> None:
        cfg = self.config
        self._count += 1
        name = f"p{self._count}"
        pilot = _Pilot(name, cpus=float(cfg.cpus))
        os.makedirs(self.channel.path(CLAIMED, name), mode=0o700, exist_ok=True)
        argv = [
            cfg.python,
            "-c",
            BOOT,
            "--channel",
            self.channel.root,
            "--name",
            name,
            "--cpus",
            str(cfg.cpus),
            "--memory",
            str(cfg.memory),
            "--gpus",
            str(cfg.gpus),
            "--walltime",
            f"{cfg.walltime:g}",
            "--idle-timeout",
            f"{cfg.idle_timeout:g}",
            "--task-walltime",
            f"{cfg.task_walltime:g}",
            "--kill-grace",
            f"{cfg.kill_grace:g}",
        ]
        env = {"HEXFLOW_WORKER_PATH": os.pathsep.join(p for p in sys.path if p)}
        block = Block(
            name=name,
            cpus=cfg.cpus,
            memory=cfg.memory,
            gpus=cfg.gpus,
            walltime=cfg.walltime,
            log=self.channel.path(PILOTS, name + ".log"),
        )
        # known before it can report (the pilot learns its job id from the batch system,
        # SLURM_JOB_ID, or is a process whose pid is its job id)
        self._pilots[name] = pilot
        try:
            pilot.job = await asyncio.to_thread(self.provider.submit, block, argv, env)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.warning("could not start a pilot through %s: %s", self.provider.name, exc)
            pilot.state = "gone"

    def _gone(self, pilot: _Pilot, why: str | None, cancel: bool = False) -> None:
        """A pilot is over: cancel its allocation if asked; its tasks are requeued."""
        pilot.state = "gone"
        if cancel and pilot.job is not None:
            self._touch(pilot.name, ".stop")
            job = pilot.job
            self._spawn(asyncio.to_thread(self.provider.cancel, [job]))
        held = set(pilot.held) | {
            n.token for n in self.channel.claimed(pilot.name) if n.token in self._tasks
        }
        pilot.held.clear()
        for token in sorted(held):
            if token not in self._tasks:
                continue
            self._end(
                TaskEnded(
                    token,
                    ok=False,
                    ended_at=time.time(),
                    reason="pilot_lost",
                    error=f"pilot {pilot.name} (job {pilot.job}) {why or 'is gone'}: the "
                    "task is requeued",
                )
            )
        shutil.rmtree(self.channel.path(CLAIMED, pilot.name), ignore_errors=True)

    def _touch(self, name: str, suffix: str) -> None:
        try:
            self.channel.write(self.channel.path(PILOTS, name + suffix), b"")
        except OSError:
            pass

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        assert self._loop is not None
        job = self._loop.create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)


def pilot_config(**options: Any) -> PilotConfig:
    """A ``PilotConfig`` from a sites-file block or settings (unknown keys are refused)."""
    names = {
        "cpus": "cpus",
        "memory": "memory",
        "gpus": "gpus",
        "walltime": "walltime",
        "min_pilots": "min_pilots",
        "max_pilots": "max_pilots",
        "idle_timeout": "idle_timeout",
        "heartbeat_timeout": "heartbeat_timeout",
        "task_walltime": "task_walltime",
        "channel_dir": "channel_dir",
        "kill_grace": "kill_grace",
        "poll_interval": "poll_interval",
        "scale_interval": "scale_interval",
    }
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ExecutorError(f"unknown pilot option {unknown[0]!r}", hint=", ".join(sorted(names)))
    config = PilotConfig()
    values = {names[k]: v for k, v in options.items() if v is not None}
    for whole in ("cpus", "gpus", "memory", "min_pilots", "max_pilots"):
        if whole in values:
            values[whole] = int(values[whole])
    return replace(config, **values)


__all__ = ["PilotConfig", "PilotExecutor", "pilot_config"]
