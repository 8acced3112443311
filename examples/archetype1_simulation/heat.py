"""The numerical kernel of archetype 1: the 2-D heat equation on a square plate.

This module owns the physics and nothing else (no hexflow, no files): the parameters,
the initial condition, the explicit finite-difference step and the analytic expectations
the results are checked against. It solves

    du/dt = alpha * (d2u/dx2 + d2u/dy2)     on [0, L]^2, insulated (zero-flux) edges,

starting from a Gaussian hot spot, with the forward-time centred-space (FTCS) scheme. The
scheme is stable only while ``r = alpha * dt / dx**2 <= 1/4``; with insulated edges it
conserves the total heat exactly, and far from the edges the hot spot spreads like the
free-space solution: a Gaussian whose variance grows as ``sigma0**2 + 2 * alpha * t``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Grid = NDArray[np.float64]
STABILITY_LIMIT = 0.25  # largest stable r = alpha * dt / dx**2 for FTCS in two dimensions


class UnstableTimeStep(ValueError):
    """The time step breaks the FTCS stability limit; the solution would blow up."""


@dataclass(frozen=True)
class HeatParams:
    """Everything that defines one simulation; plain data, so it travels as JSON."""

    n: int = 128  # cells per side
    length: float = 1.0  # side of the plate
    alpha: float = 1.0  # thermal diffusivity
    r: float = 0.2  # stability number alpha * dt / dx**2
    steps: int = 800
    checkpoint_every: int = 100
    record_every: int = 10
    amplitude: float = 100.0  # peak temperature of the hot spot above ambient
    sigma0: float = 0.04  # initial width of the hot spot
    ambient: float = 20.0

    @property
    def dx(self) -> float:
        return self.length / self.n

    @property
    def dt(self) -> float:
        return self.r * self.dx**2 / self.alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeatParams:
        return cls(**data)


def check_stable(params: HeatParams) -> None:
    """Raise ``UnstableTimeStep`` unless the parameters give a stable, meaningful run."""
    if params.n < 8 or params.steps < 1 or params.alpha <= 0 or params.length <= 0:
        raise UnstableTimeStep(f"need n >= 8, steps >= 1, alpha > 0, length > 0: {params}")
    if not 0 < params.r <= STABILITY_LIMIT:
        raise UnstableTimeStep(
            f"r = alpha*dt/dx^2 = {params.r:g} is outside (0, {STABILITY_LIMIT}]: the explicit "
            f"scheme is unstable; use dt <= {STABILITY_LIMIT * params.dx**2 / params.alpha:.3e}"
        )


def cell_centres(params: HeatParams) -> NDArray[np.float64]:
    return (np.arange(params.n, dtype=np.float64) + 0.5) * params.dx


def initial_condition(params: HeatParams) -> Grid:
    """Ambient plate with a Gaussian hot spot in the middle."""
    x = cell_centres(params) - params.length / 2
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    return params.ambient + params.amplitude * np.exp(-r2 / (2 * params.sigma0**2))


def step(u: Grid, r: float) -> Grid:
    """One FTCS step with insulated edges (mirror ghost cells): returns the new grid."""
    padded = np.pad(u, 1, mode="edge")
    lap = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4.0 * u
    return u + r * lap


def advance(u: Grid, r: float, steps: int) -> Grid:
    for _ in range(steps):
        u = step(u, r)
    return u


def total_heat(u: Grid, params: HeatParams) -> float:
    """Heat above ambient, integrated over the plate (conserved with insulated edges)."""
    return float(np.sum(u - params.ambient) * params.dx**2)


def spread(u: Grid, params: HeatParams) -> float:
    """Variance along one axis of the excess-heat distribution around the plate's centre."""
    excess = u - params.ambient
    x = cell_centres(params) - params.length / 2
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    return float(np.sum(excess * r2) / np.sum(excess) / 2)


def analytic_variance(params: HeatParams, t: float) -> float:
    return params.sigma0**2 + 2 * params.alpha * t


def analytic_peak(params: HeatParams, t: float) -> float:
    """Peak excess temperature of the free-space solution: the Gaussian keeps its heat."""
    return params.amplitude * params.sigma0**2 / analytic_variance(params, t)


def observe(u: Grid, params: HeatParams, step_no: int) -> dict[str, float]:
    """One row of the run's history."""
    return {
        "step": float(step_no),
        "time": step_no * params.dt,
        "heat": total_heat(u, params),
        "max": float(u.max()),
        "min": float(u.min()),
        "mean": float(u.mean()),
        "spread": spread(u, params),
    }
