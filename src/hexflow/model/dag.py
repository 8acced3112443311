"""WorkflowDAG: tasks and their dependencies, growing while a run goes on.

Invariants: every dependency names a task in the DAG (or one added in the same batch),
and the graph has no cycle; a rejected batch leaves the DAG unchanged and the error names
the cycle (``a -> b -> a``) or the missing task.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hexflow.errors import SpecError
from hexflow.model.spec import TaskSpec


class WorkflowDAG:
    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}
        self._dependents: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._specs

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self._specs.values())

    def spec(self, task_id: str) -> TaskSpec:
        return self._specs[task_id]

    def dependents(self, task_id: str) -> list[str]:
        return self._dependents.get(task_id, [])

    def add(self, spec: TaskSpec) -> None:
        self.add_many([spec])

    def add_many(self, specs: Iterable[TaskSpec]) -> None:
        """Add a batch atomically: all of it, or none of it with an error that says why."""
        batch: dict[str, TaskSpec] = {}
        for spec in specs:
            if spec.id in self._specs or spec.id in batch:
                raise SpecError(
                    f"duplicate task id {spec.id!r}",
                    hint="give each task a unique name",
                    task=spec.id,
                )
            batch[spec.id] = spec
        for spec in batch.values():
            for dep in spec.deps:
                if dep not in self._specs and dep not in batch:
                    raise SpecError(
                        f"task {spec.name!r} depends on unknown task {dep!r}",
                        hint="check the spelling, or define that task in the same workflow",
                        task=spec.id,
                        field="depends_on",
                    )
        # Existing tasks cannot depend on new ones, so a cycle can only lie inside the batch.
        cycle = find_cycle(batch)
        if cycle:
            names = " -> ".join(batch[t].name for t in cycle)
            raise SpecError(
                f"the workflow has a cycle: {names}",
                hint="remove one of these dependencies",
                cycle=cycle,
            )
        for spec in batch.values():
            self._specs[spec.id] = spec
            for dep in spec.deps:
                self._dependents.setdefault(dep, []).append(spec.id)

    def topological_order(self) -> list[str]:
        order: list[str] = []
        indegree = {t: len(s.deps) for t, s in self._specs.items()}
        frontier = [t for t, d in indegree.items() if d == 0]
        while frontier:
            node = frontier.pop()
            order.append(node)
            for child in self.dependents(node):
                indegree[child] -= 1
                if indegree[child] == 0:
                    frontier.append(child)
        return order


def find_cycle(specs: dict[str, TaskSpec]) -> list[str] | None:
    """A cycle among ``specs`` as a closed path [a, b, ..., a], or None. Iterative DFS."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(specs, white)
    for root in specs:
        if color[root] != white:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(specs[root].deps))]
        path = [root]
        color[root] = grey
        while stack:
            node, deps = stack[-1]
            advanced = False
            for dep in deps:
                if dep not in specs:
                    continue
                if color[dep] == grey:
                    start = path.index(dep)
                    # path follows "depends on" edges; report it in execution order
                    cycle = path[start:] + [dep]
                    return list(reversed(cycle))
                if color[dep] == white:
                    color[dep] = grey
                    path.append(dep)
                    stack.append((dep, iter(specs[dep].deps)))
                    advanced = True
                    break
            if not advanced:
                color[node] = black
                path.pop()
                stack.pop()
    return None
