"""Reading an elastic plan file (YAML or JSON) into a validated ``scheduler.elastic.Plan``.

The one function here that opens a file; the checks are ``parse_plan``'s. Errors are
``SpecError``s naming the file, and the line for YAML syntax errors or the field for bad
values (e.g. ``pools[0].windows[1].hours``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hexflow.errors import SpecError
from hexflow.scheduler.elastic import Plan, parse_plan


def load_plan(path: str | Path, total: int) -> Plan:
    """The plan in ``path`` for a machine of ``total`` nodes."""
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            f"cannot read plan {where}: {exc.strerror or exc}",
            hint="give the path of a YAML plan file",
            path=str(where),
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SpecError(
            f"plan {where}: not valid YAML" + (f" (line {line})" if line else ""),
            hint="a plan is a mapping with a list of pools; see docs/simulator.md",
            path=str(where),
            line=line,
        ) from None
    try:
        return parse_plan(data, total)
    except SpecError as exc:
        raise SpecError(
            f"{where}: {exc.message}", hint=exc.hint, path=str(where), **exc.fields
        ) from None


__all__ = ["load_plan"]
