"""Simulated participants, to check that the study machinery detects a real difference. A
simulated participant sees what a person sees (the two PNGs) and the object's box, and prefers
the map with more of its energy inside the box."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["energy_in_box", "box_energy_answer"]


def energy_in_box(png: bytes, box) -> float:
    """Share of a pixel-space map's energy (distance from mid-grey, summed over colours) that
    lies inside ``box`` = [x0, y0, x1, y1] (half-open)."""
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float32)
    e = np.abs(a - 127.5).sum(axis=2)
    x0, y0, x1, y1 = box
    total = float(e.sum())
    return float(e[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0


def box_energy_answer(png_a: bytes, png_b: bytes, box, rng: np.random.Generator,
                      noise: float = 0.05) -> int:
    """An answer on the 5-point scale (+2: A clearly more reliable ... -2: B clearly): the
    difference of in-box energy shares, plus a little noise, cut at 0.03 and 0.15."""
    d = energy_in_box(png_a, box) - energy_in_box(png_b, box) + rng.normal(0, noise)
    if abs(d) < 0.03:
        return 0
    sign = 1 if d > 0 else -1
    return sign * (2 if abs(d) >= 0.15 else 1)
