"""The Slurm output parsers (pure): real NERSC sacct output, squeue, sbatch, sinfo."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from hexflow.errors import ExecutorError
from hexflow.executors.slurm.parse import (
    SACCT_FIELDS,
    allocations,
    parse_exit_code,
    parse_sacct,
    parse_sbatch,
    parse_sinfo,
    parse_squeue,
    state_name,
)

NERSC = Path(__file__).parent / "data" / "slurm" / "nersc-edison-sacct-parsable2.txt"


def test_real_nersc_sacct_parsable2_with_its_steps() -> None:
    records = parse_sacct(NERSC.read_text())
    assert len(records) == 11
    job = records[0]
    assert (job.job_id, job.step, job.state) == ("4478544", None, "COMPLETED")
    assert (job.exit_code, job.signal) == (0, 0)
    assert job.fields["Partition"] == "debug" and job.fields["AllocCPUS"] == "6144"
    assert job.fields["NodeList"] == "nid0[5301-5428]"
    assert job.start == datetime(2017, 3, 20, 1, 59, 2).timestamp()
    assert job.end is not None and job.end - job.start == 12 * 60 + 36
    steps = [r.step for r in records[1:]]
    assert steps == ["batch", "extern", "0", "1", "2", "3", "4", "5", "6", "7"]
    assert {r.job_id for r in records} == {"4478544"}
    assert [r.name for r in records[3:5]] == ["ior", "ior"]
    assert records[8].name == "hacc_io_read"
    # the job-level line is the one that says how the job ended
    assert allocations(records) == {"4478544": job}


def test_sacct_without_a_header_and_array_elements() -> None:
    text = (
        "123_0|124|hx-run|COMPLETED|0:0|2026-01-01T10:00:00|2026-01-01T10:00:05\n"
        "123_1|125|hx-run|OUT_OF_MEMORY|0:125|2026-01-01T10:00:00|Unknown\n"
        "123_2|123|hx-run|CANCELLED by 0|0:15|None|None\n"
        "126|126|hx-x|NODE_FAIL|1:0|2026-01-01T10:00:00|2026-01-01T10:01:00\n"
    )
    records = parse_sacct(text, SACCT_FIELDS)
    jobs = allocations(records)
    assert jobs["123_0"].state == "COMPLETED" and jobs["123_0"].raw_id == "124"
    assert jobs["124"] is jobs["123_0"]  # also found by its own numeric id
    assert (jobs["123_1"].state, jobs["123_1"].exit_code, jobs["123_1"].signal) == (
        "OUT_OF_MEMORY",
        0,
        125,
    )
    assert jobs["123_1"].end is None
    assert jobs["123_2"].state == "CANCELLED" and jobs["123_2"].start is None
    assert jobs["126"].state == "NODE_FAIL" and jobs["126"].exit_code == 1


def test_sacct_refuses_lines_it_cannot_read() -> None:
    with pytest.raises(ExecutorError, match="5 fields, expected 7"):
        parse_sacct("1|1|x|COMPLETED|0:0\n", SACCT_FIELDS)
    with pytest.raises(ExecutorError, match="JobID"):
        parse_sacct("State|ExitCode\nCOMPLETED|0:0\n")
    assert parse_sacct("") == []


def test_squeue_lines() -> None:
    text = (
        "42|42|RUNNING|None\n"
        "43_0|44|COMPLETED|None\n"
        "43_5|43|PENDING|Resources\n"
        "\n"
        "45|45|PENDING|PartitionNodeLimit\n"
    )
    entries = parse_squeue(text)
    assert [(e.job_id, e.raw_id, e.state, e.reason) for e in entries] == [
        ("42", "42", "RUNNING", "None"),
        ("43_0", "44", "COMPLETED", "None"),
        ("43_5", "43", "PENDING", "Resources"),
        ("45", "45", "PENDING", "PartitionNodeLimit"),
    ]
    with pytest.raises(ExecutorError, match="cannot read squeue line"):
        parse_squeue("42 RUNNING\n")


def test_sbatch_job_ids() -> None:
    assert parse_sbatch("1234\n") == "1234"
    assert parse_sbatch("1234;perlmutter\n") == "1234"
    assert parse_sbatch("sbatch: warning: something\n77\n") == "77"
    with pytest.raises(ExecutorError, match="no job id"):
        parse_sbatch("sbatch: error: Batch job submission failed\n")
    with pytest.raises(ExecutorError):
        parse_sbatch("")


def test_exit_codes_and_state_names() -> None:
    assert parse_exit_code("3:0") == (3, 0)
    assert parse_exit_code("0:15") == (0, 15)
    assert parse_exit_code("") == (None, None)
    assert parse_exit_code("x:y") == (None, None)
    assert state_name("CANCELLED by 12345") == "CANCELLED"
    assert state_name("running+") == "RUNNING"


def test_sinfo_partitions() -> None:
    parts = parse_sinfo("regular*|up|1|idle\ngpu|up|1|idle\nrealtime|down|1|drain\n")
    assert [(p.name, p.default, p.available, p.nodes, p.node_state) for p in parts] == [
        ("regular", True, True, 1, "idle"),
        ("gpu", False, True, 1, "idle"),
        ("realtime", False, False, 1, "drain"),
    ]
    with pytest.raises(ExecutorError, match="cannot read sinfo line"):
        parse_sinfo("regular up\n")
