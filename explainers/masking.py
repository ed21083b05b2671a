"""Check what a map claims by removing its region: mask part of the input and run the model
again. Masking the Grad-CAM region of class c should lower y^c; masking the counterfactual
region (evidence against c, paper section 3.3) should raise it."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BASELINES", "masked_inputs", "masked_outputs", "blur"]

BASELINES = ("mean", "blur")


def blur(x: torch.Tensor) -> torch.Tensor:
    """A strong box blur (two passes, kernel ~1/8 of the image side, reflected edges)."""
    k = max(3, (min(x.shape[-2:]) // 8) | 1)
    y = x
    for _ in range(2):
        y = F.avg_pool2d(F.pad(y, [k // 2] * 4, mode="reflect"), k, stride=1)
    return y


def masked_inputs(x: torch.Tensor, masks: Sequence[np.ndarray], baseline: str = "mean") -> torch.Tensor:
    """The masked copies of ``x`` (1 x C x H x W, preprocessed), one row per mask: what
    :func:`masked_outputs` runs the model on, and what a picture of a masked image should show.
    ``baseline``: ``"mean"`` puts the dataset's mean colour (0 after normalisation) in the masked
    pixels, ``"blur"`` a blurred copy of the image (:func:`blur`). Masks are H x W (bool or
    weights in [0, 1])."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one preprocessed image (1 x C x H x W), got {tuple(x.shape)}")
    if not masks:
        raise ValueError("no masks given")
    size = tuple(x.shape[-2:])
    weights = []
    for i, m in enumerate(masks):
        m = np.asarray(m, dtype=np.float32)
        if m.shape != size:
            raise ValueError(f"mask {i} has shape {m.shape}; the input is {size[0]}x{size[1]}")
        weights.append(torch.from_numpy(m))
    w = torch.stack(weights).unsqueeze(1).to(x.device, x.dtype)
    with torch.no_grad():
        fill = torch.zeros_like(x) if baseline == "mean" else blur(x)
        return x * (1 - w) + fill * w


def masked_outputs(model: nn.Module, x: torch.Tensor, masks: Sequence[np.ndarray],
                   baseline: str = "mean") -> np.ndarray:
    """Model outputs for the :func:`masked_inputs` of ``x``, in a single no-grad forward pass."""
    batch = masked_inputs(x, masks, baseline)
    with torch.no_grad():
        out = model(batch)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ValueError("masked_outputs needs a classifier whose output is N x classes")
    return out.float().cpu().numpy()
