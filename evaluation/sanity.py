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


def _maps(model, x, layer, methods, cls=None) -> tuple[int, dict]:
    """(class, {method: H x W map}) from one forward pass; ``cls`` None: the top-1 class."""
    capture = explainers.Capture(model, x, layer=layer,
                                 pixels=any(explainers.get_method(m).needs_pixels for m in methods))
    cls = int(capture.output.argmax()) if cls is None else cls
    maps = {}
    for m in methods:
        a = capture.explain(m, cls).attribution
        maps[m] = np.abs(a).sum(0) if a.ndim == 3 else a
    return cls, maps


def cascading(loaded, samples: Iterable[Sample], methods, seed: int = 0,
              progress: Callable[[], None] | None = None) -> dict:
    """Per method, per randomised layer (top first): mean Spearman and SSIM between the map of
    the original top-1 class before and after randomisation, over the samples."""
    xs = [loaded.preprocess(Image.fromarray(s.image)).unsqueeze(0) for s in samples]
    if not xs:
        raise ValueError("no images for the sanity check")
    layer = loaded.default_layer
    originals = [_maps(loaded.model, x, layer, methods) for x in xs]
    out = {m: [] for m in methods}
    for name, randomised in perturb.randomised_copies(loaded.model, seed):
        rho, ss = {m: [] for m in methods}, {m: [] for m in methods}
        for x, (cls, maps) in zip(xs, originals):
            _, after = _maps(randomised, x, layer, methods, cls)
            for m in methods:
                r = agreement.rank_correlation(maps[m], after[m])
                rho[m].append(0.0 if np.isnan(r) else abs(r))
                both = [maps[m] / (maps[m].max() or 1), after[m] / (after[m].max() or 1)]
                ss[m].append(metrics.ssim(*both, data_range=1.0))
        for m in methods:
            out[m].append({"randomised_down_to": name, "spearman_abs": float(np.mean(rho[m])),
                           "ssim": float(np.mean(ss[m]))})
        if progress:
            progress()
    return out
