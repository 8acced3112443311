"""The channel between the engine and its pilots: a directory on the shared file system.

Why files: the pilots run on compute nodes that already share the hexflow home with the
engine (the Slurm executor relies on it too), so the channel needs no database driver and
no open port on the nodes, access is the home's (mode 0700: only its owner reads the task
payloads or writes answers; a socket would need its own authentication), and everything
in flight survives the death of either side as plain files. Exactly-once handover comes
from ``rename(2)``, which is atomic on POSIX file systems (NFS and Lustre included): of
two pilots renaming the same task file, one wins.

Layout of one channel (``root``), all files written to a temporary name then renamed:

    queue/<key>.task          tasks waiting for a pilot (a pickled ``Launch``)
    claimed/<pilot>/<key>.task   tasks a pilot took (renamed from queue/)
    out/<token>.started|ended    what pilots report (pickled), consumed by the engine
    ctl/<token>               what the engine asks of a claimed task: cancel, preempt
    pilots/<pilot>.json       a pilot's hello (host, job, resources, end of allocation)
    pilots/<pilot>.beat       its heartbeat: a counter it rewrites every second
    pilots/<pilot>.stop       the engine asks it to finish what it runs and leave
    pilots/<pilot>.bye        it left, and why

A task key sorts in the order pilots should take tasks (priority class, then submission)
and says what the task needs, so a pilot picks from a directory listing without opening
a file: ``<rank>-<seq>-<token>-<millicpus>-<gpus>-<memory MiB>-<seconds, 0: unknown>``.
"""

from __future__ import annotations

import os
import pickle
import uuid
from dataclasses import dataclass
from typing import Any

QUEUE, CLAIMED, OUT, CTL, PILOTS = "queue", "claimed", "out", "ctl", "pilots"
TASK, STARTED, ENDED = ".task", ".started", ".ended"


@dataclass(frozen=True, slots=True)
class Need:
    """What a queued task asks for, read from its key."""

    key: str
    token: int
    cpus: float
    gpus: int
    memory: int  # bytes
    seconds: float | None  # its time limit; None: it has none


def task_key(
    rank: int, seq: int, token: int, cpus: float, gpus: int, memory: int, seconds: float | None
) -> str:
    mib = -(-memory // 2**20) if memory else 0
    return (
        f"{max(0, min(rank, 99)):02d}-{seq:010d}-{token}-{round(cpus * 1000)}-{gpus}-{mib}-"
        f"{0 if seconds is None else max(1, round(seconds))}"
    )


def read_key(name: str) -> Need | None:
    """The ``Need`` of a queue file name; None for anything else (a temporary file)."""
    if not name.endswith(TASK):
        return None
    key = name[: -len(TASK)]
    parts = key.split("-")
    if len(parts) != 7 or not all(p.isdigit() for p in parts):
        return None
    _, _, token, mcpus, gpus, mib, seconds = (int(p) for p in parts)
    return Need(key, token, mcpus / 1000, gpus, mib * 2**20, float(seconds) if seconds else None)


class Channel:
    """Paths and atomic file operations of one channel directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def create(self) -> None:
        for sub in (QUEUE, CLAIMED, OUT, CTL, PILOTS):
            os.makedirs(self.path(sub), mode=0o700, exist_ok=True)

    # -- writing -----------------------------------------------------------------
    def write(self, path: str, data: bytes) -> None:
        """``data`` at ``path``, all or nothing (a temporary file renamed into place)."""
        tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)

    def put(self, path: str, value: Any) -> None:
        self.write(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def take(self, path: str) -> Any | None:
        """Read and delete a pickled message; None if it is gone."""
        try:
            with open(path, "rb") as f:
                data = f.read()
            os.unlink(path)
        except FileNotFoundError:
            return None
        return pickle.loads(data)  # noqa: S301 - written by hexflow, in a 0700 directory

    # -- the queue ---------------------------------------------------------------
    def queued(self) -> list[Need]:
        """The waiting tasks, in the order pilots take them."""
        try:
            names = os.listdir(self.path(QUEUE))
        except FileNotFoundError:
            return []
        needs = [n for n in map(read_key, names) if n is not None]
        needs.sort(key=lambda n: n.key)
        return needs

    def claim(self, key: str, pilot: str) -> bool:
        """Take a queued task for ``pilot``; False if another pilot (or a withdrawal) took
        it first."""
        try:
            os.rename(self.path(QUEUE, key + TASK), self.path(CLAIMED, pilot, key + TASK))
        except FileNotFoundError:
            return False
        return True

    def withdraw(self, key: str) -> bool:
        """Take a task back from the queue before any pilot claims it."""
        gone = self.path(QUEUE, f".withdrawn-{key}")
        try:
            os.rename(self.path(QUEUE, key + TASK), gone)
        except FileNotFoundError:
            return False
        os.unlink(gone)
        return True

    def claimed(self, pilot: str) -> list[Need]:
        try:
            names = os.listdir(self.path(CLAIMED, pilot))
        except FileNotFoundError:
            return []
        return [n for n in map(read_key, names) if n is not None]

    def heartbeat(self, pilot: str) -> bytes | None:
        try:
            with open(self.path(PILOTS, f"{pilot}.beat"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None


__all__ = [
    "CLAIMED",
    "CTL",
    "ENDED",
    "OUT",
    "PILOTS",
    "QUEUE",
    "STARTED",
    "TASK",
    "Channel",
    "Need",
    "read_key",
    "task_key",
]
