"""ShellLauncher: shell tasks as subprocesses, watched from the event loop with pidfds.

Commands run as argument lists, never through a shell unless the spec asks for one; each
runs in its own session so a kill (timeout, walltime, cancel) takes the whole process
group: SIGTERM first, SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psutil


@dataclass(eq=False)
class Child:
    token: int
    proc: subprocess.Popen[bytes]
    pidfd: int
    kill_reason: str | None = None


class ShellLauncher:
    def __init__(
        self, on_exit: Callable[[int, int, str | None], None], kill_grace: float = 5.0
    ) -> None:
        self._on_exit = on_exit
        self._grace = kill_grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._children: dict[int, Child] = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def launch(
        self,
        token: int,
        argv: tuple[str, ...],
        *,
        shell: bool,
        env: Mapping[str, str],
        cwd: str,
        stdout: str,
        stderr: str,
    ) -> int:
        assert self._loop is not None
        with open(stdout, "ab") as out, open(stderr, "ab") as err:
            proc = subprocess.Popen(  # noqa: S603 - argv list; a shell only on explicit request
                argv[0] if shell else list(argv),
                shell=shell,  # noqa: S602
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        pidfd = os.pidfd_open(proc.pid)
        child = Child(token=token, proc=proc, pidfd=pidfd)
        self._children[token] = child
        self._loop.add_reader(pidfd, self._exited, child)
        return proc.pid

    def kill(self, token: int, reason: str) -> bool:
        child = self._children.get(token)
        if child is None:
            return False
        if child.kill_reason is None:
            child.kill_reason = reason
        _signal_group(child.proc.pid, signal.SIGTERM)
        assert self._loop is not None
        self._loop.call_later(self._grace, self._force, child)
        return True

    def _force(self, child: Child) -> None:
        if child.token in self._children:
            _signal_group(child.proc.pid, signal.SIGKILL)

    def _exited(self, child: Child) -> None:
        assert self._loop is not None
        self._loop.remove_reader(child.pidfd)
        os.close(child.pidfd)
        code = child.proc.wait()
        # the leader is gone; stragglers in its group go with it
        _signal_group(child.proc.pid, signal.SIGKILL)
        self._children.pop(child.token, None)
        self._on_exit(child.token, code, child.kill_reason)

    def shutdown(self) -> None:
        for child in list(self._children.values()):
            _signal_group(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
            if self._loop is not None:
                self._loop.remove_reader(child.pidfd)
            os.close(child.pidfd)
        self._children.clear()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def process_tag(pid: int) -> str:
    """``pid:PID:START_TIME``: names a process group leader unambiguously (pids get reused)."""
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        created = 0.0
    return f"pid:{pid}:{created:.3f}"


def reap_process_tag(tag: str) -> bool:
    """Kill the process group named by ``process_tag`` if its leader is still that process."""
    parts = tag.split(":")
    if len(parts) != 3 or parts[0] != "pid":
        return False
    try:
        pid = int(parts[1])
        if f"{psutil.Process(pid).create_time():.3f}" != parts[2]:
            return False
    except (ValueError, psutil.Error):
        return False
    _signal_group(pid, signal.SIGKILL)
    return True
