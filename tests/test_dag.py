"""WorkflowDAG: random DAGs are accepted in any order, cycles and bad batches are rejected whole."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hexflow.errors import SpecError
from hexflow.model import TaskKind, TaskSpec, WorkflowDAG, find_cycle


def spec(task_id: str, *deps: str) -> TaskSpec:
    # names differ from ids so messages are seen to use names
    return TaskSpec(
        id=task_id, name=f"n-{task_id}", kind=TaskKind.SHELL, command=("true",), deps=deps
    )


@st.composite
def dag_specs(draw: st.DrawFn, prefix: str = "t", max_size: int = 20) -> list[TaskSpec]:
    """A random DAG: node i depends on a subset of nodes 0..i-1."""
    n = draw(st.integers(1, max_size))
    specs = []
    for i in range(n):
        deps = draw(st.sets(st.integers(0, i - 1), max_size=4)) if i else set()
        specs.append(spec(f"{prefix}{i}", *(f"{prefix}{j}" for j in sorted(deps))))
    return specs


def snapshot(dag: WorkflowDAG) -> tuple[object, ...]:
    ids = [s.id for s in dag]
    return (
        len(dag),
        ids,
        {t: list(dag.dependents(t)) for t in ids},
        dag.topological_order(),
    )


def assert_topological(dag: WorkflowDAG) -> list[str]:
    order = dag.topological_order()
    assert sorted(order) == sorted(s.id for s in dag)
    position = {t: i for i, t in enumerate(order)}
    for s in dag:
        for dep in s.deps:
            assert position[dep] < position[s.id], f"{dep} must come before {s.id}"
    return order


def cycle_names(err: SpecError) -> list[str]:
    match = re.fullmatch(r"the workflow has a cycle: (.+)", err.message)
    assert match, err.message
    return match.group(1).split(" -> ")


@given(specs=dag_specs(), data=st.data())
def test_random_dags_are_accepted_in_any_batch_order(
    specs: list[TaskSpec], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(specs))
    dag = WorkflowDAG()
    dag.add_many(shuffled)
    assert len(dag) == len(specs)
    assert_topological(dag)
    for s in specs:
        assert s.id in dag
        assert dag.spec(s.id) is s
        for dep in s.deps:
            assert s.id in dag.dependents(dep)
    assert find_cycle({s.id: s for s in specs}) is None


@given(specs=dag_specs(max_size=25), data=st.data())
def test_dag_grows_batch_by_batch(specs: list[TaskSpec], data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, len(specs)), max_size=4)) | {len(specs)})
    dag = WorkflowDAG()
    start = 0
    for cut in cuts:
        dag.add_many(specs[start:cut])  # later batches depend on tasks of earlier ones
        start = cut
        assert len(dag) == cut
        assert_topological(dag)


def test_new_tasks_depend_on_old_ones() -> None:
    dag = WorkflowDAG()
    dag.add_many([spec("a"), spec("b", "a")])
    dag.add_many([spec("c", "b"), spec("d", "a", "c")])
    dag.add(spec("e", "d"))
    assert len(dag) == 5
    assert dag.dependents("a") == ["b", "d"]
    assert dag.dependents("e") == []
    assert assert_topological(dag) == ["a", "b", "c", "d", "e"]


@st.composite
def batch_with_cycle(draw: st.DrawFn) -> tuple[list[TaskSpec], list[TaskSpec]]:
    """An accepted base DAG and a second batch (on top of it) whose graph has a cycle."""
    base = draw(dag_specs(prefix="b", max_size=8))
    n = draw(st.integers(2, 12))
    deps: list[set[str]] = []
    for i in range(n):
        on_batch = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        on_base = draw(st.sets(st.sampled_from([s.id for s in base]), max_size=2))
        deps.append({f"u{j}" for j in on_batch} | on_base)
    # Close a loop: walk "depends on" edges down from a high node, then make the
    # node where the walk ends depend on where it started.
    top = draw(st.integers(1, n - 1))
    node = top
    while True:
        lower = sorted(int(d[1:]) for d in deps[node] if d.startswith("u"))
        if not lower:
            break
        step = draw(st.sampled_from([None, *lower]))
        if step is None and node != top:
            break
        node = step if step is not None else lower[0]
    if node == top:  # no edge going down: add one so the loop has two nodes
        node = draw(st.integers(0, top - 1))
        deps[top].add(f"u{node}")
    deps[node].add(f"u{top}")
    batch = [spec(f"u{i}", *sorted(d)) for i, d in enumerate(deps)]
    return base, draw(st.permutations(batch))


@given(case=batch_with_cycle())
def test_cycle_is_rejected_named_and_leaves_dag_unchanged(
    case: tuple[list[TaskSpec], list[TaskSpec]],
) -> None:
    base, batch = case
    dag = WorkflowDAG()
    dag.add_many(base)
    before = snapshot(dag)
    with pytest.raises(SpecError) as info:
        dag.add_many(batch)
    names = cycle_names(info.value)
    by_name = {s.name: s for s in batch}
    assert names[0] == names[-1]
    assert len(names) >= 3  # at least two distinct tasks: self-dependency is caught earlier
    assert len(set(names[:-1])) == len(names) - 1  # a simple cycle
    for first, then in zip(names, names[1:], strict=False):
        # execution order: ``then`` depends on ``first``
        assert by_name[first].id in by_name[then].deps, f"{first} -> {then} is not an edge"
    assert info.value.fields["cycle"] == [by_name[n].id for n in names]
    assert info.value.hint is not None
    assert snapshot(dag) == before
    assert all(s.id not in dag for s in batch)


def test_cycle_message_in_execution_order() -> None:
    dag = WorkflowDAG()
    # a runs before b (b depends on a), b before c, c before a
    with pytest.raises(SpecError) as info:
        dag.add_many([spec("a", "c"), spec("b", "a"), spec("c", "b")])
    assert str(info.value) == (
        "the workflow has a cycle: n-a -> n-b -> n-c -> n-a "
        "(hint: remove one of these dependencies)"
    )
    assert len(dag) == 0


def test_two_node_cycle_on_top_of_existing_tasks() -> None:
    dag = WorkflowDAG()
    dag.add(spec("root"))
    with pytest.raises(SpecError) as info:
        dag.add_many([spec("x", "root", "y"), spec("y", "x")])
    assert cycle_names(info.value) in (["n-x", "n-y", "n-x"], ["n-y", "n-x", "n-y"])
    assert [s.id for s in dag] == ["root"]
    assert dag.dependents("root") == []


def test_unknown_dependency_is_named_and_batch_rejected() -> None:
    dag = WorkflowDAG()
    dag.add(spec("a"))
    with pytest.raises(SpecError) as info:
        dag.add_many([spec("b", "a"), spec("c", "b", "nope")])
    err = info.value
    assert err.message == "task 'n-c' depends on unknown task 'nope'"
    assert err.fields == {"task": "c", "field": "depends_on"}
    assert err.hint is not None
    assert [s.id for s in dag] == ["a"]
    assert dag.dependents("a") == []


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([spec("a")], [spec("b"), spec("a")]),  # clashes with an existing task
        ([], [spec("a"), spec("b"), spec("a")]),  # clashes inside the batch
    ],
)
def test_duplicate_ids_are_rejected(first: list[TaskSpec], second: list[TaskSpec]) -> None:
    dag = WorkflowDAG()
    dag.add_many(first)
    before = snapshot(dag)
    with pytest.raises(SpecError, match="duplicate task id 'a'") as info:
        dag.add_many(second)
    assert info.value.fields == {"task": "a"}
    assert snapshot(dag) == before
    assert "b" not in dag


def test_find_cycle_returns_a_closed_path_or_none() -> None:
    specs = {s.id: s for s in [spec("a", "outside"), spec("b", "a"), spec("c", "b")]}
    assert find_cycle(specs) is None  # deps outside the mapping are ignored
    looped = {**specs, "a": spec("a", "c")}
    cycle = find_cycle(looped)
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == ["a", "b", "c"]
