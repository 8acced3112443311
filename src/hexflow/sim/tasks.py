"""How an SWF job becomes a facility task: nodes and cpus, QoS, project, walltime.

Pure. A job of ``procs`` processors on nodes of ``cores_per_node`` cores asks for one node
with ``procs`` cpus when it fits on one (the node may be shared); otherwise for
``ceil(procs / cores_per_node)`` whole nodes (exclusive). The SWF convention that queue 0 is
interactive gives QoS ``interactive``; every other queue is ``regular`` unless a mapping
says otherwise. The project is the job's group (else its user): fair share is between
groups. A job with no usable walltime estimate gets its run time (at least one second).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from hexflow.model import QoS, Resources
from hexflow.scheduler.decisions import PendingTask
from hexflow.scheduler.swf import SwfJob

# SWF's Queue Number: "0 denotes interactive jobs" (the format's own convention).
DEFAULT_QOS_BY_QUEUE: Mapping[int, QoS] = {0: QoS.INTERACTIVE}


def nodes_for(procs: int, cores_per_node: int) -> int:
    """Nodes a job of ``procs`` processors takes."""
    return max(1, math.ceil(procs / cores_per_node))


def project_of(job: SwfJob) -> str:
    if job.group > 0:
        return f"group{job.group}"
    if job.user > 0:
        return f"user{job.user}"
    return ""


def to_task(
    job: SwfJob,
    cores_per_node: int,
    qos_by_queue: Mapping[int, QoS] = DEFAULT_QOS_BY_QUEUE,
) -> PendingTask:
    """The pending task the facility policy sees for ``job`` (id: the job id as text)."""
    procs = job.procs
    if procs <= cores_per_node:
        resources = Resources(cpus=procs, nodes=1)
        exclusive = False
    else:
        resources = Resources(cpus=cores_per_node, nodes=nodes_for(procs, cores_per_node))
        exclusive = True
    walltime = job.walltime if job.walltime > 0 else job.run_time
    return PendingTask(
        task_id=str(job.job_id),
        resources=resources,
        walltime=max(walltime, 1.0),
        qos=qos_by_queue.get(job.queue, QoS.REGULAR),
        project=project_of(job),
        submit_time=job.submit,
        exclusive=exclusive,
    )


__all__ = ["DEFAULT_QOS_BY_QUEUE", "nodes_for", "project_of", "to_task"]
