"""What every ``hexflow data ...`` command shares: the --project and --storage options,
opening the data services, and the data layer's exit codes — 0 ok, 1 the transfer (or
action) failed or a quota refused it, 2 bad input (a location, reference, option or rule
that needs fixing), 3 internal or store error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from hexflow.cli.common import console, guard, settings_of
from hexflow.data.errors import (
    BackendError,
    DataError,
    DataInputError,
    DataNotFound,
    QuotaExceeded,
    TransferFailed,
)
from hexflow.errors import HexflowError, SpecError

ProjectOpt = Annotated[
    str,
    typer.Option(
        "--project", envvar="HEXFLOW_PROJECT", help="Project whose namespace and catalog to use."
    ),
]
StorageOpt = Annotated[
    Path | None,
    typer.Option(
        "--storage",
        envvar="HEXFLOW_STORAGE",
        help="Storage settings file (default: $HEXFLOW_HOME/storage.yaml if present).",
    ),
]


def fail(exc: HexflowError, code: int) -> None:
    """Print the error and its hint verbatim (no markup: paths like ``x:y:`` stay as
    written) and exit with ``code``."""
    console.print("[bold red]error:[/] ", end="")
    console.print(exc.message, markup=False, emoji=False, highlight=False)
    if exc.hint:
        console.print("[yellow]hint:[/] ", end="")
        console.print(exc.hint, markup=False, emoji=False, highlight=False)
    raise typer.Exit(code)


def run_data(fn: Callable[[], Any]) -> Any:
    """``guard`` plus the data layer's own exit codes."""

    def mapped() -> Any:
        try:
            return fn()
        except (DataInputError, DataNotFound) as exc:
            fail(exc, 2)
        except (TransferFailed, QuotaExceeded, BackendError) as exc:
            fail(exc, 1)
        except DataError as exc:
            fail(exc, 3)

    return guard(mapped)


@contextmanager
def data_services(
    ctx: typer.Context, project: str, storage: Path | None, workers: int = 8
) -> Iterator[Any]:
    from hexflow.data import load_storage, open_data
    from hexflow.model.datasets import check_name

    settings = settings_of(ctx)
    try:
        check_name(project, "project name")
    except SpecError as exc:
        bad_input(f"--project: {exc.message}", hint=exc.hint)
    config = run_data(lambda: load_storage(settings.home, storage))
    services = run_data(
        lambda: open_data(settings.db_url, config, project=project, workers=workers)
    )
    try:
        yield services
    finally:
        services.close()


def bad_input(message: str, hint: str | None = None) -> None:
    fail(DataInputError(message, hint=hint), 2)


@contextmanager
def progress_bar(enabled: bool, label: str) -> Iterator[Callable[[Any], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("files {task.fields[files]}"),
        TimeRemainingColumn(),
        console=console,
    )
    task = bar.add_task(label, total=None, files="")
    bar.start()

    def update(p: Any) -> None:
        bar.update(
            task,
            description=f"{label} {p.transfer_id}",
            completed=p.bytes_done,
            total=p.bytes_total or None,
            files=f"{p.files_done}/{p.files_total}"
            + (f" [red]failed {p.failed}[/]" if p.failed else ""),
        )

    try:
        yield update
    finally:
        bar.stop()
