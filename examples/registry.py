"""The demo registry: which demos exist, and running one into a report.

This module owns ``DEMOS`` (demo number -> ``Demo``), ``register`` (the decorator each
example module puts on its ``run(workdir)`` function) and ``run_demo`` (run a demo, return
its report). The example modules are imported lazily, the first time the registry is read
(``DEMOS``, ``demos()``, ``get_demo()``, ``run_demo()``), so importing this module is
cheap. To add a demo, append its module to ``EXAMPLE_MODULES`` and decorate its entry
point::

    @register(2, "Title", "One paragraph on what it shows.")
    def run(workdir: Path) -> dict[str, Any]:
        ...  # build and run a workflow in workdir; return {"ok": ..., "run_id": ..., ...}

A report is a JSON-ready dict with at least ``ok`` (bool), ``demo``, ``title``,
``run_id``, ``seconds`` and ``tasks`` (task counts by state), then the demo's own figures.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexflow import SpecError

DemoRun = Callable[[Path], dict[str, Any]]

# Modules that register demos when imported, in demo order.
EXAMPLE_MODULES: list[str] = [
    "hexflow_examples.archetype1_simulation.workflow",
    "hexflow_examples.archetype3_rapid_analysis.workflow",
    "hexflow_examples.archetype5_data_lifecycle.workflow",
    "hexflow_examples.archetype6_event_api.demo",
]


@dataclass(frozen=True)
class Demo:
    number: int
    title: str
    description: str
    run: DemoRun


_REGISTRY: dict[int, Demo] = {}
_loaded = False


def register(number: int, title: str, description: str) -> Callable[[DemoRun], DemoRun]:
    """Decorator: register ``fn(workdir) -> report`` as demo ``number``."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise SpecError(f"a demo number is a whole number >= 1, got {number!r}", field="number")

    def decorate(fn: DemoRun) -> DemoRun:
        known = _REGISTRY.get(number)
        same = known is not None and (known.run.__module__, known.run.__qualname__) == (
            fn.__module__,
            fn.__qualname__,
        )
        if known is not None and not same:
            raise SpecError(
                f"demo {number} is already registered ({known.title!r})",
                hint="give each demo its own number",
                field="number",
            )
        _REGISTRY[number] = Demo(number=number, title=title, description=description, run=fn)
        return fn

    return decorate


def _load() -> dict[int, Demo]:
    global _loaded
    if not _loaded:
        for module in EXAMPLE_MODULES:
            importlib.import_module(module)
        _loaded = True
    return _REGISTRY


def demos() -> dict[int, Demo]:
    """Every registered demo, by number, in order."""
    return dict(sorted(_load().items()))


def get_demo(number: int) -> Demo:
    registry = _load()
    demo = registry.get(number)
    if demo is None:
        available = ", ".join(f"{n} ({d.title})" for n, d in sorted(registry.items()))
        raise SpecError(
            f"there is no demo {number!r}; available: {available or 'none'}",
            hint="`hexflow demo` lists them",
            field="demo",
        )
    return demo


def run_demo(number: int, workdir: Path) -> dict[str, Any]:
    """Run demo ``number`` in ``workdir`` (created if missing) and return its report."""
    demo = get_demo(number)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    figures = demo.run(workdir)
    seconds = time.perf_counter() - started
    report: dict[str, Any] = {
        "ok": bool(figures.get("ok", False)),
        "demo": demo.number,
        "title": demo.title,
        "run_id": figures.get("run_id"),
        "seconds": round(seconds, 2),
        "tasks": dict(figures.get("tasks", {})),
        "workdir": str(workdir),
    }
    report.update({k: v for k, v in figures.items() if k not in report})
    return report


def __getattr__(name: str) -> Any:
    # ``DEMOS`` is computed on first access so that the example modules load lazily.
    if name == "DEMOS":
        return demos()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEMOS: dict[int, Demo]  # declared for type checkers; provided by __getattr__
