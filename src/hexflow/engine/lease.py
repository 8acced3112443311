"""Run ownership: which live process drives a run, so two engines never drive the same one.

The owner string is ``host:pid:create_time``; an owner whose process is gone (crashed,
``kill -9``, even if not yet reaped) no longer holds the run, and ``resume`` takes it over.
"""

from __future__ import annotations

import os
import socket

import psutil

_mine: tuple[int, str] | None = None  # (pid, owner id): a forked child computes its own


def my_owner_id() -> str:
    global _mine
    pid = os.getpid()
    if _mine is None or _mine[0] != pid:
        # read once: every run a server creates is stamped with it
        _mine = (pid, f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.3f}")
    return _mine[1]


def owner_alive(owner: str | None) -> bool:
    if not owner:
        return False
    try:
        host, pid_text, created = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # cannot tell from here; be safe
    try:
        proc = psutil.Process(pid)
        # a killed owner that its parent has not reaped yet is a zombie: it drives nothing
        return f"{proc.create_time():.3f}" == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
