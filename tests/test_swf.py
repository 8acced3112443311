"""The SWF reader: good lines, comments and header, and bad lines named by line and field."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import pytest

from hexflow.errors import SpecError
from hexflow.scheduler.swf import (
    SwfJob,
    SwfTrace,
    format_swf,
    format_swf_line,
    parse_header_line,
    parse_swf,
    parse_swf_line,
    read_swf,
    write_swf,
)

KTH = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "KTH-SP2-1996-2.1-cln.swf.gz"
LINE = "   15   599850 192180   3477    4     -1    -1    4  53940    -1  1  12  12  -1 -1 -1 -1 -1"


def test_good_line() -> None:
    job = parse_swf_line(LINE, 30)
    assert job is not None
    assert (job.job_id, job.submit, job.wait, job.run_time) == (15, 599850, 192180, 3477)
    assert (job.procs, job.walltime, job.status, job.user) == (4, 53940, 1, 12)


def test_unknown_requests_fall_back_to_allocated_and_run_time() -> None:
    job = parse_swf_line("1 0 0 50 8 -1 -1 -1 -1 -1 1 1 1 -1 -1 -1 -1 -1", 1)
    assert job is not None
    assert job.procs == 8
    assert job.walltime == 50


@pytest.mark.parametrize("text", ["", "   ", "; Version: 2.2", ";"])
def test_comments_and_blank_lines_are_skipped(text: str) -> None:
    assert parse_swf_line(text, 1) is None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("1 0 0 50 8 -1 -1", "requested_procs"),
        ("1 0 0 50 8 -1 -1 8 60 -1 1 1 1 -1 -1 -1 -1 -1 7", "(extra)"),
        ("1 0 0 5x0 8 -1 -1 8 60 -1 1 1 1 -1 -1 -1 -1 -1", "run_time"),
        ("1.5 0 0 50 8 -1 -1 8 60 -1 1 1 1 -1 -1 -1 -1 -1", "job_id"),
        ("1 0 0 50 8 -1 -1 8 60 -1 1 1 1 -1 -1 -1 -1 abc", "think_time"),
        ("1 -5 0 50 8 -1 -1 8 60 -1 1 1 1 -1 -1 -1 -1 -1", "submit"),
    ],
)
def test_bad_line_names_line_and_field(text: str, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_swf_line(text, 42)
    assert caught.value.fields["line"] == 42
    assert caught.value.fields["field"] == field
    assert "line 42" in caught.value.message
    again = pickle.loads(pickle.dumps(caught.value))
    assert again.fields == caught.value.fields


def test_parse_keeps_header_and_counts_lines_from_one() -> None:
    lines = ["; MaxProcs: 16", "; Note: x", LINE, "bad line"]
    with pytest.raises(SpecError) as caught:
        parse_swf(lines)
    assert caught.value.fields["line"] == 4
    trace = parse_swf(lines[:3])
    assert trace.max_procs == 16
    assert [j.job_id for j in trace.jobs] == [15]
    assert parse_header_line("; StartTime: Mon Sep 23 14:00:31 CEST 1996") == (
        "StartTime",
        "Mon Sep 23 14:00:31 CEST 1996",
    )
    assert parse_header_line(";       The filter used to produce it was") is None


def test_read_plain_and_gzip(tmp_path: Path) -> None:
    text = "; MaxNodes: 8\n" + LINE + "\n"
    plain = tmp_path / "a.swf"
    plain.write_text(text)
    packed = tmp_path / "a.swf.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert read_swf(plain) == read_swf(packed)
    assert read_swf(plain).max_procs == 8


def test_read_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        read_swf(tmp_path / "nope.swf")
    corrupt = tmp_path / "c.swf.gz"
    corrupt.write_bytes(b"not gzip at all")
    with pytest.raises(SpecError, match="cannot read"):
        read_swf(corrupt)


@pytest.mark.skipif(not KTH.exists(), reason="the KTH-SP2 log is not on this machine")
def test_kth_log_reads_whole() -> None:
    trace = read_swf(KTH)
    assert len(trace.jobs) == 27992  # the cleaned log's job lines
    assert trace.max_procs == 100
    assert max(j.procs for j in trace.jobs) <= 100


def test_format_reads_back_the_same_jobs(tmp_path: Path) -> None:
    job = parse_swf_line(LINE, 1)
    assert job is not None
    odd = SwfJob(16, 12.5, -1, 0.25, 3, 2, -1, 5, 1, 2, 0, 4)
    trace = SwfTrace((job, odd), {"MaxProcs": "16", "UnixStartTime": "100", "TimeZone": "-40"})
    lines = list(format_swf(trace))
    assert lines[0] == "; MaxProcs: 16"
    assert format_swf_line(job).split()[:5] == ["15", "599850", "192180", "3477", "4"]
    again = parse_swf(lines)
    assert again == trace
    assert again.clock_origin == 60
    write_swf(trace, tmp_path / "t.swf.gz")
    assert read_swf(tmp_path / "t.swf.gz") == trace
    with pytest.raises(SpecError, match="cannot write"):
        write_swf(trace, tmp_path / "no" / "such" / "dir.swf")
