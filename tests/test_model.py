"""Pure model: resources and their parsers, QoS, the state machines, TaskSpec, errors."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import pytest

from hexflow import errors
from hexflow.errors import HexflowError, InvalidTransition, RunNotFound, SpecError, StoreError
from hexflow.model import (
    QoS,
    Resources,
    RetryPolicy,
    RunRecord,
    RunState,
    TaskKind,
    TaskRecord,
    TaskSpec,
    TaskState,
    format_bytes,
    parse_duration,
    parse_memory,
)
from hexflow.model.spec import dedupe, normalize_argv
from hexflow.model.states import (
    RUN_TRANSITIONS,
    TASK_TRANSITIONS,
    check_run_transition,
    check_task_transition,
)

GiB = 1024**3
MiB = 1024**2


def shell_spec(task_id: str = "t", **kw: object) -> TaskSpec:
    kw.setdefault("command", ("true",))
    return TaskSpec(id=task_id, name=task_id, kind=TaskKind.SHELL, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- memory


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512 * MiB),
        ("512m", 512 * MiB),
        ("2GiB", 2 * GiB),
        ("2gib", 2 * GiB),
        ("1.5G", int(1.5 * GiB)),
        ("4GB", 4 * 1000**3),
        ("100k", 100 * 1024),
        ("100kB", 100 * 1000),
        ("1T", 1024**4),
        (" 8 MiB ", 8 * MiB),
        ("1000000", 1_000_000),
        ("1000000b", 1_000_000),
        (1_000_000, 1_000_000),
        (2048.0, 2048),
        (0, 0),
        (None, 0),
    ],
)
def test_parse_memory_accepts_hpc_forms(text: object, expected: int) -> None:
    assert parse_memory(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["abc", "12 parsecs", "-5M", "", "1.2.3G", "G", "5 M B"])
def test_parse_memory_rejects_garbage_naming_field_and_forms(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_memory(text)
    err = info.value
    assert err.fields["field"] == "memory"
    assert str(err).startswith("memory: cannot read")
    assert repr(text) in str(err)
    # the hint shows the accepted forms
    assert err.hint is not None
    for form in ("512M", "4G", "2GiB", "bytes"):
        assert form in err.hint


def test_parse_memory_uses_the_given_field_name() -> None:
    with pytest.raises(SpecError) as info:
        parse_memory("lots", field="mem_per_task")
    assert info.value.fields["field"] == "mem_per_task"
    assert str(info.value).startswith("mem_per_task:")


@pytest.mark.parametrize("value", [-1, -0.5, float("nan")])
def test_parse_memory_rejects_negative_numbers(value: float) -> None:
    with pytest.raises(SpecError, match=r"^memory: must not be negative"):
        parse_memory(value)


def test_parse_memory_rejects_infinity_as_spec_error() -> None:
    with pytest.raises(SpecError, match=r"^memory: must be a finite size"):
        parse_memory(float("inf"))


@pytest.mark.parametrize("value", [True, False])
def test_parse_memory_rejects_bool(value: bool) -> None:
    with pytest.raises(SpecError) as info:
        parse_memory(value)
    assert info.value.fields["field"] == "memory"
    assert "512M" in str(info.value)
    assert repr(value) in str(info.value)


# ---------------------------------------------------------------- walltime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (90, 90.0),
        (2.5, 2.5),
        ("90", 90.0),
        ("30s", 30.0),
        ("10m", 600.0),
        ("10min", 600.0),
        ("2h", 7200.0),
        ("2H", 7200.0),
        ("1.5h", 5400.0),
        ("1d", 86400.0),
        ("01:30:00", 5400.0),
        ("30:00", 1800.0),  # MM:SS, as in Slurm
        ("1-12:00:00", 36 * 3600.0),
        ("1-12:30", 36 * 3600.0 + 1800),  # D-HH:MM, as in Slurm
        (" 10m ", 600.0),
        (None, None),
    ],
)
def test_parse_duration_accepts_hpc_forms(text: object, expected: float | None) -> None:
    assert parse_duration(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["10 parsecs", "abc", "", "1:2:3:4", "-5m", "10m30s", "1-"])
def test_parse_duration_rejects_garbage_naming_field_and_forms(text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_duration(text)
    err = info.value
    assert err.fields["field"] == "walltime"
    assert str(err).startswith("walltime: cannot read")
    assert repr(text) in str(err)
    assert err.hint is not None
    for form in ("90", "10m", "2h", "01:30:00", "1-12:00:00"):
        assert form in err.hint


def test_parse_duration_uses_the_given_field_name() -> None:
    with pytest.raises(SpecError, match=r"^timeout: cannot read") as info:
        parse_duration("soon", field="timeout")
    assert info.value.fields["field"] == "timeout"


@pytest.mark.parametrize("value", [0, -3, "0", "00:00", "0m", float("nan")])
def test_parse_duration_rejects_non_positive(value: object) -> None:
    with pytest.raises(SpecError, match=r"^walltime: must be positive"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_bool(value: bool) -> None:
    with pytest.raises(SpecError) as info:
        parse_duration(value)
    assert info.value.fields["field"] == "walltime"
    assert "10m" in str(info.value)


# ---------------------------------------------------------------- Resources


def test_resources_defaults() -> None:
    r = Resources()
    assert (r.cpus, r.memory, r.gpus, r.nodes, r.walltime) == (1.0, 0, 0, 1, None)


def test_resources_parse_reads_user_forms() -> None:
    r = Resources.parse(cpus=4, memory="2GiB", gpus=1, nodes=2, walltime="01:30:00")
    assert r == Resources(cpus=4, memory=2 * GiB, gpus=1, nodes=2, walltime=5400.0)


def test_resources_parse_reports_the_bad_field() -> None:
    with pytest.raises(SpecError) as info:
        Resources.parse(memory="lots")
    assert info.value.fields["field"] == "memory"
    with pytest.raises(SpecError) as info:
        Resources.parse(walltime="10 parsecs")
    assert info.value.fields["field"] == "walltime"


@pytest.mark.parametrize("field", ["cpus", "memory", "gpus", "nodes"])
def test_resources_reject_negative(field: str) -> None:
    with pytest.raises(SpecError) as info:
        Resources(**{field: -1})
    assert info.value.fields["field"] == field
    assert str(info.value).startswith(f"{field}: must not be negative")
    assert "-1" in str(info.value)


@pytest.mark.parametrize("field", ["cpus", "memory", "gpus", "nodes"])
@pytest.mark.parametrize("value", [True, "2", None])
def test_resources_reject_non_numbers(field: str, value: object) -> None:
    with pytest.raises(SpecError) as info:
        Resources(**{field: value})  # type: ignore[arg-type]
    assert info.value.fields["field"] == field
    assert str(info.value) == f"{field}: expected a number, got {value!r}"


def test_resources_need_a_node_and_whole_gpus() -> None:
    with pytest.raises(SpecError, match="at least one node") as info:
        Resources(nodes=0)
    assert info.value.fields["field"] == "nodes"
    with pytest.raises(SpecError, match="whole number") as info:
        Resources(gpus=1.5)  # type: ignore[arg-type]
    assert info.value.fields["field"] == "gpus"
    assert Resources(gpus=2.0).gpus == 2  # type: ignore[arg-type]


def test_resources_fit_and_arithmetic() -> None:
    free = Resources(cpus=4, memory=8 * GiB, gpus=2, nodes=3, walltime=3600)
    req = Resources(cpus=2, memory=3 * GiB, gpus=1, walltime=60)
    assert req.fits_in(free)
    assert not Resources(cpus=5).fits_in(free)
    assert not Resources(cpus=1, memory=9 * GiB).fits_in(free)
    assert not Resources(cpus=1, gpus=3).fits_in(free)
    left = free.minus(req)
    # only consumable resources change; nodes and walltime describe the pool
    assert left == Resources(cpus=2, memory=5 * GiB, gpus=1, nodes=3, walltime=3600)
    assert left.plus(req) == free


def test_resources_describe_and_format_bytes() -> None:
    assert Resources().describe() == "cpus=1"
    r = Resources(cpus=2.5, memory=3 * GiB // 2, gpus=1, nodes=2, walltime=600)
    assert r.describe() == "cpus=2.5 memory=1.5GiB gpus=1 nodes=2 walltime=600s"
    assert format_bytes(512) == "512B"
    assert format_bytes(1536) == "1.5KiB"
    assert format_bytes(2 * 1024**5) == "2048.0TiB"


# ---------------------------------------------------------------- QoS


def test_qos_parse() -> None:
    assert QoS.parse(None) is QoS.REGULAR
    assert QoS.parse("urgent") is QoS.URGENT
    assert QoS.parse("REALTIME") is QoS.REALTIME
    assert QoS.parse(QoS.PREEMPT) is QoS.PREEMPT


def test_qos_parse_unknown_lists_the_classes() -> None:
    with pytest.raises(SpecError) as info:
        QoS.parse("gold")
    err = info.value
    assert err.fields["field"] == "qos"
    assert "'gold'" in str(err)
    assert err.hint is not None
    for q in QoS:
        assert q.value in err.hint


def test_qos_priority_order() -> None:
    order = sorted(QoS, key=lambda q: q.priority)
    assert order == [QoS.REALTIME, QoS.URGENT, QoS.INTERACTIVE, QoS.REGULAR, QoS.PREEMPT]
    assert len({q.priority for q in QoS}) == len(QoS)


def test_qos_targets_and_preemption() -> None:
    realtime, urgent, interactive = (
        q.response_target for q in (QoS.REALTIME, QoS.URGENT, QoS.INTERACTIVE)
    )
    assert realtime is not None and urgent is not None and interactive is not None
    assert realtime < urgent < interactive
    assert QoS.REGULAR.response_target is None
    assert QoS.PREEMPT.response_target is None
    assert [q for q in QoS if q.preemptible] == [QoS.PREEMPT]
    assert {q for q in QoS if q.may_preempt} == {QoS.REALTIME, QoS.URGENT}


# ---------------------------------------------------------------- task state machine

S = TaskState

# Lifecycles the engine relies on, written out by hand so a change to the table shows up.
TASK_LIFECYCLES = {
    "success via executor": [S.READY, S.SUBMITTED, S.RUNNING, S.SUCCEEDED],
    "success in process": [S.READY, S.RUNNING, S.SUCCEEDED],
    "cache hit": [S.READY, S.SUCCEEDED],
    "restored from checkpoint": [S.SUCCEEDED],
    "retry then succeed": [S.READY, S.RUNNING, S.RETRYING, S.READY, S.RUNNING, S.SUCCEEDED],
    "submit failed, retried": [S.READY, S.SUBMITTED, S.RETRYING, S.READY, S.RUNNING, S.FAILED],
    "lost worker requeued": [S.READY, S.RUNNING, S.READY, S.SUBMITTED, S.READY, S.RUNNING],
    "upstream failed then resumed": [S.UPSTREAM_FAILED, S.PENDING, S.READY],
    "failed then resumed": [S.READY, S.RUNNING, S.FAILED, S.PENDING, S.READY],
    "cancelled while queued": [S.READY, S.CANCELLED, S.PENDING],
    "cancelled while running": [S.READY, S.RUNNING, S.CANCELLED],
    "cancelled while retrying": [S.READY, S.RUNNING, S.RETRYING, S.CANCELLED],
    "ready back to pending": [S.READY, S.PENDING, S.READY],
}


@pytest.mark.parametrize("path", list(TASK_LIFECYCLES.values()), ids=list(TASK_LIFECYCLES))
def test_task_lifecycles_are_allowed(path: list[TaskState]) -> None:
    rec = TaskRecord(run_id="r", spec=shell_spec())
    assert rec.state is S.PENDING
    for state in path:
        rec.set_state(state)
        assert rec.state is state


ALL_TASK_PAIRS = [(a, b) for a in TaskState for b in TaskState]


@pytest.mark.parametrize(
    ("current", "new"), [(a, b) for a, b in ALL_TASK_PAIRS if b in TASK_TRANSITIONS[a]]
)
def test_every_allowed_task_transition_passes(current: TaskState, new: TaskState) -> None:
    assert check_task_transition("t1", current, new) is new


@pytest.mark.parametrize(
    ("current", "new"), [(a, b) for a, b in ALL_TASK_PAIRS if b not in TASK_TRANSITIONS[a]]
)
def test_every_other_task_transition_raises(current: TaskState, new: TaskState) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_task_transition("t1", current, new)
    assert str(info.value).startswith(f"task t1: cannot go from {current.value} to {new.value}")
    assert info.value.fields == {"task": "t1", "current": current.value, "new": new.value}


# Moves that would be real bugs, written out by hand (the table must never allow them).
FORBIDDEN_TASK_MOVES = [
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.SUBMITTED),
    (S.PENDING, S.FAILED),
    (S.READY, S.UPSTREAM_FAILED),  # READY → FAILED is a rejection by the scheduler
    (S.READY, S.RETRYING),
    (S.RETRYING, S.RUNNING),
    (S.RETRYING, S.SUCCEEDED),
    (S.RUNNING, S.RUNNING),
    (S.RUNNING, S.PENDING),
    (S.SUCCEEDED, S.RUNNING),
    (S.SUCCEEDED, S.PENDING),
    (S.SUCCEEDED, S.FAILED),
    (S.FAILED, S.SUCCEEDED),
    (S.FAILED, S.READY),
    (S.CANCELLED, S.RUNNING),
    (S.UPSTREAM_FAILED, S.READY),
]


@pytest.mark.parametrize(("current", "new"), FORBIDDEN_TASK_MOVES)
def test_forbidden_task_moves_raise_and_leave_the_record(
    current: TaskState, new: TaskState
) -> None:
    rec = TaskRecord(run_id="r", spec=shell_spec("job"), state=current)
    with pytest.raises(InvalidTransition, match=f"from {current.value} to {new.value}"):
        rec.set_state(new)
    assert rec.state is current


def test_invalid_task_transition_hint_lists_next_states() -> None:
    with pytest.raises(InvalidTransition) as info:
        check_task_transition("t1", S.SUCCEEDED, S.RUNNING)
    assert info.value.hint is not None and "none (terminal)" in info.value.hint
    with pytest.raises(InvalidTransition) as info:
        check_task_transition("t1", S.RETRYING, S.RUNNING)
    assert info.value.hint is not None
    assert "ready" in info.value.hint and "cancelled" in info.value.hint


def test_task_state_flags() -> None:
    assert {s for s in TaskState if s.terminal} == {
        S.SUCCEEDED,
        S.FAILED,
        S.UPSTREAM_FAILED,
        S.CANCELLED,
    }
    assert {s for s in TaskState if s.in_flight} == {S.SUBMITTED, S.RUNNING}
    assert TASK_TRANSITIONS[S.SUCCEEDED] == frozenset()
    assert set(TASK_TRANSITIONS) == set(TaskState)


# ---------------------------------------------------------------- run state machine

R = RunState
ALL_RUN_PAIRS = [(a, b) for a in RunState for b in RunState]


@pytest.mark.parametrize(
    ("current", "new"), [(a, b) for a, b in ALL_RUN_PAIRS if b in RUN_TRANSITIONS[a]]
)
def test_every_allowed_run_transition_passes(current: RunState, new: RunState) -> None:
    assert check_run_transition("r1", current, new) is new


@pytest.mark.parametrize(
    ("current", "new"), [(a, b) for a, b in ALL_RUN_PAIRS if b not in RUN_TRANSITIONS[a]]
)
def test_every_other_run_transition_raises(current: RunState, new: RunState) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_run_transition("r1", current, new)
    assert str(info.value) == f"run r1: cannot go from {current.value} to {new.value}"
    assert info.value.fields == {"run": "r1", "current": current.value, "new": new.value}


def test_run_lifecycle_and_forbidden_moves() -> None:
    run = RunRecord(id="r1", name="demo")
    for state in [R.RUNNING, R.SUCCEEDED, R.RUNNING, R.FAILED, R.RUNNING, R.CANCELLED]:
        run.set_state(state)
        assert run.state is state
    for current, new in [
        (R.PENDING, R.SUCCEEDED),
        (R.PENDING, R.FAILED),
        (R.SUCCEEDED, R.FAILED),
        (R.CANCELLED, R.SUCCEEDED),
    ]:
        run = RunRecord(id="r1", name="demo", state=current)
        with pytest.raises(InvalidTransition, match=f"from {current.value} to {new.value}"):
            run.set_state(new)
        assert run.state is current
    assert {s for s in RunState if s.terminal} == {R.SUCCEEDED, R.FAILED, R.CANCELLED}


# ---------------------------------------------------------------- TaskSpec


def test_shell_task_without_command_is_rejected() -> None:
    for command in (None, ()):
        with pytest.raises(SpecError, match="task build: a shell task needs a command") as info:
            TaskSpec(id="b1", name="build", kind=TaskKind.SHELL, command=command)
        assert info.value.fields == {"task": "build", "field": "command"}
        assert info.value.hint is not None and "command" in info.value.hint


def test_shell_task_command_must_be_strings() -> None:
    with pytest.raises(SpecError, match="needs a command"):
        shell_spec(command=("echo", 3))


def test_shell_true_takes_one_string() -> None:
    # specs only: nothing is run, so ruff's S604 (shell=True) does not apply
    assert shell_spec(command=("echo hi | wc",), shell=True).shell  # noqa: S604
    with pytest.raises(SpecError, match="shell=True takes the command as one string"):
        shell_spec(command=("echo", "hi"), shell=True)  # noqa: S604


@pytest.mark.parametrize("kind", [TaskKind.PYTHON, TaskKind.SHELL_BUILDER])
def test_payload_tasks_need_a_payload(kind: TaskKind) -> None:
    with pytest.raises(SpecError, match=f"a {kind.value} task needs a payload"):
        TaskSpec(id="p", name="p", kind=kind)
    assert TaskSpec(id="p", name="p", kind=kind, payload=b"x").payload == b"x"


def test_task_depending_on_itself_is_rejected() -> None:
    with pytest.raises(SpecError, match="task loop depends on itself") as info:
        TaskSpec(id="loop", name="loop", kind=TaskKind.SHELL, command=("true",), deps=("a", "loop"))
    assert info.value.fields == {"task": "loop", "field": "deps"}


def test_task_id_and_timeout_are_checked() -> None:
    with pytest.raises(SpecError, match="task id must be a non-empty string"):
        shell_spec("")
    for timeout in (0, -1):
        with pytest.raises(SpecError, match="timeout must be positive"):
            shell_spec(timeout=timeout)


def test_time_limit_is_the_tighter_of_timeout_and_walltime() -> None:
    assert shell_spec().time_limit is None
    assert shell_spec(timeout=30).time_limit == (30, "timeout")
    assert shell_spec(resources=Resources(walltime=20)).time_limit == (20, "walltime")
    both = shell_spec(timeout=50, resources=Resources(walltime=60))
    assert both.time_limit == (50, "timeout")


def test_spec_pickles_to_an_equal_spec() -> None:
    spec = TaskSpec(
        id="t1",
        name="train",
        kind=TaskKind.PYTHON,
        payload=b"\x00payload",
        resources=Resources.parse(cpus=2, memory="1G", walltime="1h"),
        qos=QoS.URGENT,
        deps=("a", "b"),
        inputs=("a",),
        env={"OMP_NUM_THREADS": "2"},
        retry=RetryPolicy(retries=3),
        tags={"team": "x"},
    )
    assert pickle.loads(pickle.dumps(spec)) == spec


@pytest.mark.parametrize("retries", [-1, True, 1.5, "3", None])
def test_bad_retries_are_rejected(retries: object) -> None:
    with pytest.raises(SpecError, match="retries: expected a whole number >= 0") as info:
        RetryPolicy(retries=retries)  # type: ignore[arg-type]
    assert info.value.fields["field"] == "retries"
    assert repr(retries) in str(info.value)


def test_negative_backoff_is_rejected() -> None:
    with pytest.raises(SpecError, match="backoff must not be negative"):
        RetryPolicy(backoff=-1)
    with pytest.raises(SpecError, match="backoff must not be negative"):
        RetryPolicy(max_backoff=-1)


def test_retry_delay_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(retries=10, backoff=1.5, max_backoff=10)
    assert [policy.delay(a) for a in range(1, 7)] == [1.5, 3.0, 6.0, 10.0, 10.0, 10.0]
    assert policy.delay(0) == 1.5
    assert policy.delay(500) == 10.0
    assert RetryPolicy(backoff=0).delay(5) == 0.0


def test_normalize_argv_and_dedupe() -> None:
    assert normalize_argv("echo 'a b' c") == ("echo", "a b", "c")
    assert normalize_argv(["cp", Path("/x/y"), 3, 1.5]) == ("cp", "/x/y", "3", "1.5")
    for bad in (["echo", True], [["nested"]], 42):
        with pytest.raises(SpecError, match="the command must be a list of strings") as info:
            normalize_argv(bad, "conv")
        assert info.value.fields == {"task": "conv", "field": "command"}
    with pytest.raises(SpecError, match="the command is empty"):
        normalize_argv("   ")
    assert dedupe(["b", "a", "b", "c", "a"]) == ("b", "a", "c")


# ---------------------------------------------------------------- errors

ERROR_CLASSES = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, HexflowError) and cls.__module__ == errors.__name__
]


def test_error_classes_are_found() -> None:
    assert {HexflowError, SpecError, StoreError, RunNotFound, InvalidTransition} <= set(
        ERROR_CLASSES
    )


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_errors_survive_pickle(cls: type[HexflowError]) -> None:
    err = cls("it broke", hint="do this instead", task="t1", exit_code=3, tail=["a", "b"])
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls
    assert copy.message == "it broke"
    assert copy.hint == "do this instead"
    assert copy.fields == {"task": "t1", "exit_code": 3, "tail": ["a", "b"]}
    assert str(copy) == str(err) == "it broke (hint: do this instead)"
    assert copy.args == err.args


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_errors_without_hint_or_fields_survive_pickle(cls: type[HexflowError]) -> None:
    copy = pickle.loads(pickle.dumps(cls("plain")))
    assert (copy.message, copy.hint, copy.fields, str(copy)) == ("plain", None, {}, "plain")


def test_raised_errors_pickle_with_their_bases() -> None:
    with pytest.raises(SpecError) as info:
        parse_duration("10 parsecs")
    copy = pickle.loads(pickle.dumps(info.value))
    assert isinstance(copy, SpecError) and isinstance(copy, ValueError)
    assert (copy.message, copy.hint, copy.fields) == (
        info.value.message,
        info.value.hint,
        info.value.fields,
    )
    missing = pickle.loads(pickle.dumps(RunNotFound("no run 'x'", hint="list runs", run="x")))
    assert isinstance(missing, LookupError) and isinstance(missing, StoreError)
    assert missing.fields == {"run": "x"}
