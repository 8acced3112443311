"""Process groups of shell tasks: signalling them, and naming them across engine restarts.

Shell tasks run in their own session, so a signal to the group reaches every process the
command started. A *process tag* (``pid:PID:START``, START from /proc, in clock ticks since
boot) names a group leader unambiguously even when pids are reused. It is the task's
``worker`` field; the local executor does not need it persisted before it acts (its
workers kill their command's group when the engine dies), but ``reap`` stops a tagged
group if a record carrying one is found in flight on resume. This module is imported by
workers: it stays light (no psutil, no asyncio).
"""

from __future__ import annotations

import os
import signal


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _start_ticks(pid: int) -> str | None:
    # os.open/os.read, not open(): a worker reads this for every command it starts, and the
    # buffered file object costs more than the read itself. The line is far below 4 KiB.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[19].decode()  # field 22 of stat: start time


def process_tag(pid: int) -> str:
    return f"pid:{pid}:{_start_ticks(pid) or 0}"


def reap_process_tag(tag: str) -> bool:
    """Kill the process group named by ``tag`` if its leader is still that very process."""
    parts = tag.split(":")
    if len(parts) != 3 or parts[0] != "pid" or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if _start_ticks(pid) != parts[2]:
        return False
    signal_group(pid, signal.SIGKILL)
    return True
