"""Map-only metrics (numpy): the box from a map (paper section 4.1), IoU, localisation error, the
pointing game and its recall-aware variant (section 4.2), curve areas, SSIM."""
from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["largest_component", "box_from_map", "box_iou", "localisation", "pointing_hit",
           "recall_aware_hit", "auc", "ssim"]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1, half-open pixel box


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (ties: the first found in raster
    order); an empty mask gives an empty mask."""
    mask = np.asarray(mask, bool)
    labels = np.zeros(mask.shape, np.int32)
    best, best_size, current = 0, 0, 0
    h, w = mask.shape
    for y, x in zip(*np.nonzero(mask)):
        if labels[y, x]:
            continue
        current += 1
        labels[y, x] = current
        size, queue = 0, deque([(y, x)])
        while queue:
            cy, cx = queue.popleft()
            size += 1
            for ny in range(max(cy - 1, 0), min(cy + 2, h)):
                for nx in range(max(cx - 1, 0), min(cx + 2, w)):
                    if mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = current
                        queue.append((ny, nx))
        if size > best_size:
            best, best_size = current, size
    return labels == best if best else np.zeros_like(mask)


def box_from_map(m: np.ndarray, threshold: float = 0.15) -> Box | None:
    """Threshold the map at ``threshold`` x its maximum, keep the largest connected segment, and
    return the box around it (None for a map with no positive value)."""
    m = np.asarray(m, np.float64)
    top = float(m.max()) if m.size else 0.0
    if top <= 0:
        return None
    seg = largest_component(m >= threshold * top)
    ys, xs = np.nonzero(seg)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def box_iou(a: Box | None, b: Box | None) -> float:
    if a is None or b is None:
        return 0.0
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def localisation(predicted: list[tuple[str, Box | None]], truth: list[tuple[str, Box]],
                 iou: float = 0.5) -> bool:
    """ILSVRC rule: correct when one of the predicted (class, box) pairs names a true class
    and overlaps one of that class's true boxes by IoU >= ``iou``. Top-1 error: pass the top
    prediction; top-5: the five best."""
    return any(c == tc and box_iou(b, tb) >= iou for c, b in predicted for tc, tb in truth)


def pointing_hit(m: np.ndarray, mask: np.ndarray, tolerance: float = 15.0) -> bool:
    """Pointing game: the map's maximum lies within ``tolerance`` pixels of the object (its
    mask, or a box rasterised as a mask). Ties: the first maximum in raster order."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return False
    y, x = np.unravel_index(int(np.argmax(m)), np.shape(m))
    ys, xs = np.nonzero(mask)
    return bool(((ys - y) ** 2 + (xs - x) ** 2).min() <= tolerance ** 2)


def recall_aware_hit(m: np.ndarray, mask: np.ndarray | None, reject_below: float,
                     tolerance: float = 15.0) -> bool:
    """The paper's recall-aware pointing: a map whose maximum is below ``reject_below`` rejects
    the class. Rejecting an absent class (``mask`` None) is a hit, accepting it a miss; a
    present class must be accepted and pointed at."""
    rejected = float(np.max(m)) < reject_below
    if mask is None or not np.asarray(mask).any():
        return rejected
    return (not rejected) and pointing_hit(m, mask, tolerance)


def auc(y: np.ndarray, x: np.ndarray | None = None) -> float:
    """Area under a curve by the trapezoid rule (x defaults to evenly spaced points on [0, 1])."""
    y = np.asarray(y, np.float64)
    x = np.linspace(0.0, 1.0, y.size) if x is None else np.asarray(x, np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7, data_range: float | None = None) -> float:
    """Mean structural similarity (Wang et al. 2004) of two 2-D maps with a uniform window;
    maps are compared on the range of the pair (or ``data_range``)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {a.shape} and {b.shape}")
    rng = data_range if data_range is not None else max(a.max(), b.max()) - min(a.min(), b.min())
    rng = rng if rng > 0 else 1.0
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    w = min(window, *a.shape)

    def mean(v):  # uniform filter over valid windows via a summed-area table
        s = np.pad(v, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        return (s[w:, w:] - s[:-w, w:] - s[w:, :-w] + s[:-w, :-w]) / (w * w)

    ma, mb = mean(a), mean(b)
    va, vb = mean(a * a) - ma ** 2, mean(b * b) - mb ** 2
    cov = mean(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return float(s.mean())
