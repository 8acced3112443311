"""Resource requests and capacities (cpus, memory, gpus, nodes, walltime) and their parsers.

Memory is held in bytes and walltime in seconds; parsers accept the forms HPC users type
(``512M``, ``2GiB``, ``10m``, ``01:30:00``, ``1-12:00:00``) and reject anything else with
a message that shows the accepted forms.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from hexflow.errors import SpecError
from hexflow.model._pickling import fast_state

_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
_CLOCK_RE = re.compile(r"^\s*(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\s*$")


def parse_memory(value: int | float | str | None, field: str = "memory") -> int:
    """Bytes from ``512M``, ``2GiB``, ``1.5G`` or a number of bytes."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise SpecError(f"{field}: expected a size like '512M' or '4G', got {value!r}", field=field)
    if isinstance(value, int | float):
        amount, unit = float(value), ""
    else:
        match = _MEMORY_RE.match(str(value))
        if not match or match.group(2).lower() not in _MEMORY_UNITS:
            raise SpecError(
                f"{field}: cannot read {value!r} as a size",
                hint="write a number with an optional unit: 512M, 4G, 2GiB, 1000000 (bytes)",
                field=field,
            )
        amount, unit = float(match.group(1)), match.group(2).lower()
    if amount < 0 or math.isnan(amount):
        raise SpecError(f"{field}: must not be negative, got {value!r}", field=field)
    if math.isinf(amount):
        raise SpecError(f"{field}: must be a finite size, got {value!r}", field=field)
    return int(amount * _MEMORY_UNITS[unit])


def parse_duration(value: int | float | str | None, field: str = "walltime") -> float | None:
    """Seconds from ``90``, ``10m``, ``2h``, ``01:30:00``, ``30:00`` or ``1-12:00:00``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SpecError(f"{field}: expected a duration like '10m', got {value!r}", field=field)
    seconds: float
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        unit_match = _DURATION_RE.match(text)
        clock_match = _CLOCK_RE.match(text)
        if unit_match and unit_match.group(2) in _DURATION_UNITS:
            seconds = float(unit_match.group(1)) * _DURATION_UNITS[unit_match.group(2)]
        elif unit_match and unit_match.group(2) == "":
            seconds = float(unit_match.group(1))
        elif clock_match and ":" in text:
            days, first, second, third = clock_match.groups()
            parts = [int(p) for p in (first, second, third) if p is not None]
            if len(parts) == 3:
                h, m, s = parts
            elif days is not None:  # D-HH:MM is hours and minutes, as in Slurm
                h, m, s = parts[0], parts[1], 0
            else:  # MM:SS, as in Slurm
                h, m, s = 0, parts[0], parts[1]
            seconds = int(days or 0) * 86400 + h * 3600 + m * 60 + s
        else:
            raise SpecError(
                f"{field}: cannot read {value!r} as a duration",
                hint="write seconds (90), a unit (30s, 10m, 2h, 1d) "
                "or a clock (01:30:00, 1-12:00:00)",
                field=field,
            )
    if seconds <= 0 or math.isnan(seconds):
        raise SpecError(f"{field}: must be positive, got {value!r}", field=field)
    return seconds


_setattr = object.__setattr__  # how a frozen dataclass sets its fields


@dataclass(frozen=True, slots=True)
class Resources:
    """What a task asks for, or what a pool has free. Memory in bytes, walltime in seconds."""

    cpus: float = 1.0
    memory: int = 0
    gpus: int = 0
    nodes: int = 1
    walltime: float | None = None

    def __post_init__(self) -> None:
        for name in ("cpus", "memory", "gpus", "nodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(f"{name}: expected a number, got {value!r}", field=name)
            if value < 0:
                raise SpecError(f"{name}: must not be negative, got {value!r}", field=name)
            if not math.isfinite(value):
                raise SpecError(f"{name}: must be a finite number, got {value!r}", field=name)
        if self.nodes < 1:
            raise SpecError(
                f"nodes: a task needs at least one node, got {self.nodes}", field="nodes"
            )
        for name in ("gpus", "nodes"):
            value = getattr(self, name)
            if isinstance(value, float):
                if not value.is_integer():
                    raise SpecError(f"{name}: must be a whole number, got {value}", field=name)
                object.__setattr__(self, name, int(value))

    @classmethod
    def parse(
        cls,
        *,
        cpus: float = 1,
        memory: int | float | str | None = None,
        gpus: int = 0,
        nodes: int = 1,
        walltime: int | float | str | None = None,
    ) -> Resources:
        """Build from user-facing forms (memory '512M', walltime '10m')."""
        return cls(
            cpus=cpus,
            memory=parse_memory(memory),
            gpus=gpus,
            nodes=nodes,
            walltime=parse_duration(walltime),
        )

    def fits_in(self, free: Resources) -> bool:
        """True when this request fits inside ``free`` (walltime and nodes are not consumed)."""
        return self.cpus <= free.cpus and self.memory <= free.memory and self.gpus <= free.gpus

    def minus(self, used: Resources) -> Resources:
        return self._amounts(
            self.cpus - used.cpus, self.memory - used.memory, self.gpus - used.gpus
        )

    def plus(self, freed: Resources) -> Resources:
        return self._amounts(
            self.cpus + freed.cpus, self.memory + freed.memory, self.gpus + freed.gpus
        )

    def _amounts(self, cpus: float, memory: int, gpus: int) -> Resources:
        """A copy with other amounts, computed from valid ones (the engine's accounting, on
        every launch and end): only what arithmetic can break is checked again."""
        if cpus % 1:  # fractional cpus: 2.0 - 0.1 - 0.95 - 0.95 must be 0, not -6e-17
            cpus = round(cpus, 9) + 0.0
        if not (0 <= cpus < math.inf and 0 <= memory < math.inf and 0 <= gpus < math.inf):
            return replace(self, cpus=cpus, memory=memory, gpus=gpus)  # raises SpecError
        new = object.__new__(type(self))
        _setattr(new, "cpus", cpus)
        _setattr(new, "memory", memory)
        _setattr(new, "gpus", gpus)
        _setattr(new, "nodes", self.nodes)
        _setattr(new, "walltime", self.walltime)
        return new

    def describe(self) -> str:
        parts = [f"cpus={self.cpus:g}"]
        if self.memory:
            parts.append(f"memory={format_bytes(self.memory)}")
        if self.gpus:
            parts.append(f"gpus={self.gpus}")
        if self.nodes != 1:
            parts.append(f"nodes={self.nodes}")
        if self.walltime:
            parts.append(f"walltime={self.walltime:g}s")
        return " ".join(parts)


fast_state(Resources)


def format_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{n}B"
