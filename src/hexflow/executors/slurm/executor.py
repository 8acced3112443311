"""SlurmExecutor: each task is a Slurm job (or an element of a job array) that runs the
task through ``runner``; the batch system decides where and when (``places_work``).

Submissions made in one engine turn are batched: launches with the same sbatch request
become one job array. One ``squeue`` call per poll interval covers every job (never one
call per job); jobs that have left the controller's memory are looked up with one ``sacct``
call. A job's end becomes a ``TaskEnded`` from its final state and the runner's answer
(``outcome.ending``). The worker tag ``slurm:<job id>`` is reported (persisted) as soon as
sbatch returns, so a resumed run cancels a job its dead engine left in the queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import shutil
import sys
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any

from hexflow.errors import ContainerError, ExecutorError
from hexflow.executors.base import Launch, Report, TaskEnded, TaskStarted
from hexflow.executors.containers.builders import RUNTIMES, ContainerSetupError
from hexflow.executors.containers.planning import ContainerConfig, plan
from hexflow.executors.containers.request import ContainerCommand
from hexflow.executors.slurm import outcome
from hexflow.executors.slurm.commands import SlurmCommandError, SlurmCommands
from hexflow.executors.slurm.config import SlurmConfig
from hexflow.executors.slurm.parse import allocations
from hexflow.executors.slurm.runner import BOOT, read_answer
from hexflow.executors.slurm.script import (
    JobRequest,
    directives,
    job_name,
    render,
    request_for,
)
from hexflow.model import Resources, TaskKind

log = logging.getLogger("hexflow.executors.slurm")

# What the engine may hand out at once: the batch system, not hexflow, decides what runs.
UNBOUNDED = Resources(cpus=1e9, memory=2**62, gpus=1 << 30)
_TAIL = 4000


@dataclass(eq=False)
class _Job:
    launch: Launch
    stem: str  # path prefix of this attempt's files (job, answer)
    request: JobRequest
    spool: str = ""  # Slurm's output file for this job (its messages, the runner's failures)
    job_id: str | None = None  # 123, or 123_4 for an array element
    raw_id: str | None = None
    state: str = "SUBMITTING"
    requested: str | None = None  # cancelled | preempted, when the engine asked
    submitted: float = 0.0  # monotonic time sbatch returned
    unknown_polls: int = 0
    unanswered_polls: int = 0
    unconfirmed_since: float | None = None  # monotonic: NODE_FAIL seen, no answer yet
    container: ContainerCommand | None = None  # an image task: the runtime's line
    command: tuple[str, ...] = ()  # ... and the task's argv inside the image


class SlurmExecutor:
    name = "slurm"
    places_work = True

    def __init__(
        self,
        config: SlurmConfig | None = None,
        *,
        commands: SlurmCommands | None = None,
        containers: ContainerConfig | None = None,
    ) -> None:
        self.config = config or SlurmConfig()
        self.containers = containers or ContainerConfig()
        self.capacity = UNBOUNDED
        self._commands = commands or SlurmCommands(
            timeout=self.config.command_timeout, conf=self.config.conf
        )
        self._jobs: dict[int, _Job] = {}
        self._batch: list[_Job] = []
        self._flush_scheduled = False
        self._report: Report | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._submitting: asyncio.Semaphore | None = None
        self._cancelling: set[str] = set()  # scancel asked for, not done yet
        self._poll_now: asyncio.Event | None = None  # set: poll without waiting the interval

    # ------------------------------------------------------------------ protocol
    def start(self, loop: asyncio.AbstractEventLoop, report: Report) -> None:
        self._loop = loop
        self._report = report
        self._submitting = asyncio.Semaphore(4)  # sbatch calls at once
        self._poll_now = asyncio.Event()
        self._spawn(self._poll_forever())

    def submit(self, launch: Launch) -> None:
        assert self._loop is not None
        spec = launch.spec
        run_dir = os.path.join(os.path.abspath(self.config.job_dir), job_name(launch.run_id))
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        stem = os.path.join(
            run_dir, f"{job_name(spec.id, 100)}.{launch.attempt}.{uuid.uuid4().hex[:8]}"
        )
        job = _Job(launch=launch, stem=stem, request=self._request(launch))
        if spec.image:
            self._containerize(job)
            self._queue(job)
            return
        work = (
            launch.token,
            spec.kind.value,
            spec.payload,
            dict(launch.inputs),
            dict(launch.env),
            launch.cwd,
            launch.stdout,
            launch.stderr,
            launch.command or spec.command,
            spec.shell,
        )
        payload = {
            "job": work,
            "limit": spec.time_limit,
            "grace": self.config.kill_grace,
            "answer": f"{stem}.answer",
            "began": f"{stem}.began",
        }
        with open(f"{stem}.job", "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        self._queue(job)

    def _queue(self, job: _Job) -> None:
        assert self._loop is not None
        self._jobs[job.launch.token] = job
        self._batch.append(job)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def cancel(self, token: int, reason: str = "cancelled") -> None:
        self._stop(token, reason)

    def preempt(self, token: int, grace: float) -> None:
        """SIGTERM to the job (the runner passes it to a command, or sets a Python task's
        preemption notice), then ``scancel`` after ``grace``; reason ``preempted``."""
        job = self._jobs.get(token)
        if job is None:
            return
        if job.job_id is None:
            self._stop(token, "preempted")
            return
        assert self._loop is not None
        job.requested = job.requested or "preempted"
        self._cancel_jobs([job.job_id], signal="TERM")
        self._loop.call_later(grace, self._grace_over, job)

    def reap(self, worker: str) -> bool:
        """Cancel the job a previous engine left under the tag ``slurm:<job id>``."""
        kind, _, job_id = worker.partition(":")
        if kind != "slurm" or not job_id:
            return False
        try:
            self._commands.scancel([job_id])
        except SlurmCommandError as exc:
            log.warning("could not cancel Slurm job %s left by a previous engine: %s", job_id, exc)
            return False
        return True

    def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        left = sorted({j.job_id for j in self._jobs.values() if j.job_id} | self._cancelling)
        self._cancelling.clear()
        if left:  # nothing of the run outlives its engine, as on the local executor
            try:
                self._commands.scancel(left)
            except SlurmCommandError as exc:
                log.warning("could not cancel Slurm jobs %s: %s", " ".join(left), exc)
        self._jobs.clear()
        self._batch.clear()
        self._flush_scheduled = False

    # ------------------------------------------------------------------ submitting
    def _request(self, launch: Launch) -> JobRequest:
        spec = launch.spec
        if spec.kind not in (TaskKind.PYTHON, TaskKind.SHELL, TaskKind.SHELL_BUILDER):
            raise ExecutorError(f"the slurm executor cannot run {spec.kind.value} tasks")
        if getattr(spec, "image", None) and spec.kind is not TaskKind.SHELL:
            raise ExecutorError(
                f"task {spec.name!r} is a {spec.kind.value} task with a container image: the "
                "slurm executor runs only shell tasks in an image (its runner, a Python "
                "process, does not enter the image)",
                hint="make it a shell task, or run it on the local executor "
                "(HEXFLOW_EXECUTOR=local)",
                task=spec.id,
            )
        if getattr(spec, "image", None) and spec.resources.gpus:
            raise ExecutorError(
                f"task {spec.name!r} asks for GPUs in a container image: the slurm executor "
                "does not bind GPUs into containers yet",
                hint="run it on the local executor (HEXFLOW_EXECUTOR=local)",
                task=spec.id,
            )
        cfg = self.config
        limit = spec.time_limit
        partition = cfg.gpu_partition if spec.resources.gpus and cfg.gpu_partition else None
        request = request_for(
            spec.resources,
            name=f"hx-{spec.name}",
            time_limit=limit[0] if limit is not None else None,
            partition=partition or cfg.partition,
            qos=cfg.qos.get(spec.qos.value),
            account=cfg.account,
            tags=spec.tags,
        )
        worker_path = os.pathsep.join(p for p in sys.path if p)
        request = replace(
            request,
            chdir=os.path.abspath(self.config.job_dir),
            requeue=cfg.requeue,
            env={} if spec.image else {"HEXFLOW_WORKER_PATH": worker_path},
        )
        if spec.image:  # no runner: the container writes straight to the task's logs
            request = replace(request, output=launch.stdout, error=launch.stderr)
        directives(request)  # refuses unsafe values now: the task fails, not the batch
        return request

    def _containerize(self, job: _Job) -> None:
        """The runtime line of an image task (the site's runtime, as on the local executor:
        its resources, the run's directory mounted, ``--pull=never``, ``--init``, no network
        unless the site says so; the environment through the runtime's env file or
        variables, never the command line) and the task's argv in the image."""
        launch = job.launch
        spec = launch.spec
        assert spec.image is not None
        state_dir = f"{job.stem}.state"
        key = os.path.basename(job.stem)
        try:
            request = plan(
                self.containers,
                task=spec.id,
                image=spec.image,
                name=f"hexflow-{job_name(launch.run_id)}-{key}"[:200],
                workdir=launch.workdir or launch.cwd,
                cwd=launch.cwd,
                state_dir=state_dir,
                mounts=spec.mounts,
                env=dict(launch.env),
                cpus=spec.resources.cpus,
                memory=spec.resources.memory,
            )
            line = RUNTIMES[self.containers.runtime].build(request)
        except ContainerSetupError as exc:
            raise ContainerError(f"task {spec.id}: {exc}", task=spec.id) from exc
        command = launch.command or spec.command
        if not command:
            raise ExecutorError(f"task {spec.name!r} has no command to run", task=spec.id)
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        job.container = line
        job.command = ("/bin/sh", "-c", command[0]) if spec.shell else tuple(command)

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._batch = self._batch, []
        groups: dict[tuple[object, ...], list[_Job]] = {}
        for job in batch:
            if job.requested is None:  # not cancelled before it was submitted
                # an image task is a job of its own (its line and log files are its own)
                key = ("image", job.launch.token) if job.container else job.request.shape()
                groups.setdefault(key, []).append(job)
        size = max(1, self.config.max_array)
        for jobs in groups.values():
            for i in range(0, len(jobs), size):
                self._spawn(self._submit(jobs[i : i + size]))

    async def _submit(self, jobs: list[_Job]) -> None:
        try:
            path = self._write_script(jobs)
        except (ExecutorError, OSError) as exc:
            self._submit_failed(jobs, exc)
            return
        assert self._submitting is not None
        async with self._submitting:
            try:
                job_id = await asyncio.to_thread(self._commands.sbatch, path)
            except (SlurmCommandError, ExecutorError) as exc:
                self._submit_failed(jobs, exc)
                return
        now = time.time()
        submitted = time.monotonic()
        cancelled = []
        for i, job in enumerate(jobs):
            if self._jobs.get(job.launch.token) is not job:
                continue  # shut down meanwhile
            job.job_id = job_id if len(jobs) == 1 else f"{job_id}_{i}"
            job.state = "PENDING"
            job.submitted = submitted
            assert self._report is not None
            self._report(TaskStarted(job.launch.token, f"slurm:{job.job_id}", now, persist=True))
            if job.requested is not None:  # cancelled while sbatch ran
                cancelled.append(job.job_id)
        if cancelled:
            self._cancel_jobs(cancelled)

    def _write_script(self, jobs: list[_Job]) -> str:
        """The batch script of ``jobs`` (one job, or an array of them); its path."""
        first = jobs[0]
        command = [self.config.python, "-c", BOOT]
        stem = first.stem if len(jobs) == 1 else f"{first.stem}.array"
        if first.container is not None:  # the runtime's line, the task's argv after it
            script = render(
                first.request,
                first.command,
                container=first.container,
                state_dir=f"{first.stem}.state",
            )
        elif len(jobs) == 1:
            first.spool = f"{stem}.slurm"
            request = replace(first.request, output=first.spool)
            script = render(request, [*command, f"{first.stem}.job"])
        else:
            request = replace(
                first.request,
                name=f"hx-{first.launch.run_id}",
                array_size=len(jobs),
                output=f"{stem}.%a.slurm",
            )
            for i, job in enumerate(jobs):
                job.spool = f"{stem}.{i}.slurm"
            script = render(request, command, [f"{job.stem}.job" for job in jobs])
        path = f"{stem}.sh"
        with open(path, "w") as f:
            f.write(script)
        return path

    def _submit_failed(self, jobs: list[_Job], exc: Exception) -> None:
        transient = isinstance(exc, SlurmCommandError) and exc.transient
        for job in jobs:
            self._cleanup(job, keep_script=False)
            self._end(
                TaskEnded(
                    job.launch.token,
                    ok=False,
                    ended_at=time.time(),
                    reason="slurm_unavailable" if transient else "launch_failed",
                    error=f"Slurm did not accept the job: {exc}",
                    retryable=transient,
                )
            )

    # ------------------------------------------------------------------ stopping
    def _stop(self, token: int, reason: str) -> None:
        job = self._jobs.get(token)
        if job is None:
            return
        job.requested = job.requested or reason
        if job.job_id is not None:
            self._cancel_jobs([job.job_id])
        elif job in self._batch:  # not handed to sbatch yet: it ends here
            self._batch.remove(job)
            self._cleanup(job, keep_script=False)
            message = "cancelled by request" if reason == "cancelled" else "preempted"
            self._end(
                TaskEnded(token, ok=False, ended_at=time.time(), reason=reason, error=message)
            )
        # else: sbatch is running; _submit cancels the job when it returns

    def _grace_over(self, job: _Job) -> None:
        if self._jobs.get(job.launch.token) is job and job.job_id is not None:
            self._cancel_jobs([job.job_id])

    def _cancel_jobs(self, job_ids: list[str], signal: str | None = None) -> None:
        if signal is None:  # shutdown cancels them, should the drive end before scancel ran
            self._cancelling.update(job_ids)
        self._spawn(self._scancel(job_ids, signal))

    async def _scancel(self, job_ids: list[str], signal: str | None = None) -> None:
        try:
            await asyncio.to_thread(self._commands.scancel, job_ids, signal)
        except SlurmCommandError as exc:
            log.warning("scancel %s failed: %s", " ".join(job_ids), exc)
        finally:
            if signal is None:
                self._cancelling.difference_update(job_ids)
                waited = set(job_ids)  # ends still to report: now, not a poll later
                if self._poll_now is not None and any(
                    j.job_id in waited for j in self._jobs.values()
                ):
                    self._poll_now.set()

    # ------------------------------------------------------------------ polling
    async def _poll_forever(self) -> None:
        assert self._poll_now is not None
        while True:
            try:
                await asyncio.wait_for(self._poll_now.wait(), self.config.poll_interval)
            except TimeoutError:
                pass
            self._poll_now.clear()
            try:
                await self.poll()
            except Exception:  # noqa: BLE001 - a bad poll must not stop the next ones
                log.exception("polling Slurm failed")

    async def poll(self) -> None:
        """One round: one squeue for every job, one sacct for those squeue no longer knows."""
        started = time.monotonic()
        jobs = [j for j in self._jobs.values() if j.job_id is not None]
        if not jobs:
            return
        bases = sorted({j.job_id.split("_")[0] for j in jobs if j.job_id})
        try:
            entries = await asyncio.to_thread(self._commands.squeue, bases)
        except SlurmCommandError as exc:
            log.warning("squeue failed (trying again in %gs): %s", self.config.poll_interval, exc)
            return
        seen = {e.job_id: e for e in entries}
        unknown: list[_Job] = []
        for job in jobs:
            if self._jobs.get(job.launch.token) is not job or job.submitted > started:
                continue
            entry = seen.get(job.job_id or "")
            if entry is None:
                unknown.append(job)
                continue
            job.unknown_polls = 0
            job.state = entry.state
            if entry.raw_id and entry.raw_id.isdigit():
                job.raw_id = entry.raw_id
            if entry.state in outcome.ENDED:
                if job.container is not None and entry.state == "FAILED":
                    unknown.append(job)  # no runner's answer: its exit code from sacct
                    continue
                self._finish(job, entry.state)
            elif entry.state == "PENDING" and entry.reason in outcome.UNRUNNABLE:
                self._unrunnable(job, entry.reason)
        if unknown:
            await self._look_up(unknown)

    async def _look_up(self, jobs: list[_Job]) -> None:
        """Jobs squeue no longer lists: their end from sacct, or their answer alone."""
        ids = sorted(
            {j.job_id.split("_")[0] for j in jobs if j.job_id}
            | {j.raw_id for j in jobs if j.raw_id}
        )
        try:
            records = allocations(await asyncio.to_thread(self._commands.sacct, ids))
        except SlurmCommandError as exc:
            log.warning("sacct failed: %s", exc)
            records = {}
        for job in jobs:
            if self._jobs.get(job.launch.token) is not job:
                continue
            rec = records.get(job.job_id or "") or records.get(job.raw_id or "")
            if rec is not None and rec.state in outcome.ENDED:
                self._finish(job, rec.state, rec.exit_code, rec.signal)
                continue
            job.unknown_polls += 1
            if os.path.exists(f"{job.stem}.answer") or job.unknown_polls >= self.config.lost_after:
                ended = job.container is not None and job.state in outcome.ENDED
                self._finish(job, job.state if ended else "UNKNOWN", force=True)

    def _finish(
        self,
        job: _Job,
        state: str,
        exit_code: int | None = None,
        signal: int | None = None,
        force: bool = False,
    ) -> None:
        stored = read_answer(f"{job.stem}.answer")
        if job.container is not None:  # no runner: the answer is the container's exit code
            stored = outcome.container_answer(job.launch.token, state, exit_code, signal)
        elif stored is None and state in ("COMPLETED", "FAILED") and not force:
            # the runner answers before it exits; on a shared file system the file may take
            # a moment to show here
            job.unanswered_polls += 1
            if job.unanswered_polls < self.config.lost_after:
                return
        elif stored is None and state == "NODE_FAIL" and self._unconfirmed(job):
            return
        answer, runner_limit = stored if stored is not None else (None, None)
        self._collect_spool(job)
        event = outcome.ending(
            job.launch.token,
            state,
            answer,
            now=time.time(),
            limit=job.launch.spec.time_limit,
            runner_limit=runner_limit,
            requested=job.requested,
            exit_code=exit_code,
            signal=signal,
            stderr_tail=_tail(job.launch.stderr),
        )
        event.extra.setdefault("slurm_job", job.job_id)
        self._cleanup(job, keep_script=answer is None)
        self._end(event)

    def _unconfirmed(self, job: _Job) -> bool:
        """True while a job that reached its node (its ``.began`` file) is NODE_FAIL
        without the runner's answer. The controller declares NODE_FAIL at once (a node set
        DOWN: it does not wait for the node's word) and kills the job's processes
        afterwards, if the node still answers: until the runner answers (killed, or done),
        the command may still be running, and reporting the end now could run it twice,
        here and where it moves. Waits ``stop_wait`` seconds at most (a dead node never
        answers)."""
        if job.container is not None or not os.path.exists(f"{job.stem}.began"):
            return False
        now = time.monotonic()
        if job.unconfirmed_since is None:
            job.unconfirmed_since = now
            assert self._poll_now is not None
            self._spawn(self._poll_soon(job))
        return now - job.unconfirmed_since < self.config.stop_wait

    async def _poll_soon(self, job: _Job) -> None:
        """Polls faster while a job's answer is awaited (it comes within moments)."""
        assert self._poll_now is not None
        while self._jobs.get(job.launch.token) is job:
            await asyncio.sleep(min(0.2, self.config.poll_interval))
            if os.path.exists(f"{job.stem}.answer") or (
                time.monotonic() - (job.unconfirmed_since or 0.0) >= self.config.stop_wait
            ):
                self._poll_now.set()
                return

    def _unrunnable(self, job: _Job, reason: str) -> None:
        assert job.job_id is not None
        self._cancel_jobs([job.job_id])
        self._cleanup(job, keep_script=True)
        self._end(outcome.unrunnable(job.launch.token, job.job_id, reason, time.time()))

    def _collect_spool(self, job: _Job) -> None:
        """Slurm's own messages for the job (``*** JOB 12 CANCELLED ...``, a runner that
        could not start) go to the end of the task's stderr log."""
        try:
            with open(job.spool, "rb") as f:
                data = f.read()
            os.unlink(job.spool)
            if data:
                with open(job.launch.stderr, "ab") as err:
                    err.write(data)
        except OSError:
            pass

    def _cleanup(self, job: _Job, keep_script: bool) -> None:
        if job.container is not None:  # the runtime's env file
            shutil.rmtree(f"{job.stem}.state", ignore_errors=True)
        suffixes = [".job", ".answer", ".began"] + ([] if keep_script else [".sh"])
        for suffix in suffixes:
            try:
                os.unlink(job.stem + suffix)
            except OSError:
                pass

    def _end(self, event: TaskEnded) -> None:
        assert self._report is not None
        if self._jobs.pop(event.token, None) is not None:
            self._report(event)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _tail(path: str, limit: int = _TAIL) -> str | None:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode(errors="replace") or None
    except OSError:
        return None


__all__ = ["UNBOUNDED", "SlurmExecutor"]
