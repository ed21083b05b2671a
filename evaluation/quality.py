"""Explanation-quality metrics that re-explain: on noisy copies of the image, for another class,
on a randomised model, on the image the map keeps. Each takes ``explain(model, x, cls) -> H x W``
(a method's map at input resolution; :func:`explainer` makes one from a registry method) and
returns one number per image.

- **Stability** (average sensitivity; Yeh et al., NeurIPS 2019, as Quantus's ``AvgSensitivity``):
  the mean over ``samples`` noisy copies x + e (e uniform in [-r, r], r = ``radius`` x the image's
  value range) of ||E(x + e) - E(x)||_F / ||E(x)||_F. Lower is better.
- **Random Logit** (Sixt et al., ICML 2020): SSIM between the map of the class and the map of a
  class drawn at random among the others, each scaled to [0, 1] by its maximum. A method that draws
  the same map whatever the class scores 1. Lower is better.
- **Smooth MPRT** (Hedström et al., TMLR 2023, "Sanity checks revisited"): the model parameter
  randomisation test (Adebayo et al., 2018) with each map averaged over ``samples`` copies of the
  image with Gaussian noise (sigma = ``noise`` x the value range) first, which removes the noise
  that made the original test unreliable; here for the fully randomised model (every layer
  re-initialised, :func:`fully_randomised`): the Spearman correlation of the absolute maps
  before and after. Lower is better (the map depends on the weights).
- **Efficient MPRT** (ibid.): the rise in the map's complexity when the model is fully randomised:
  the discrete entropy of the map's histogram (``bins`` bins over [0, 1], the map scaled by its
  maximum) after, divided by before. Higher is better.
- **ADCC** (Poppi et al., CVPR Workshops 2021): the harmonic mean of coherency, 1 - complexity
  and 1 - average drop. Coherency: the map of the image the map keeps (x times the map scaled to
  [0, 1]; the rest at 0, the mean colour after normalisation) against the map itself, Pearson's
  r rescaled to [0, 1] as (r + 1) / 2; complexity: the mean of the scaled map (its L1 norm over
  H x W); average drop: max(0, Y - O) / Y on the class's softmax probability (Y on the image, O
  on the kept image). Higher is better.

Costs, in explanations and forwards per image (``COSTS``) are what the evaluation report writes
beside each metric's measured seconds."""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from scipy import stats
from torch import nn

import explainers
from explainers import render

from . import metrics

__all__ = ["Explain", "explainer", "stability", "random_logit", "fully_randomised", "smooth_mprt",
           "efficient_mprt", "adcc", "entropy", "COSTS"]

Explain = Callable[[nn.Module, torch.Tensor, int], np.ndarray]

COSTS = {
    "stability": "{samples} more explanations (noisy copies)",
    "random_logit": "1 more explanation (another class; a backward from the kept forward for a gradient method)",
    "smooth_mprt": "2 x {samples} more explanations (noisy copies, on the model and on its randomised copy)",
    "efficient_mprt": "1 more explanation (on the randomised copy)",
    "adcc": "1 more explanation (on the kept image) and 1 forward",
}


def explainer(method: str, layer: str | None, options: dict | None = None) -> Explain:
    """``explain(model, x, cls)`` for a registry method: H x W at input resolution (a pixel
    method's absolute attribution summed over colours, as the evaluation reads it), float64."""
    spec = explainers.get_method(method)
    extra = dict(options or {})

    def explain(model, x, cls):
        cap = explainers.Capture(model, x, layer=layer if spec.needs_layer or spec.wraps else None,
                                 pixels=spec.needs_pixels, guided=spec.guided, cam=bool(spec.needs_layer or spec.wraps))
        a = cap.explain(method, int(cls), **extra).attribution
        return np.asarray(np.abs(a).sum(0) if a.ndim == 3 else a, np.float64)
    return explain


def _range(x: torch.Tensor) -> float:
    return float(x.max() - x.min()) or 1.0


def stability(explain: Explain, model: nn.Module, x: torch.Tensor, cls: int, base: np.ndarray,
              samples: int = 3, radius: float = 0.02, seed: int = 0) -> float:
    """Average sensitivity (lower is better); ``base``: E(x), already computed. A zero map is
    infinitely sensitive to any change: NaN (counted by the caller, not averaged)."""
    norm = float(np.linalg.norm(base))
    if norm == 0:
        return float("nan")
    g = torch.Generator().manual_seed(int(seed))
    r = radius * _range(x)
    out = []
    for _ in range(samples):
        e = (torch.rand(x.shape, generator=g, dtype=torch.float64) * 2 - 1).to(x.dtype) * r
        out.append(np.linalg.norm(explain(model, x + e, cls) - base) / norm)
    return float(np.mean(out))


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.maximum(np.asarray(m, np.float64), 0)
    top = float(m.max())
    return m / top if top > 0 else m


