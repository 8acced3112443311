"""The "external source": a beamline detector that writes a scan campaign to a landing
directory outside hexflow — one spectrum per scan (``scan-NNN.npy``: counts on a channel
axis, Gaussian peaks on a sloped background with Poisson noise), the raw detector frames
of the whole campaign (``frames.npy``, large enough to take the kernel copy path) and the
instrument's log (``instrument.json``). The peaks drift slowly from scan to scan; what
was put in (``truth``) is returned, so the analyses can be checked against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHANNELS = 2048


@dataclass(frozen=True)
class Campaign:
    scans: int = 12
    channels: int = CHANNELS
    peaks: tuple[float, ...] = (420.0, 1010.0, 1600.0)  # channel of each peak at scan 0
    heights: tuple[float, ...] = (900.0, 1500.0, 600.0)
    width: float = 12.0  # Gaussian sigma, channels
    drift: float = 0.75  # channels per scan (a detector warming up)
    flux: tuple[float, ...] = field(default=())  # incident flux per scan (from the log)
    frame_shape: tuple[int, int] = (256, 768)  # detector frames per scan, float32 (9 MiB)
    seed: int = 5

    def peak_positions(self, scan: int) -> list[float]:
        return [p + self.drift * scan for p in self.peaks]


def acquire(landing: Path, campaign: Campaign | None = None) -> dict[str, Any]:
    """Write the campaign into ``landing``; the truth (peak positions per scan)."""
    c = campaign or Campaign()
    rng = np.random.default_rng(c.seed)
    landing.mkdir(parents=True, exist_ok=True)
    x = np.arange(c.channels, dtype=float)
    flux = list(c.flux) or [float(f) for f in rng.uniform(0.8, 1.2, c.scans)]
    truth: list[list[float]] = []
    for scan in range(c.scans):
        centres = c.peak_positions(scan)
        signal = sum(
            h * np.exp(-0.5 * ((x - mu) / c.width) ** 2)
            for h, mu in zip(c.heights, centres, strict=True)
        )
        background = 40.0 + 0.01 * x
        counts = rng.poisson(flux[scan] * (signal + background)).astype(np.float64)
        np.save(landing / f"scan-{scan:03d}.npy", counts)
        truth.append(centres)
    frames = rng.random((c.scans, *c.frame_shape), dtype=np.float32)
    np.save(landing / "frames.npy", frames)
    log = {
        "beamline": "BL-5.3.1",
        "instrument": "1-D energy-dispersive detector",
        "channels": c.channels,
        "scans": c.scans,
        "flux": flux,
        "operator": "beamline staff",
    }
    (landing / "instrument.json").write_text(json.dumps(log, indent=2))
    return {"peaks": truth, "width": c.width, "drift": c.drift}
