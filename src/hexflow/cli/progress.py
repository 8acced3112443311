"""Live progress for ``hexflow run``/``resume``: a Rich bar with done/running/failed and ETA."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hexflow.flow.runtime import Progress as EngineProgress


class RunProgress:
    def __init__(self, console: Console) -> None:
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}  failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def factory(self, run_id: str, total: int) -> Callable[[EngineProgress], None]:
        def update(p: EngineProgress) -> None:
            running = p.counts.get("running", 0) + p.counts.get("submitted", 0)
            failed = sum(p.counts.get(s, 0) for s in ("failed", "upstream_failed", "cancelled"))
            if self._task is None:
                self._bar.start()
                self._task = self._bar.add_task(
                    f"run {run_id}", total=p.total, running=running, failed=failed
                )
            self._bar.update(
                self._task, completed=p.done, total=p.total, running=running, failed=failed
            )

        return update

    def stop(self) -> None:
        self._bar.stop()


@contextmanager
def live_progress(console: Console, enabled: bool) -> Iterator[RunProgress | None]:
    from hexflow.flow.runtime import progress_factory

    if not enabled:
        yield None
        return
    progress = RunProgress(console)
    token = progress_factory.set(progress.factory)
    try:
        yield progress
    finally:
        progress_factory.reset(token)
        progress.stop()