def random_logit(explain: Explain, model: nn.Module, x: torch.Tensor, cls: int, base: np.ndarray,
                 classes: int, seed: int = 0) -> float:
    """SSIM of the class's map and a random other class's (lower is better)."""
    if classes < 2:
        raise ValueError("Random Logit needs a model with two classes at least")
    rng = np.random.default_rng(seed)
    other = int(rng.choice([c for c in range(classes) if c != cls]))
    return metrics.ssim(_unit(base), _unit(explain(model, x, other)), data_range=1.0)


def fully_randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every parameterised module re-initialised (the last step of
    ``evaluation.perturb.randomised_copies``' cascade), the original untouched."""
    from . import perturb
    last = None
    for _, last in perturb.randomised_copies(model, seed):
        pass
    if last is None:
        with explainers.model_lock(model):
            last = copy.deepcopy(model).eval()
    return last


def _smoothed(explain: Explain, model, x, cls, samples, noise, seed) -> np.ndarray:
    g = torch.Generator().manual_seed(int(seed))
    sigma = noise * _range(x)
    maps = [explain(model, x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype), cls)
            for _ in range(samples)]
    return np.mean(maps, axis=0)


def smooth_mprt(explain: Explain, model: nn.Module, randomised: nn.Module, x: torch.Tensor, cls: int,
                samples: int = 3, noise: float = 0.1, seed: int = 0) -> float:
    """Spearman's rho of the noise-averaged absolute maps of ``model`` and ``randomised`` (lower
    is better); NaN where a map is flat."""
    a = np.abs(_smoothed(explain, model, x, cls, samples, noise, seed))
    b = np.abs(_smoothed(explain, randomised, x, cls, samples, noise, seed))
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(stats.spearmanr(a.ravel(), b.ravel()).statistic)


def entropy(m: np.ndarray, bins: int = 100) -> float:
    """The discrete (Shannon, natural log) entropy of the histogram of the map scaled to [0, 1]
    by its maximum (``scipy.stats.entropy``)."""
    hist, _ = np.histogram(_unit(m), bins=bins, range=(0.0, 1.0))
    return float(stats.entropy(hist)) if hist.sum() else 0.0


def efficient_mprt(explain: Explain, model: nn.Module, randomised: nn.Module, x: torch.Tensor, cls: int,
                   base: np.ndarray, bins: int = 100) -> float:
    """Entropy of the randomised model's map over the model's (higher is better); NaN where the
    model's map has no entropy (a constant map)."""
    before = entropy(base, bins)
    if before == 0:
        return float("nan")
    return entropy(explain(randomised, x, cls), bins) / before


def adcc(explain: Explain, model: nn.Module, x: torch.Tensor, cls: int, base: np.ndarray) -> dict:
    """{"adcc", "coherency", "complexity", "average_drop"}; the map is scaled to [0, 1] by
    its maximum (``explainers.render.normalize``, as the evaluation's Average Drop). A zero map:
    ADCC 0 (it keeps nothing)."""
    (m01,) = render.normalize([np.maximum(np.asarray(base, np.float64), 0)], "per_map")
    mask = torch.from_numpy(np.asarray(m01, np.float32)).to(x)[None, None]
    kept = x * mask
    with torch.no_grad():
        probs = torch.softmax(model(torch.cat([x, kept])).float(), 1)[:, cls].cpu().numpy()
    y, o = float(probs[0]), float(probs[1])
    drop = max(0.0, y - o) / y if y > 0 else 0.0
    complexity = float(np.mean(m01))
    again = explain(model, kept, cls)
    if np.std(again) == 0 or np.std(base) == 0:
        coherency = 0.0
    else:
        coherency = (float(np.corrcoef(np.ravel(again), np.ravel(base))[0, 1]) + 1) / 2
    parts = (coherency, 1 - complexity, 1 - drop)
    score = 0.0 if min(parts) <= 0 else 3 / sum(1 / p for p in parts)
    return {"adcc": score, "coherency": coherency, "complexity": complexity, "average_drop": drop}
