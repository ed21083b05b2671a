"""ROAD: Remove And Debias (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ICML 2022).

The pixels a map ranks highest (MoRF: most relevant first) or lowest (LeRF: least relevant first)
are removed, a fraction at a time, and filled by *noisy linear imputation*: each removed pixel
becomes the weighted mean of its eight neighbours (weight 1/6 for the four sharing a side, 1/12
for the diagonals; neighbours outside the image left out and the weights renormalised), which
over all removed pixels at once is one sparse linear system per image, solved by
``scipy.sparse.linalg.spsolve``; then Gaussian noise of standard deviation ``noise`` is added to
the filled pixels. Unlike filling with a constant colour, the fill leaks no information about the
removed pixels' shape through its edges (the paper's argument), and it costs no retraining.

A good map makes the class score fall fast under MoRF and stay up under LeRF. Each order gives the
mean score over the fractions removed (10% to 90% by default, as pytorch-grad-cam's averagers);
``combined`` is (LeRF - MoRF) / 2 (pytorch-grad-cam's ``ROADCombined``: higher is better).
Scores are score changes from the image's own, as there (``score="logit"``, or the softmax
probability of the class, the default here). The filled images are made in the model's input
space (imputation is a weighted mean, so the per-channel normalisation commutes with it).

Pixels are ranked as pytorch-grad-cam does (:func:`removed_mask`; ties aside); ``tests/evaluation/test_road.py`` checks the imputed images and the scores against
``pytorch_grad_cam.metrics.road`` with its noise set to 0.

Cost: one sparse solve (unknowns: the removed pixels) and one forward per fraction and order,
the forwards batched."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
from torch import nn

__all__ = ["NEIGHBOURS", "impute", "removed_mask", "road_scores", "road", "FRACTIONS"]

NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6),
              ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))  # (dy, dx), weight
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def impute(image: torch.Tensor, removed: np.ndarray, noise: float = 0.01,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """``image`` (C x H x W) with the pixels where ``removed`` (H x W, bool) is True replaced by
    the solution of: each removed pixel = the weighted mean of its in-image neighbours, known or
    removed; then plus N(0, noise²) from ``generator``. A removed region with no known pixel
    around it keeps the system singular: a ValueError."""
    removed = np.asarray(removed, bool)
    c, h, w = image.shape
    if removed.shape != (h, w):
        raise ValueError(f"the mask is {removed.shape}, the image {h} x {w}")
    flat_removed = removed.ravel()
    unknown = np.flatnonzero(flat_removed)
    if unknown.size == 0:
        return image.clone()
    if unknown.size == h * w:
        raise ValueError("every pixel is removed: nothing to impute from")
    values = image.detach().reshape(c, h * w).to(torch.float64).cpu().numpy()
    index = np.full(h * w, -1)
    index[unknown] = np.arange(unknown.size)
    ys, xs = np.divmod(unknown, w)
    rows, cols, data = [], [], []
    rhs = np.zeros((unknown.size, c))
    diagonal = np.zeros(unknown.size)
    for (dy, dx), weight in NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        at = np.flatnonzero(inside)
        neighbour = ny[inside] * w + nx[inside]
        diagonal[at] += weight
        is_unknown = flat_removed[neighbour]
        rows.append(at[is_unknown])
        cols.append(index[neighbour[is_unknown]])
        data.append(np.full(int(is_unknown.sum()), weight))
        np.add.at(rhs, at[~is_unknown], -weight * values[:, neighbour[~is_unknown]].T)
    rows.append(np.arange(unknown.size))
    cols.append(np.arange(unknown.size))
    data.append(-diagonal)
    system = scipy.sparse.csc_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                                     shape=(unknown.size, unknown.size))
    with np.errstate(all="ignore"):
        filled = scipy.sparse.linalg.spsolve(system, rhs)
    filled = np.asarray(filled).reshape(unknown.size, c)
    if not np.isfinite(filled).all():
        raise ValueError("the imputation has no unique solution (a removed region touches no known pixel)")
    out = values.copy()
    out[:, unknown] = filled.T
    result = torch.from_numpy(out).to(image.dtype).reshape(c, h, w)
    if noise:
        fill = torch.zeros(h * w, dtype=torch.bool)
        fill[torch.from_numpy(unknown)] = True
        shaped = result.reshape(c, h * w)
        shaped[:, fill] += noise * torch.randn((c, int(fill.sum())), generator=generator, dtype=torch.float64
                                               ).to(result.dtype)
    return result.to(image.device)


def removed_mask(m: np.ndarray, fraction: float, order: str) -> np.ndarray:
    """H x W bool: the pixels removed at ``fraction``: MoRF the highest of the map, LeRF the
    lowest. As many as pytorch-grad-cam removes on a map without ties (those at or beyond numpy's
    linear (1 - fraction) percentile: N - ceil((1 - fraction) (N - 1)) of N pixels); ties are
    broken by raster order, so a flat map loses that many pixels too (the peer removes every
    tied pixel: a constant map, the whole image)."""
    m = np.asarray(m, np.float64)
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf', not {order!r}")
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must lie in [0, 1), not {fraction}")
    n = m.size
    k = n - int(np.ceil((1 - fraction) * (n - 1) - 1e-9))
    ranked = np.argsort(-m.ravel() if order == "morf" else m.ravel(), kind="stable")
    out = np.zeros(n, bool)
    out[ranked[:k]] = True
    return out.reshape(m.shape)


def _score(model: nn.Module, batch: torch.Tensor, cls: int, score: str) -> np.ndarray:
    with torch.no_grad():
        out = model(batch).float()
    if score == "probability":
        out = torch.softmax(out, 1)
    elif score != "logit":
        raise ValueError(f"score must be 'probability' or 'logit', not {score!r}")
    return out[:, cls].cpu().numpy().astype(np.float64)


def road_scores(model: nn.Module, x: torch.Tensor, m: np.ndarray, cls: int, order: str,
                fractions: Sequence[float] = FRACTIONS, noise: float = 0.01, seed: int = 0,
                score: str = "probability") -> np.ndarray:
    """The class's score change (filled image minus the image) at each fraction removed in
    ``order``, from one batched forward; ``x``: 1 x C x H x W, ``m``: H x W. The noise comes from a
    generator seeded with ``seed``, so a figure is reproducible."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image, 1 x C x H x W, not {tuple(x.shape)}")
    if np.asarray(m).shape != tuple(x.shape[-2:]):
        raise ValueError(f"the map is {np.asarray(m).shape}, the image {tuple(x.shape[-2:])}")
    g = torch.Generator().manual_seed(int(seed))
    filled = [impute(x[0], removed_mask(m, f, order), noise, g) for f in fractions]
    scores = _score(model, torch.cat([x, torch.stack(filled)]), cls, score)
    return scores[1:] - scores[0]


def road(model: nn.Module, x: torch.Tensor, m: np.ndarray, cls: int, fractions: Sequence[float] = FRACTIONS,
         noise: float = 0.01, seed: int = 0, score: str = "probability") -> dict:
    """{"morf": mean change under MoRF (lower is better), "lerf": under LeRF (higher is better),
    "combined": (lerf - morf) / 2 (higher is better)}."""
    morf = road_scores(model, x, m, cls, "morf", fractions, noise, seed, score)
    lerf = road_scores(model, x, m, cls, "lerf", fractions, noise, seed + 1, score)
    return {"morf": float(morf.mean()), "lerf": float(lerf.mean()), "combined": float((lerf.mean() - morf.mean()) / 2)}
