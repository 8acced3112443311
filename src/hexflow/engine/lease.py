"""Run ownership: which live process drives a run, so two engines never drive the same one.

The owner string is ``host:pid:create_time``; an owner whose process is gone (crashed,
``kill -9``, even if not yet reaped) no longer holds the run, and ``resume`` takes it over.
"""

from __future__ import annotations

import os
import socket

import psutil


def my_owner_id() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.3f}"


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
