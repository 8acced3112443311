"""The tasks of archetype 5. Each declares the datasets it reads and writes: hexflow stages
the input versions into the fast tier before the task starts and registers what the task
wrote as new versions after it succeeded, with their provenance.

``preprocess`` turns the raw scans into normalized, background-subtracted spectra; the
analyses (``find_peaks``, ``mean_profile``, ``peak_drift``) are what three users do with
the same shared version of those spectra.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

import hexflow as hx

CLEAN = hx.Dataset(
    "clean-scans",
    metadata={
        "title": "BL-5.3.1 scans, background-subtracted and normalized to flux",
        "keywords": ["beamline", "spectra", "preprocessed"],
        "license": "https://spdx.org/licenses/CC-BY-4.0",
    },
)


def _edges_background(counts: np.ndarray, edge: int = 150) -> np.ndarray:
    """A straight line through the first and last ``edge`` channels (no peaks there)."""
    x = np.arange(counts.size, dtype=float)
    idx = np.r_[0:edge, counts.size - edge : counts.size]
    slope, offset = np.polyfit(x[idx], counts[idx], 1)
    return np.asarray(slope * x + offset)


@hx.task(inputs=["raw-scans"], outputs=[CLEAN], cpus=1, memory="512M")
def preprocess() -> dict[str, Any]:
    raw = hx.input_path("raw-scans")
    log = json.loads((raw / "instrument.json").read_text())
    scans = sorted(raw.glob("scan-*.npy"))
    clean = np.stack(
        [
            (c - _edges_background(c)) / f
            for c, f in zip(map(np.load, scans), log["flux"], strict=True)
        ]
    )
    out = hx.output_path("clean-scans")
    np.save(out / "spectra.npy", clean)
    summary = {"scans": len(scans), "channels": int(clean.shape[1]), "beamline": log["beamline"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _peaks(spectrum: np.ndarray, count: int, width: int = 40) -> list[float]:
    """The ``count`` strongest maxima, each refined to its centroid over ±``width``."""
    s = spectrum.copy()
    found = []
    for _ in range(count):
        top = int(np.argmax(s))
        lo, hi = max(0, top - width), min(s.size, top + width + 1)
        window = np.clip(spectrum[lo:hi], 0, None)
        found.append(float(np.sum(np.arange(lo, hi) * window) / np.sum(window)))
        s[lo:hi] = -np.inf
    return sorted(found)


def _write(name: str, doc: dict[str, Any]) -> None:
    (hx.output_path(name) / f"{name}.json").write_text(json.dumps(doc, indent=2))


@hx.task(inputs=["clean-scans"], outputs=["peaks"])
def find_peaks(user: str, count: int = 3) -> dict[str, Any]:
    spectra = np.load(hx.input_path("clean-scans") / "spectra.npy")
    doc = {"user": user, "peaks": [_peaks(s, count) for s in spectra]}
    _write("peaks", doc)
    return doc


@hx.task(inputs=["clean-scans"], outputs=["profile"])
def mean_profile(user: str) -> dict[str, Any]:
    spectra = np.load(hx.input_path("clean-scans") / "spectra.npy")
    mean, std = spectra.mean(axis=0), spectra.std(axis=0)
    out = hx.output_path("profile")
    np.save(out / "mean.npy", mean)
    np.save(out / "std.npy", std)
    doc = {"user": user, "max_channel": int(np.argmax(mean)), "max": float(mean.max())}
    _write("profile", doc)
    return doc


@hx.task(inputs=["clean-scans"], outputs=["drift"])
def peak_drift(user: str) -> dict[str, Any]:
    spectra = np.load(hx.input_path("clean-scans") / "spectra.npy")
    strongest = [max(_peaks(s, 3), key=lambda c: s[int(round(c))]) for s in spectra]
    slope, offset = np.polyfit(np.arange(len(strongest)), strongest, 1)
    doc = {"user": user, "channels_per_scan": float(slope), "at_scan_0": float(offset)}
    _write("drift", doc)
    return doc


ANALYSES = {"alice": find_peaks, "bob": mean_profile, "carol": peak_drift}


def check_science(truth: dict[str, Any], results: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """The analyses against what the instrument was made to measure."""
    peaks = results["alice"]["peaks"]
    worst = max(
        abs(a - b)
        for found, true in zip(peaks, truth["peaks"], strict=True)
        for a, b in zip(found, true, strict=True)
    )
    drift = results["carol"]["channels_per_scan"]
    return {
        "peaks_within_1_channel": worst < 1.0,
        "drift_within_5_percent": abs(drift - truth["drift"]) < 0.05 * truth["drift"],
        "strongest_peak_in_profile": abs(results["bob"]["max_channel"] - 1010) < 30,
    }
