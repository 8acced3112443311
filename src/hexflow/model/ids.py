"""new_id: random identifiers for runs and invocations, without a system call.

``uuid.uuid4()`` reads ``os.urandom`` on every call: a system call that lets go of the GIL,
and a busy server's event loop then waits for it back (up to the 5 ms switch interval) —
on the submission and invocation paths, thousands of times a second. These ids name
things; they grant nothing (every access is checked against the caller's projects), so
they need to be unique, not unpredictable: a generator seeded once per process from
``os.urandom`` (and again in a forked child) gives the same 4 bits per hex digit.
"""

from __future__ import annotations

import os
import random

_rng = random.Random(os.urandom(32))


def _reseed() -> None:
    _rng.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def new_id(digits: int) -> str:
    """``digits`` random hexadecimal digits (12 for runs, 16 for invocations)."""
    return f"{_rng.getrandbits(4 * digits):0{digits}x}"
