"""The program a Slurm job runs: one hexflow task, from its job file to its answer file.

Run as ``python -c BOOT JOB_FILE`` by the batch script. The job file (pickled by the
executor) holds the local worker's job tuple, the time limit and the kill grace; the task
runs through the local worker's ``run_job`` (the same code path as on this machine: Python
calls, ``@shell`` builders, commands in a session of their own), its output going to the
task's log files. The answer (the worker's answer tuple, and the limit if the runner had to
enforce one) is written atomically next to the job file; the exit status is the command's
(or 0/1 for a Python task), so ``sacct`` shows it too.

Signals: SIGTERM (``scancel``, a preemption notice from ``scancel --signal=TERM``, Slurm's
time limit) is passed on to a running command's process group, and turns
``hexflow.preemption_requested()`` true in a Python task. Time limits are enforced here, to
the second (Slurm's ``--time`` has minutes and is checked coarsely): a command gets SIGTERM,
then SIGKILL after the grace; a Python task's runner answers and exits. A SIGTERM that
comes while the command is starting reaches it as soon as its pid is known.

Before anything else the runner creates the job's ``.began`` file: the executor's proof
that the attempt reached a node, so that a job Slurm declares ended without the node's word
(NODE_FAIL) is reported only once the runner has answered (the node killed the command, or
it finished).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
from typing import Any

from hexflow.executors.local.process import signal_group
from hexflow.executors.local.worker import Pipe, run_job

_state: dict[str, Any] = {"child": None, "limit": None, "term": False}
_lock = threading.Lock()
_answered = threading.Event()


class _PidSink(Pipe):
    """Takes the ("S", token, pid, tag) message ``run_command`` sends once the command
    started: the runner needs the pid to pass signals on."""

    def __init__(self) -> None:
        super().__init__(-1)

    def send_bytes(self, data: bytes) -> None:
        message = pickle.loads(data)
        if message[0] == "S":
            _state["child"] = message[2]
            if _state["term"]:  # SIGTERM came while the command was starting
                signal_group(message[2], signal.SIGTERM)


def write_answer(path: str, answer: tuple[Any, ...], limit: str | None) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump((answer, limit), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def read_answer(path: str) -> tuple[tuple[Any, ...], str | None] | None:
    """The (answer, enforced limit) a runner wrote, or None if there is none (yet)."""
    try:
        with open(path, "rb") as f:
            answer, limit = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None
    return answer, limit


def _on_term(signum: int, frame: Any) -> None:
    _state["term"] = True
    child = _state["child"]
    if child is not None:
        signal_group(child, signal.SIGTERM)
    else:
        from hexflow.executors import taskcontext

        taskcontext.request_preemption()


def _redirect(out_path: str, err_path: str) -> None:
    for fd, path in ((1, out_path), (2, err_path)):
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        os.dup2(log, fd)
        os.close(log)


def _time_up(job: dict[str, Any], start: float) -> None:
    seconds, which = job["limit"]
    _state["limit"] = which
    child = _state["child"]
    if child is not None:  # a command: TERM, then KILL after the grace; main thread answers
        signal_group(child, signal.SIGTERM)
        if not _answered.wait(job["grace"]):
            signal_group(child, signal.SIGKILL)
        return
    with _lock:  # a Python task cannot be stopped from here: answer for it, and go
        if _answered.is_set():
            return
        _answered.set()
        message = f"killed after exceeding its {which} of {seconds:g}s"
        answer = (job["job"][0], False, None, which, message, None, start, None, None, None)
        write_answer(job["answer"], answer, which)
        sys.stderr.write(f"hexflow: {message}\n")
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(124)


def main(job_path: str) -> None:
    with open(job_path, "rb") as f:
        job: dict[str, Any] = pickle.load(f)
    work = job["job"]
    began = job.get("began")
    if began:  # the executor's sign that this attempt reached the node (see _finish)
        os.close(os.open(began, os.O_WRONLY | os.O_CREAT, 0o600))
    _redirect(work[6], work[7])
    signal.signal(signal.SIGTERM, _on_term)
    start = time.time()
    if job.get("limit") is not None:
        timer = threading.Timer(job["limit"][0], _time_up, (job, start))
        timer.daemon = True
        timer.start()
    answer = run_job(work, None, _PidSink())
    code = answer[7]
    with _lock:
        if _answered.is_set():  # the time limit answered already
            os._exit(124)
        _answered.set()
        limit = _state["limit"]
        if limit is not None and answer[1]:  # it exited 0 after the limit's SIGTERM
            answer = (*answer[:1], False, *answer[2:])
        if not answer[1] and answer[5]:
            sys.stderr.write(answer[5])
        sys.stdout.flush()
        sys.stderr.flush()
        write_answer(job["answer"], answer, limit)
    if code is not None:  # a command: its status, as a shell reports it
        sys.exit(code if code >= 0 else 128 - code)
    sys.exit(0 if answer[1] else 1)


# The executor's sys.path reaches the job in HEXFLOW_WORKER_PATH, removed at once, so the
# task (and the commands it starts) see the user's own PYTHONPATH, as on a local worker.
BOOT = (
    "import os, sys; "
    "sys.path[:0] = [p for p in os.environ.pop('HEXFLOW_WORKER_PATH', '').split(os.pathsep) if p]; "
    "from hexflow.executors.slurm.runner import main; "
    "main(sys.argv[1])"
)

if __name__ == "__main__":
    main(sys.argv[1])
