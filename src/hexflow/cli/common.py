"""What every ``hexflow`` command shares: the consoles, the ``--json`` option, settings
from the context, and the error guard that maps errors to exit codes (0 success, 1 the run
failed, 2 bad input, 3 an internal or store error)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from hexflow.errors import HexflowError, SpecError, StoreError
from hexflow.settings import Settings

console = Console(stderr=True, soft_wrap=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def settings_of(ctx: typer.Context) -> Settings:
    obj: Settings = ctx.obj
    return obj


def guard(fn: Any) -> Any:
    try:
        return _guarded(fn)
    except (HexflowError, typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # a bug of ours: say so plainly, keep the traceback for a report
        import traceback

        console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc}\n"
            "[yellow]hint:[/] this is a hexflow bug; please report it with the traceback "
            "below",
            highlight=False,
        )
        console.print(traceback.format_exc(), highlight=False, markup=False)
        raise typer.Exit(3) from None


def _guarded(fn: Any) -> Any:
    try:
        return fn()
    except SpecError as exc:
        fail(exc, 2)
    except StoreError as exc:
        fail(
            exc,
            2
            if "no run" in exc.message or "no task" in exc.message or "ambiguous" in exc.message
            else 3,
        )
    except HexflowError as exc:
        fail(exc, 3)


def fail(exc: HexflowError, code: int) -> None:
    console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
    if exc.hint:
        console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
    raise typer.Exit(code)
