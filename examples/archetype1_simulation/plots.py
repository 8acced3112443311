"""The output phases of archetype 1: visualization tasks writing PNG plots, and the archive.

Each plot task reads the simulation's files, writes one PNG into the case's output
directory and returns its path. matplotlib is imported inside the tasks with the Agg
backend, so workers need no display and importing this module stays cheap. The archive
is a ``@hx.shell`` task: its command line is built from the upstream results and runs as
``tar`` in the workflow's working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hexflow_examples.archetype1_simulation import heat
from hexflow_examples.archetype1_simulation.heat import HeatParams
from hexflow_examples.archetype1_simulation.tasks import load_history

import hexflow as hx


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@hx.task(cpus=1, memory="1G", walltime="3m")
def plot_field(sim: dict[str, Any]) -> str:
    """Initial and final temperature fields side by side."""
    plt = _pyplot()
    p = HeatParams.from_dict(sim["params"])
    before, after = np.load(sim["initial"]), np.load(sim["final"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    extent = (0.0, p.length, 0.0, p.length)
    for ax, grid, label in ((axes[0], before, "t = 0"), (axes[1], after, "final")):
        image = ax.imshow(grid.T, origin="lower", extent=extent, cmap="inferno")
        ax.set(title=f"temperature, {label}", xlabel="x", ylabel="y")
        fig.colorbar(image, ax=ax, shrink=0.85)
    path = Path(sim["outdir"]) / "field.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)


@hx.task(cpus=1, memory="1G", walltime="3m")
def plot_history(sim: dict[str, Any]) -> str:
    """Total heat and peak temperature over time, with the analytic peak for comparison."""
    plt = _pyplot()
    p = HeatParams.from_dict(sim["params"])
    h = load_history(sim)
    analytic = [heat.analytic_peak(p, t) for t in h["time"]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, constrained_layout=True)
    drift = (h["heat"] - h["heat"][0]) / h["heat"][0]
    bound = max(1e-12, 2 * float(np.abs(drift).max()))
    top.plot(h["time"], drift, color="tab:red")
    top.set(ylim=(-bound, bound), ylabel="relative change of total heat")
    top.set_title(f"energy over time: total heat {h['heat'][0]:.6g}, conserved by insulated edges")
    bottom.plot(h["time"], h["max"] - p.ambient, label="simulated peak")
    bottom.plot(h["time"], analytic, "--", label="analytic Gaussian")
    bottom.set(xlabel="time", ylabel="peak excess temperature")
    bottom.legend()
    path = Path(sim["outdir"]) / "history.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)


@hx.task(cpus=1, memory="1G", walltime="3m")
def plot_profile(sim: dict[str, Any]) -> str:
    """Temperature along the centre line against the free-space analytic solution."""
    plt = _pyplot()
    p = HeatParams.from_dict(sim["params"])
    u = np.load(sim["final"])
    x = heat.cell_centres(p)
    t = p.steps * p.dt
    var = heat.analytic_variance(p, t)
    exact = p.ambient + heat.analytic_peak(p, t) * np.exp(-((x - p.length / 2) ** 2) / (2 * var))
    row = u[:, p.n // 2 - 1 : p.n // 2 + 1].mean(axis=1)  # the two cells astride the centre
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    ax.plot(x, row, "o", markersize=3, label="simulated")
    ax.plot(x, exact, "-", label="analytic")
    ax.set(xlabel="x", ylabel="temperature", title=f"centre-line profile at t = {t:.4f}")
    ax.legend()
    path = Path(sim["outdir"]) / "profile.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)


@hx.shell(cpus=1, memory="128M", walltime="1m")
def archive(
    outdir: str, archive_path: str, pngs: list[str], products: list[dict[str, Any]]
) -> list[str]:
    """Phase 5: pack the plots and data products into one tarball."""
    members = [Path(p).name for p in pngs]
    for product in products:
        members.extend(product.get("files", []))
    return ["tar", "czf", archive_path, "-C", outdir, *sorted(set(members))]
