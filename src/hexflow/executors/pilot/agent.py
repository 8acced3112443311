"""The pilot: runs inside an allocation, pulls tasks from the channel and runs them with
the local executor, within the allocation's resources and walltime.

A thread writes the heartbeat every second while the loop below is alive (it ticked in the
last ``STALL`` seconds): a frozen or dead pilot goes silent, a busy one does not. Loop
(every ``tick``, or at once when a task ends): obey the engine's requests (``ctl/``:
cancel, preempt; ``pilots/<me>.stop``: leave), and
claim queued tasks that fit what is free and *end before the allocation does* (a task's
time limit, or ``task_walltime`` for one without); report starts and ends to ``out/``.
Invariants: the resources of the tasks it runs never exceed its own; it never takes a task
whose time limit reaches past ``ends_at``; a task it had to stop (the allocation ending,
SIGTERM from the batch system) is reported ``pilot_lost``, which the engine requeues. It
leaves after ``idle_timeout`` without work, when asked, or at the end of its walltime.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from hexflow.executors.base import ExecutorEvent, Launch, TaskEnded
from hexflow.executors.local.executor import LocalExecutor
from hexflow.executors.pilot.channel import (
    CLAIMED,
    CTL,
    ENDED,
    OUT,
    PILOTS,
    STARTED,
    TASK,
    Channel,
    Need,
)

STALL = 60.0  # seconds without a turn of the loop after which the heartbeat stops


@dataclass(frozen=True)
class AgentConfig:
    channel: str
    name: str
    job: str
    cpus: float
    memory: int
    gpus: int
    walltime: float  # of the allocation, from the moment the pilot starts
    idle_timeout: float = 30.0
    task_walltime: float = 600.0  # what a task without a time limit is taken to need
    kill_grace: float = 5.0
    tick: float = 0.05

    @property
    def margin(self) -> float:
        """Seconds kept free at the end of the allocation: for stopping and reporting."""
        return min(max(2.0, 0.02 * self.walltime), self.walltime / 4)


class Pilot:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.channel = Channel(config.channel)
        self.started = time.time()
        self.ends_at = self.started + config.walltime - config.margin
        self.free_cpus, self.free_memory, self.free_gpus = (
            config.cpus,
            config.memory,
            config.gpus,
        )
        self.running: dict[int, Need] = {}
        self.stopping: dict[int, str] = {}  # token -> why the pilot itself stopped it
        self.draining = False
        self.leaving: str | None = None  # why it leaves
        self.executor = LocalExecutor(
            cpus=config.cpus,
            memory=config.memory or None,
            gpus=config.gpus,
            scratch_dir=self.channel.path("scratch", config.name),
            kill_grace=config.kill_grace,
        )
        self._wake: asyncio.Event | None = None
        self._listing: list[Need] = []
        self._listed_at = 0.0
        self._done = 0
        self._tick = time.monotonic()  # when the loop last went round
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ main loop
    async def run(self) -> str:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        os.makedirs(self.channel.path(CLAIMED, cfg.name), mode=0o700, exist_ok=True)
        self.executor.start(loop, self._report)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._terminated, sig)
        self._hello()
        beating = threading.Thread(target=self._beat, name="hexflow-pilot-beat", daemon=True)
        beating.start()
        idle_since = time.monotonic()
        try:
            while True:
                now = time.time()
                self._tick = time.monotonic()
                if not self.draining and os.path.exists(self._pilot_file(".stop")):
                    self._drain("asked to leave by the engine")
                self._control()
                hard_end = self.started + cfg.walltime - cfg.margin / 2
                if now >= hard_end and not self.stopping and self.running:
                    self._stop_all("reached the end of its allocation")
                if not self.draining and now < self.ends_at:
                    self._claim(now)
                if self.running:
                    idle_since = time.monotonic()
                elif self.draining:
                    break
                elif now >= self.ends_at:
                    self.leaving = "its allocation ends"
                    break
                elif time.monotonic() - idle_since >= cfg.idle_timeout:
                    self.leaving = f"no work for {cfg.idle_timeout:g} s"
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), cfg.tick)
                except TimeoutError:
                    pass
        finally:
            self._stopping.set()
            self.executor.shutdown()
            bye = {"reason": self.leaving or "left", "done": self._done, "at": time.time()}
            self.channel.write(self._pilot_file(".bye"), json.dumps(bye).encode())
        return self.leaving or "left"

    def _beat(self) -> None:
        beat = 0
        while not self._stopping.wait(1.0 if beat else 0.0):
            if time.monotonic() - self._tick > STALL:
                continue  # the loop is stuck: fall silent, the engine takes it for dead
            beat += 1
            try:
                self.channel.write(self._pilot_file(".beat"), str(beat).encode())
            except OSError:
                pass

    def _hello(self) -> None:
        cfg = self.config
        hello = {
            "name": cfg.name,
            "job": cfg.job,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "cpus": cfg.cpus,
            "memory": cfg.memory,
            "gpus": cfg.gpus,
            "started": self.started,
            "ends_at": self.ends_at,
        }
        self.channel.write(self._pilot_file(".json"), json.dumps(hello).encode())

    def _pilot_file(self, suffix: str) -> str:
        return self.channel.path(PILOTS, self.config.name + suffix)

    # ------------------------------------------------------------------ taking work
    def _claim(self, now: float) -> None:
        if self.free_cpus <= 0:
            return
        if not self._listing or time.monotonic() - self._listed_at > 0.5:
            self._listing = self.channel.queued()
            self._listed_at = time.monotonic()
        cfg = self.config
        left: list[Need] = []
        for need in self._listing:
            if need.token in self.running:
                continue
            fits = (
                need.cpus <= self.free_cpus + 1e-9
                and need.gpus <= self.free_gpus
                and (not cfg.memory or need.memory <= self.free_memory)
            )
            seconds = need.seconds if need.seconds is not None else cfg.task_walltime
            if not fits or now + seconds > self.ends_at:
                left.append(need)
                continue
            if self.channel.claim(need.key, cfg.name):
                self._start(need)
        self._listing = left

    def _start(self, need: Need) -> None:
        cfg = self.config
        path = self.channel.path(CLAIMED, cfg.name, need.key + TASK)
        with open(path, "rb") as f:
            launch: Launch = pickle.load(f)  # noqa: S301 - written by the engine, 0700 dir
        self.running[need.token] = need
        self.free_cpus -= need.cpus
        self.free_memory -= need.memory
        self.free_gpus -= need.gpus
        started = {"token": need.token, "pilot": cfg.name, "job": cfg.job, "at": time.time()}
        self.channel.put(self.channel.path(OUT, f"{need.token}{STARTED}"), started)
        try:
            self.executor.submit(launch)
        except Exception as exc:  # noqa: BLE001 - that task fails; the pilot goes on
            self._report(
                TaskEnded(
                    need.token,
                    ok=False,
                    ended_at=time.time(),
                    reason="launch_failed",
                    error=f"pilot {cfg.name} could not start it: {type(exc).__name__}: {exc}",
                    retryable=False,
                )
            )

    def _report(self, event: ExecutorEvent) -> None:
        if not isinstance(event, TaskEnded):
            return  # the start was reported when the task was claimed
        need = self.running.pop(event.token, None)
        if need is None:
            return
        self.free_cpus += need.cpus
        self.free_memory += need.memory
        self.free_gpus += need.gpus
        why = self.stopping.pop(event.token, None)
        if why is not None and not event.ok:
            event = TaskEnded(
                event.token,
                ok=False,
                ended_at=event.ended_at,
                reason="pilot_lost",
                error=f"pilot {self.config.name} (job {self.config.job}) {why}: the task was "
                "stopped and is requeued",
            )
        self._done += 1
        self.channel.put(self.channel.path(OUT, f"{event.token}{ENDED}"), event)
        try:
            os.unlink(self.channel.path(CLAIMED, self.config.name, need.key + TASK))
        except FileNotFoundError:
            pass
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ requests
    def _control(self) -> None:
        try:
            names = os.listdir(self.channel.path(CTL))
        except FileNotFoundError:
            return
        for name in names:
            if not name.isdigit() or int(name) not in self.running:
                continue
            path = self.channel.path(CTL, name)
            try:
                with open(path) as f:
                    request = f.read().strip()
                os.unlink(path)
            except FileNotFoundError:
                continue
            token = int(name)
            what, _, arg = request.partition(" ")
            if what == "preempt":
                self.executor.preempt(token, float(arg or 0))
            else:
                self.executor.cancel(token, what or "cancelled")

    def _drain(self, why: str) -> None:
        self.draining = True
        self.leaving = why

    def _stop_all(self, why: str) -> None:
        for token in list(self.running):
            self.stopping[token] = why
            self.executor.cancel(token, "pilot_lost")

    def _terminated(self, sig: int) -> None:
        """The batch system ends the allocation (time limit, scancel): stop and report."""
        name = signal.Signals(sig).name
        self._drain(f"received {name}")
        self._stop_all(f"received {name} from the batch system")
        if self._wake is not None:
            self._wake.set()


def parse_args(argv: Sequence[str]) -> AgentConfig:
    p = argparse.ArgumentParser(prog="python -m hexflow.executors.pilot")
    p.add_argument("--channel", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--job", default=os.environ.get("SLURM_JOB_ID") or str(os.getpid()))
    p.add_argument("--cpus", type=float, required=True)
    p.add_argument("--memory", type=int, default=0)
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument("--walltime", type=float, required=True)
    p.add_argument("--idle-timeout", type=float, default=30.0)
    p.add_argument("--task-walltime", type=float, default=600.0)
    p.add_argument("--kill-grace", type=float, default=5.0)
    a = p.parse_args(list(argv))
    return AgentConfig(
        channel=a.channel,
        name=a.name,
        job=a.job,
        cpus=a.cpus,
        memory=a.memory,
        gpus=a.gpus,
        walltime=a.walltime,
        idle_timeout=a.idle_timeout,
        task_walltime=a.task_walltime,
        kill_grace=a.kill_grace,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    why = asyncio.run(Pilot(config).run())
    print(f"pilot {config.name}: left ({why})", flush=True)
    return 0


BOOT = (
    "import os, sys; "
    "sys.path[:0] = [p for p in os.environ.pop('HEXFLOW_WORKER_PATH', '').split(os.pathsep) if p]; "
    "from hexflow.executors.pilot.agent import main; "
    "sys.exit(main())"
)

__all__ = ["BOOT", "AgentConfig", "Pilot", "main"]
