"""How far two maps agree: Spearman rank correlation and the IoU of their top regions.

Used to compare two models' (or layers', or methods') maps of the same image and class. Both
maps must have the same shape (compare attributions at input resolution)."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _scipy_stats

__all__ = ["rankdata", "rank_correlation", "top_region", "iou", "top_region_iou"]


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape to be compared, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("maps contain NaN or infinite values")
    return a, b


def rankdata(values) -> np.ndarray:
    """Ranks 1..n of the flattened values, ties given their average rank
    (``scipy.stats.rankdata``, method "average")."""
    return _scipy_stats.rankdata(np.asarray(values, dtype=np.float64).ravel(), method="average")


def rank_correlation(a, b) -> float:
    """Spearman's rho: Pearson correlation of the average ranks. NaN when a map is constant
    (an all-zero Grad-CAM map has no ranking to agree with)."""
    a, b = _pair(a, b)
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def top_region(m, fraction: float = 0.15) -> np.ndarray:
    """Boolean mask of the ``fraction`` of pixels with the highest values (ties at the cut are
    all kept; pixels at or below zero never count: a map's region is where it has evidence)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    m = np.asarray(m, dtype=np.float64)
    k = max(1, math.ceil(fraction * m.size))
    cut = np.partition(m.ravel(), m.size - k)[m.size - k]
    return (m >= cut) & (m > 0)


def iou(a, b) -> float:
    """Intersection over union of two boolean masks; NaN when both are empty."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks must have the same shape, got {a.shape} and {b.shape}")
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else float("nan")


def top_region_iou(a, b, fraction: float = 0.15) -> float:
    """IoU of the two maps' top-``fraction`` regions (see :func:`top_region`)."""
    a, b = _pair(a, b)
    return iou(top_region(a, fraction), top_region(b, fraction))
