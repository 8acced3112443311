"""The Store contract: one suite that every backend must pass.

A test module subclasses ``StoreContract`` and provides a ``store`` fixture that yields an
empty, open store (see tests/test_store.py for MemoryStore, SQLite and PostgreSQL).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from hexflow.errors import RunNotFound, StoreError
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
)
from hexflow.store import Store


def make_spec(task_id: str, name: str | None = None, *deps: str) -> TaskSpec:
    return TaskSpec(
        id=task_id, name=name or task_id, kind=TaskKind.SHELL, command=("true",), deps=deps
    )


def make_run(run_id: str = "run-1", created_at: float = 100.0, **kw: object) -> RunRecord:
    return RunRecord(id=run_id, name=f"wf-{run_id}", created_at=created_at, **kw)  # type: ignore[arg-type]


def make_tasks(run_id: str, *specs: TaskSpec) -> list[TaskRecord]:
    return [TaskRecord(run_id=run_id, spec=s) for s in specs]


def rich_specs() -> list[TaskSpec]:
    """Specs using every field, with ids out of alphabetical order."""
    return [
        TaskSpec(
            id="zeta",
            name="fetch",
            kind=TaskKind.SHELL,
            command=("curl", "-o", "data.bin", "file:///x"),
            env={"A": "1"},
            cwd="/tmp",
            resources=Resources.parse(cpus=2, memory="512M", walltime="10m"),
            qos=QoS.URGENT,
            retry=RetryPolicy(retries=2, backoff=0.5),
            timeout=30.0,
            tags={"stage": "in"},
        ),
        TaskSpec(
            id="alpha",
            name="train",
            kind=TaskKind.PYTHON,
            payload=b"\x80\x05pickled\x00bytes",
            deps=("zeta",),
            inputs=("zeta",),
            resources=Resources(cpus=4, memory=2**31, gpus=1, nodes=2),
            deadline=3600.0,
            cache=True,
            cache_salt="abc",
            checkpoint=True,
        ),
        TaskSpec(  # noqa: S604 - a spec that asks for a shell; nothing is run here
            id="mid",
            name="report",
            kind=TaskKind.SHELL,
            command=("echo done > out.txt",),
            shell=True,
            deps=("alpha", "zeta"),
            qos=QoS.PREEMPT,
        ),
    ]


def finished(rec: TaskRecord, **kw: object) -> TaskRecord:
    """The record after a successful attempt, with every mutable field set."""
    fields: dict[str, object] = {
        "state": TaskState.SUCCEEDED,
        "attempt": 2,
        "submitted_at": 101.0,
        "started_at": 102.5,
        "ended_at": 110.25,
        "retry_at": 101.5,
        "result": b"\x00result\xff",
        "exit_code": 0,
        "reason": None,
        "error": "first attempt: boom",
        "traceback": "Traceback...\nValueError: boom",
        "root_cause": None,
        "cache_key": "key-" + rec.spec.id,
        "cached": False,
        "worker": "node01:1234",
    }
    fields.update(kw)
    return replace(rec, **fields)  # type: ignore[arg-type]


class StoreContract:
    """Behaviour every Store backend must have. Needs a ``store`` fixture."""

    # ------------------------------------------------------------ create and load

    def test_create_run_and_load_tasks_round_trip(self, store: Store) -> None:
        run = make_run(config={"executor": "local", "max_workers": 4, "labels": ["a"]})
        specs = rich_specs()
        store.create_run(run, make_tasks(run.id, *specs))
        assert store.get_run(run.id) == run
        loaded = store.load_tasks(run.id)
        assert [t.spec for t in loaded] == specs  # equal specs, creation order
        assert loaded == make_tasks(run.id, *specs)
        assert all(t.state is TaskState.PENDING and t.run_id == run.id for t in loaded)

    def test_claim_run_is_compare_and_set(self, store: Store) -> None:
        store.create_run(make_run("owned"), [])
        assert store.claim_run("owned", None, "host:1:1.0")
        assert not store.claim_run("owned", None, "host:2:2.0")  # lost the race
        assert store.get_run("owned").owner == "host:1:1.0"
        assert store.claim_run("owned", "host:1:1.0", "host:3:3.0")  # take over a dead owner
        assert store.get_run("owned").owner == "host:3:3.0"
        assert not store.claim_run("no-such-run", None, "host:4:4.0")

    def test_create_run_without_tasks(self, store: Store) -> None:
        store.create_run(make_run("empty"), [])
        assert store.load_tasks("empty") == []
        assert store.get_run("empty").state is RunState.PENDING

    def test_new_tasks_come_after_existing_ones(self, store: Store) -> None:
        store.create_run(make_run(), make_tasks("run-1", make_spec("m"), make_spec("b")))
        store.save(new_tasks=make_tasks("run-1", make_spec("z", None, "m"), make_spec("a")))
        store.save(new_tasks=make_tasks("run-1", make_spec("c")))
        assert [t.id for t in store.load_tasks("run-1")] == ["m", "b", "z", "a", "c"]

    def test_tasks_of_other_runs_are_kept_apart(self, store: Store) -> None:
        store.create_run(make_run("r-a"), make_tasks("r-a", make_spec("t1"), make_spec("t2")))
        store.create_run(make_run("r-b"), make_tasks("r-b", make_spec("t1")))
        store.save(tasks=[finished(store.get_task("r-b", "t1"))])
        assert [(t.id, t.state) for t in store.load_tasks("r-a")] == [
            ("t1", TaskState.PENDING),
            ("t2", TaskState.PENDING),
        ]
        assert [(t.id, t.state) for t in store.load_tasks("r-b")] == [("t1", TaskState.SUCCEEDED)]

    # ------------------------------------------------------------ save

    def test_save_updates_are_visible(self, store: Store) -> None:
        run = make_run()
        store.create_run(run, make_tasks(run.id, *rich_specs()))
        first, second, third = store.load_tasks(run.id)
        done = finished(first)
        failed = replace(
            second, state=TaskState.FAILED, attempt=1, exit_code=3, reason="exit_code", error="x"
        )
        upstream = replace(third, state=TaskState.UPSTREAM_FAILED, root_cause="alpha")
        run.state = RunState.FAILED
        run.started_at, run.ended_at, run.owner = 100.5, 120.0, "host:1:2.0"
        run.cancel_requested = True
        run.config = {"changed": True}
        store.save(runs=[run], tasks=[done, failed, upstream])
        assert store.get_run(run.id) == run
        assert store.load_tasks(run.id) == [done, failed, upstream]
        assert store.get_task(run.id, "zeta") == done

    def test_save_of_a_task_never_created_changes_nothing(self, store: Store) -> None:
        run = make_run()
        store.create_run(run, make_tasks(run.id, make_spec("a"), make_spec("b")))
        before_run = store.get_run(run.id)
        before_tasks = store.load_tasks(run.id)
        changed_run = replace(before_run, state=RunState.RUNNING, started_at=1.0)
        with pytest.raises(StoreError):
            store.save(
                runs=[changed_run],
                new_tasks=make_tasks(run.id, make_spec("c")),
                tasks=[
                    finished(before_tasks[0]),
                    TaskRecord(run_id=run.id, spec=make_spec("ghost")),
                ],
            )
        assert store.get_run(run.id) == before_run
        assert store.load_tasks(run.id) == before_tasks
        # the store still works after the failed save
        store.save(runs=[changed_run], new_tasks=make_tasks(run.id, make_spec("c")))
        assert [t.id for t in store.load_tasks(run.id)] == ["a", "b", "c"]
        assert store.get_run(run.id).state is RunState.RUNNING

    def test_save_of_a_run_never_created_fails(self, store: Store) -> None:
        store.create_run(make_run("real"), [])
        with pytest.raises(StoreError, match="never created"):
            store.save(runs=[make_run("ghost")])
        with pytest.raises(StoreError):
            store.save(new_tasks=make_tasks("ghost", make_spec("t")))
        assert [r.id for r in store.list_runs()] == ["real"]
        with pytest.raises(RunNotFound):
            store.get_run("ghost")

    def test_creating_twice_fails_and_keeps_the_first(self, store: Store) -> None:
        run = make_run()
        store.create_run(run, make_tasks(run.id, make_spec("a")))
        with pytest.raises(StoreError):
            store.create_run(replace(run, name="other"), make_tasks(run.id, make_spec("b")))
        with pytest.raises(StoreError):
            store.save(new_tasks=make_tasks(run.id, make_spec("a", "renamed")))
        with pytest.raises(StoreError):
            store.create_run(make_run("r2"), make_tasks("r2", make_spec("x"), make_spec("x")))
        assert store.get_run(run.id) == run
        assert [(t.id, t.name) for t in store.load_tasks(run.id)] == [("a", "a")]
        assert [r.id for r in store.list_runs()] == [run.id]

    # ------------------------------------------------------------ copies

    def test_records_returned_are_copies(self, store: Store) -> None:
        run = make_run(config={"k": 1})
        store.create_run(run, make_tasks(run.id, make_spec("a")))
        got = store.get_run(run.id)
        got.state = RunState.RUNNING
        got.config["k"] = 2
        listed = store.list_runs()[0]
        listed.name = "mutated"
        listed.config["k"] = 3
        task = store.load_tasks(run.id)[0]
        task.state = TaskState.READY
        task.attempt = 9
        one = store.get_task(run.id, "a")
        one.result = b"mutated"
        assert store.get_run(run.id) == make_run(config={"k": 1})
        assert store.list_runs()[0] == make_run(config={"k": 1})
        assert store.load_tasks(run.id) == make_tasks(run.id, make_spec("a"))

    def test_records_saved_are_copied_in(self, store: Store) -> None:
        run = make_run(config={"k": 1})
        tasks = make_tasks(run.id, make_spec("a"))
        store.create_run(run, tasks)
        run.name = "mutated"
        run.config["k"] = 2
        tasks[0].attempt = 5
        update = finished(store.get_task(run.id, "a"))
        store.save(tasks=[update])
        update.error = "changed after save"
        assert store.get_run(run.id) == make_run(config={"k": 1})
        assert store.get_task(run.id, "a").error == "first attempt: boom"
        assert store.get_task(run.id, "a").attempt == 2

    # ------------------------------------------------------------ lookups

    def test_run_ids_resolve_by_unique_prefix(self, store: Store) -> None:
        for run_id in ("abc123", "abd456", "xyz789", "r1", "r12"):
            store.create_run(make_run(run_id), make_tasks(run_id, make_spec(f"t-{run_id}")))
        assert store.get_run("abc").id == "abc123"
        assert store.get_run("xyz789").id == "xyz789"
        assert store.get_run("r1").id == "r1"  # an exact id wins over a longer match
        assert store.get_run("r12").id == "r12"
        assert [t.id for t in store.load_tasks("abd")] == ["t-abd456"]
        assert store.get_task("xy", "t-xyz789").run_id == "xyz789"

    def test_ambiguous_run_prefix_raises_run_not_found(self, store: Store) -> None:
        store.create_run(make_run("abc123"), [])
        store.create_run(make_run("abd456"), [])
        with pytest.raises(RunNotFound, match="ambiguous") as info:
            store.get_run("ab")
        assert info.value.fields["run"] == "ab"
        assert info.value.hint is not None and "more characters" in info.value.hint
        with pytest.raises(RunNotFound, match="ambiguous"):
            store.load_tasks("a")

    def test_missing_run_raises_run_not_found_with_hint(self, store: Store) -> None:
        store.create_run(make_run("abc123"), [])
        for call in (
            lambda: store.get_run("nope"),
            lambda: store.load_tasks("nope"),
            lambda: store.get_task("nope", "t"),
            lambda: store.request_cancel("nope"),
            lambda: store.get_run("abc1234"),  # longer than the real id
        ):
            with pytest.raises(RunNotFound) as info:
                call()
            assert isinstance(info.value, LookupError)
            assert info.value.hint is not None and "hexflow status" in info.value.hint

    def test_get_task_by_id_name_or_prefix(self, store: Store) -> None:
        specs = [
            make_spec("prep-3f2a", "prepare"),
            make_spec("sim-00a1", "simulate"),
            make_spec("sim-00b2", "simulate"),
            make_spec("plot-77", "plot"),
        ]
        store.create_run(make_run(), make_tasks("run-1", *specs))
        assert store.get_task("run-1", "sim-00b2").id == "sim-00b2"  # exact id
        assert store.get_task("run-1", "prepare").id == "prep-3f2a"  # unique name
        assert store.get_task("run-1", "plot-7").id == "plot-77"  # unique id prefix
        assert store.get_task("run-", "sim-00a").id == "sim-00a1"  # with a run prefix
        with pytest.raises(StoreError, match="ambiguous") as info:
            store.get_task("run-1", "simulate")  # two tasks have that name
        assert info.value.hint is not None
        with pytest.raises(StoreError, match="ambiguous"):
            store.get_task("run-1", "sim-")
        with pytest.raises(StoreError, match="no task 'nothing' in run run-1") as info:
            store.get_task("run-1", "nothing")
        assert not isinstance(info.value, RunNotFound)

    def test_find_cached_finds_only_succeeded_tasks_with_that_key(self, store: Store) -> None:
        run = make_run()
        store.create_run(run, make_tasks(run.id, make_spec("a"), make_spec("b"), make_spec("c")))
        a, b, c = store.load_tasks(run.id)
        store.save(
            tasks=[
                replace(a, state=TaskState.RUNNING, cache_key="k-a"),
                replace(b, state=TaskState.FAILED, cache_key="k-b"),
                replace(c, state=TaskState.SUCCEEDED),  # no key
            ]
        )
        assert store.find_cached("k-a") is None
        assert store.find_cached("k-b") is None
        assert store.find_cached("") is None
        store.save(tasks=[finished(a, cache_key="k-a", result=b"42")])
        hit = store.find_cached("k-a")
        assert hit is not None
        assert (hit.run_id, hit.id, hit.state, hit.result) == (
            run.id,
            "a",
            TaskState.SUCCEEDED,
            b"42",
        )
        assert store.find_cached("k-other") is None

    def test_find_cached_across_runs_and_new_tasks(self, store: Store) -> None:
        store.create_run(make_run("r-old", 1.0), [])
        store.save(new_tasks=[finished(TaskRecord(run_id="r-old", spec=make_spec("x")))])
        store.create_run(make_run("r-new", 2.0), make_tasks("r-new", make_spec("x")))
        hit = store.find_cached("key-x")
        assert hit is not None and (hit.run_id, hit.id) == ("r-old", "x")

    # ------------------------------------------------------------ cancels

    def test_cancel_requests_are_pending_until_handled(self, store: Store) -> None:
        store.create_run(make_run("run-1"), make_tasks("run-1", make_spec("a")))
        store.create_run(make_run("other"), [])
        assert store.pending_cancels("run-1") == []
        whole = store.request_cancel("run-1")
        one = store.request_cancel("run-", "a")  # run given by prefix
        elsewhere = store.request_cancel("other")
        assert len({whole, one, elsewhere}) == 3
        pending = store.pending_cancels("run-1")
        assert sorted((c.id, c.run_id, c.task_id) for c in pending) == sorted(
            [(whole, "run-1", None), (one, "run-1", "a")]
        )
        store.save(handled_cancels=[whole])
        assert [(c.id, c.task_id) for c in store.pending_cancels("run-1")] == [(one, "a")]
        assert [c.id for c in store.pending_cancels("other")] == [elsewhere]
        store.save(handled_cancels=[one, elsewhere])
        assert store.pending_cancels("run-1") == []
        assert store.pending_cancels("other") == []
        again = store.request_cancel("run-1")
        assert again not in (whole, one, elsewhere)
        assert [c.id for c in store.pending_cancels("run-1")] == [again]

    def test_handled_cancels_are_part_of_the_failed_save(self, store: Store) -> None:
        store.create_run(make_run(), [])
        req = store.request_cancel("run-1")
        with pytest.raises(StoreError):
            store.save(
                tasks=[TaskRecord(run_id="run-1", spec=make_spec("ghost"))],
                handled_cancels=[req],
            )
        assert [c.id for c in store.pending_cancels("run-1")] == [req]

    # ------------------------------------------------------------ listing

    def test_list_runs_newest_first(self, store: Store) -> None:
        assert store.list_runs() == []
        for run_id, created in [("b", 20.0), ("a", 10.0), ("d", 40.0), ("c", 30.0)]:
            store.create_run(make_run(run_id, created), [])
        assert [r.id for r in store.list_runs()] == ["d", "c", "b", "a"]
        assert [r.id for r in store.list_runs(limit=2)] == ["d", "c"]
        assert store.list_runs()[0] == make_run("d", 40.0)
