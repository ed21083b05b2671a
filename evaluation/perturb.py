"""Metrics that run the model again on changed inputs: occlusion sensitivity, deletion and
insertion curves (Petsiuk et al., RISE, 2018), Average Drop and Increase in Confidence
(Chattopadhyay et al., Grad-CAM++, 2018), and cascading parameter randomisation (Adebayo et al.,
Sanity Checks for Saliency Maps, 2018). Inputs are preprocessed 1 x C x H x W tensors; the
"mean" baseline is 0 after normalisation (the dataset's mean colour)."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

import explainers
from explainers.masking import blur

__all__ = ["occlusion_map", "deletion_insertion", "average_drop_increase", "randomised_copies"]


def _batched(model: nn.Module, batch: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(batch[i:i + chunk]) for i in range(0, batch.shape[0], chunk)])


def occlusion_map(model: nn.Module, x: torch.Tensor, cls: int, patch: int = 8, stride: int = 4,
                  baseline: float = 0.0) -> np.ndarray:
    """H x W: how much the logit of ``cls`` drops when a ``patch`` x ``patch`` square around
    each pixel is set to ``baseline``, averaged over the patches that cover the pixel
    (Zeiler & Fergus occlusion, as the paper's faithfulness reference): the registry's
    ``occlusion`` method (:mod:`explainers.perturbation`), not a copy of it."""
    e = explainers.explain(model, x, method="occlusion", target=cls, patch=patch, stride=stride,
                           baseline=baseline)
    return e.attribution.astype(np.float64)


def deletion_insertion(model: nn.Module, x: torch.Tensor, m: np.ndarray, cls: int,
                       steps: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probability of ``cls`` as the map's pixels are removed, most important first
    (deletion: replaced by the mean colour), and as they are put back into a blurred copy
    (insertion); ``steps + 1`` points each from 0% to 100% of the pixels, one batched forward."""
    _, _, h, w = x.shape
    order = np.argsort(-np.asarray(m, np.float64).ravel(), kind="stable")
    counts = np.linspace(0, h * w, steps + 1).round().astype(int)
    masks = np.zeros((steps + 1, h * w), np.float32)
    for i, c in enumerate(counts):
        masks[i, order[:c]] = 1.0
    mk = torch.from_numpy(masks).view(steps + 1, 1, h, w).to(x)
    deleted = x * (1 - mk)  # mean colour (0) where removed
    blurred = blur(x)
    inserted = blurred * (1 - mk) + x * mk
    probs = torch.softmax(_batched(model, torch.cat([deleted, inserted])).float(), 1)[:, cls].cpu().numpy()
    return probs[:steps + 1], probs[steps + 1:]


def average_drop_increase(model: nn.Module, x: torch.Tensor, m01: np.ndarray, cls: int,
                          y: float | None = None) -> tuple[float, bool]:
    """Grad-CAM++'s measures on the softmax probability: the image kept only where the map is
    (x times the map in [0, 1], the rest at the mean colour) -> (max(0, Y - O) / Y, O > Y).
    ``y``: the probability on the whole image, when already known (saves its forward)."""
    mask = torch.from_numpy(np.clip(np.asarray(m01, np.float32), 0, 1)).to(x)[None, None]
    batch = x * mask if y is not None else torch.cat([x, x * mask])
    probs = torch.softmax(_batched(model, batch).float(), 1)[:, cls].cpu().numpy()
    y, o = (float(y), float(probs[0])) if y is not None else (float(probs[0]), float(probs[1]))
    return (max(0.0, y - o) / y if y > 0 else 0.0), o > y


def randomised_copies(model: nn.Module, seed: int = 0):
    """Cascading randomisation from the top layer down: yields (module name, copy) with that
    module and every one above it re-initialised (``reset_parameters``), the original model
    untouched: copied under its lock (so no other thread's hooks are copied with it), the
    re-initialisation drawn from its own generator state inside ``torch.random.fork_rng`` (the
    caller's global random state is left as it was). Modules without parameters are skipped."""
    with explainers.model_lock(model):
        work = copy.deepcopy(model).eval()
    names = [n for n, mod in work.named_modules()
             if hasattr(mod, "reset_parameters") and any(True for _ in mod.parameters(recurse=False))]
    modules = dict(work.named_modules())
    state = None
    for name in reversed(names):
        with torch.random.fork_rng():
            if state is None:
                torch.manual_seed(seed)
            else:
                torch.set_rng_state(state)
            with torch.no_grad():
                modules[name].reset_parameters()
            state = torch.get_rng_state()
        yield name, work
