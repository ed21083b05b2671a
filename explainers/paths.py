"""Integrated Gradients (Sundararajan et al., ICML 2017) and SmoothGrad's noise (Smilkov et al.,
2017).

Integrated Gradients: IG(x) = (x - x') ⊙ ∫_0^1 ∂s(x' + t (x - x')) / ∂x dt, the integral by a
quadrature of ``steps`` nodes: Gauss-Legendre (the default, as captum's; nodes and weights from
``numpy.polynomial.legendre.leggauss``) or the trapezoid rule (weights 1/(steps - 1), halved at
both ends, summing to 1; captum's "riemann_trapezoid" uses 1/steps, which sums to (steps - 1) /
steps, so its attributions are ours times that factor). Completeness: Σ IG ≈ s(x) - s(x').
The ``steps`` x N interpolated images run in batches of ``batch_size``, all targets from one
batched backward per batch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["quadrature", "integrated_gradients", "baseline_tensor", "QUADRATURES"]

QUADRATURES = ("gausslegendre", "riemann_trapezoid")


def quadrature(steps: int, rule: str = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """(nodes t in [0, 1], weights summing to 1) of the rule with ``steps`` nodes."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1), 0.5 * weights
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("the trapezoid rule needs steps >= 2")
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] /= 2
        # torch.linspace's float32 nodes (what captum evaluates at): 6 of np.linspace's 16 round
        # to other float32 values, and on a random VGG-16 that moved the map by 4e-4 (rel. L2)
        return torch.linspace(0.0, 1.0, steps, dtype=torch.float32).double().numpy(), w
    raise ValueError(f"unknown quadrature {rule!r}; choose one of {', '.join(QUADRATURES)}")


def baseline_tensor(baseline, x: torch.Tensor) -> torch.Tensor:
    """The reference input x': a number (every value; 0 is the dataset's mean colour after
    normalisation), a tensor broadcastable to ``x``, or "blur" (a Gaussian-blurred copy)."""
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be a number, a tensor or 'blur', got {baseline!r}")
        from .masking import blur
        return blur(x)
    if isinstance(baseline, torch.Tensor):
        try:
            return torch.broadcast_to(baseline.to(x), x.shape)
        except RuntimeError as err:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to the "
                             f"input's {tuple(x.shape)}") from err
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    raise ValueError(f"baseline must be a number, a tensor or 'blur', got {type(baseline).__name__}")


def integrated_gradients(model: nn.Module, x: torch.Tensor, row_scores, k: int, *, steps: int = 32,
                         baseline=0.0, rule: str = "gausslegendre", batch_size: int = 32,
                         progress=None) -> torch.Tensor:
    """k x N x C x H x W attributions; ``row_scores(output, rows)`` gives the k targets' scores
    of rows that belong to samples ``rows``."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    nodes, weights = quadrature(steps, rule)
    x = x.detach()
    base = baseline_tensor(baseline, x).detach()
    n = x.shape[0]
    t = torch.tensor(np.repeat(nodes, n), dtype=x.dtype, device=x.device)
    wt = torch.tensor(np.repeat(weights, n), dtype=x.dtype, device=x.device)
    rows_all = torch.arange(n, device=x.device).repeat(steps)
    total = torch.zeros(k, *x.shape, dtype=x.dtype, device=x.device)
    count = steps * n
    if progress is not None:
        progress(0, count)
    eye = torch.eye(k, dtype=x.dtype, device=x.device)
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        rows = rows_all[start:stop]
        tt = t[start:stop].view(-1, 1, 1, 1)
        point = (base[rows] + tt * (x[rows] - base[rows])).requires_grad_(True)
        with torch.enable_grad():
            scores = row_scores(model(point), rows)  # k x B
            if k == 1:
                (g,) = torch.autograd.grad(scores[0].sum(), point)
                g = g.unsqueeze(0)
            else:
                outs = eye[:, :, None].expand(k, k, scores.shape[1])
                (g,) = torch.autograd.grad(scores, point, grad_outputs=outs, is_grads_batched=True)
        total.index_add_(1, rows, g.detach() * wt[start:stop].view(1, -1, 1, 1, 1))
        if progress is not None:
            progress(stop, count)
    return (x - base).unsqueeze(0) * total
