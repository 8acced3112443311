"""The instrument and the physics of archetype 3, pure numpy: a powder-diffraction ring on
an area detector while the sample is heated, and what the analysis recovers from it.

A crystal's lattice spacing grows with temperature, ``d(T) = d0 (1 + alpha (T - T0))``;
Bragg's law puts its diffraction ring at ``2 theta = 2 asin(lambda / 2d)``, a radius of
``L tan(2 theta)`` on a detector at distance ``L``. ``frame`` draws that ring with photon
(Poisson) noise; ``measure`` integrates the image azimuthally, finds the ring's radius to
a fraction of a pixel (a parabola through the peak of the radial profile) and turns it
back into a spacing. ``expansion`` fits alpha from a series of measurements; the steering
step uses it to choose the temperatures the simulations explore next.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

Image = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Beamline:
    pixels: int = 256  # square detector
    pixel_size: float = 172e-6  # metres
    distance: float = 0.05  # sample to detector, metres
    wavelength: float = 0.7e-10  # metres (about 17.7 keV)
    d0: float = 2.0e-10  # lattice spacing at t0, metres
    t0: float = 300.0  # kelvin
    alpha: float = 2.4e-5  # linear thermal expansion, 1/K (aluminium)
    ring_width: float = 1.6  # pixels
    photons: float = 400.0  # peak counts on the ring
    background: float = 6.0  # counts per pixel

    def spacing(self, temperature: float) -> float:
        return self.d0 * (1.0 + self.alpha * (temperature - self.t0))

    def radius(self, spacing: float) -> float:
        """The ring's radius on the detector, in pixels."""
        two_theta = 2.0 * math.asin(self.wavelength / (2.0 * spacing))
        return self.distance * math.tan(two_theta) / self.pixel_size

    def spacing_at(self, radius: float) -> float:
        two_theta = math.atan(radius * self.pixel_size / self.distance)
        return self.wavelength / (2.0 * math.sin(two_theta / 2.0))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def frame(beam: Beamline, temperature: float, seed: int) -> Image:
    """One detector image of the sample at ``temperature`` (counts per pixel)."""
    n = beam.pixels
    y, x = np.indices((n, n), dtype=np.float64)
    r = np.hypot(x - n / 2, y - n / 2)
    ring = beam.photons * np.exp(
        -0.5 * ((r - beam.radius(beam.spacing(temperature))) / beam.ring_width) ** 2
    )
    rng = np.random.default_rng(seed)
    return rng.poisson(ring + beam.background).astype(np.float64)


def radial_profile(image: Image) -> Image:
    """Mean counts per whole-pixel radius from the detector's centre."""
    n = image.shape[0]
    y, x = np.indices(image.shape)
    r = np.hypot(x - n / 2, y - n / 2).astype(np.int64)
    sums = np.bincount(r.ravel(), weights=image.ravel())
    counts = np.bincount(r.ravel())
    return np.asarray(sums / np.maximum(counts, 1), dtype=np.float64)


def measure(beam: Beamline, image: Image) -> dict[str, float]:
    """The ring's radius (pixels, sub-pixel) and the lattice spacing it means."""
    profile = radial_profile(image)
    inner = 4  # the centre's few pixels are too noisy to hold the ring
    k = inner + int(np.argmax(profile[inner:-1]))
    a, b, c = profile[k - 1], profile[k], profile[k + 1]
    denom = a - 2 * b + c
    offset = 0.5 * (a - c) / denom if denom else 0.0
    radius = k + offset + 0.5  # bin k covers radii [k, k+1)
    return {"radius": radius, "spacing": beam.spacing_at(radius), "peak": float(b)}


def expansion(temperatures: list[float], spacings: list[float], beam: Beamline) -> float:
    """alpha from a least-squares line through (T, d) pairs."""
    slope = float(np.polyfit(np.asarray(temperatures), np.asarray(spacings), 1)[0])
    return slope / beam.d0


def ramp(frames: int, start: float = 300.0, step: float = 25.0) -> list[float]:
    """The temperatures of the heating ramp, one per frame."""
    return [start + step * i for i in range(frames)]


def relax_chain(
    spacing: float, temperature: float, steps: int, state: Image | None, seed: int
) -> tuple[Image, float]:
    """The simulation's kernel: a chain of 512 atoms with harmonic bonds of rest length
    ``spacing``, thermalised by ``steps`` overdamped Langevin steps; returns the positions
    and the mean bond length."""
    rng = np.random.default_rng(seed)
    atoms = 512
    x = state if state is not None else np.arange(atoms, dtype=np.float64) * spacing
    kT = 1.380649e-23 * temperature
    stiffness = 40.0  # N/m
    dt = 0.05
    for _ in range(steps):
        bonds = np.diff(x) - spacing
        force = np.zeros_like(x)
        force[:-1] += stiffness * bonds
        force[1:] -= stiffness * bonds
        x = (
            x
            + dt * force / stiffness
            + math.sqrt(2 * dt * kT / stiffness) * rng.standard_normal(atoms)
        )
    return x, float(np.mean(np.diff(x)))
