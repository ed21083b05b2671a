"""Sanity check (Adebayo et al., 2018): randomise the model's parameters from the top layer
down, cumulatively, and measure how similar each method's map stays to the original map
(Spearman rank correlation and SSIM). A method that ignores the weights stays similar."""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
from PIL import Image

import explainers
from explainers import agreement

from . import metrics, perturb
from .data import Sample

__all__ = ["cascading"]


def _map(model, x, layer, method, cls):
    e = explainers.explain(model, x, method=method, layer=layer, target=cls)
    return np.abs(e.attribution).sum(0) if e.attribution.ndim == 3 else e.attribution


def cascading(loaded, samples: Iterable[Sample], methods, seed: int = 0,
              progress: Callable[[], None] | None = None) -> dict:
    """Per method, per randomised layer (top first): mean Spearman and SSIM between the map of
    the original top-1 class before and after randomisation, over the samples."""
    xs = [loaded.preprocess(Image.fromarray(s.image)).unsqueeze(0) for s in samples]
    if not xs:
        raise ValueError("no images for the sanity check")
    layer = loaded.default_layer
    originals = []
    for x in xs:
        cls = int(explainers.Capture(loaded.model, x, layer=layer).output.argmax())
        originals.append((cls, {m: _map(loaded.model, x, layer, m, cls) for m in methods}))
    out = {m: [] for m in methods}
    for name, randomised in perturb.randomised_copies(loaded.model, seed):
        for m in methods:
            rho, ss = [], []
            for x, (cls, maps) in zip(xs, originals):
                after = _map(randomised, x, layer, m, cls)
                r = agreement.rank_correlation(maps[m], after)
                rho.append(0.0 if np.isnan(r) else abs(r))
                both = [maps[m] / (maps[m].max() or 1), after / (after.max() or 1)]
                ss.append(metrics.ssim(*both, data_range=1.0))
            out[m].append({"randomised_down_to": name, "spearman_abs": float(np.mean(rho)), "ssim": float(np.mean(ss))})
        if progress:
            progress()
    return out
