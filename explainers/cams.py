"""The layer-map formulas of the CAM family, as pure tensor functions.

Shapes: gradients ``g`` are k x N x C x h x w (k targets), activations ``a`` are N x C x h x w;
each function returns ``(alpha, cam)`` with channel weights alpha (k x N x C, or None where the
method weighs positions, not channels) and the map L (k x N x h x w), ReLU applied. Sums over
positions are written Σ_ij, over channels Σ_k.

- Grad-CAM (Selvaraju et al., ICCV 2017): alpha_k = mean_ij g;  L = ReLU(Σ_k alpha_k A^k).
- Counterfactual (ibid., eq. 6): Grad-CAM of the negated score: alpha_k = -mean_ij g.
- Grad-CAM++ (Chattopadhay et al., WACV 2018), eq. 19 with the exponential of the score, whose
  higher derivatives are powers of g: a_ij = g² / (2 g² + Σ_ab A_ab · g³), zero where g = 0;
  alpha_k = Σ_ij a_ij ReLU(g). The paper's denominator (Σ_ab A_ab times g³ at ij), as
  pytorch-grad-cam computes it (torchcam sums A·g³ over positions instead: a different formula).
- XGrad-CAM (Fu et al., BMVC 2020): alpha_k = Σ_ij g A / Σ_ij A.
- HiResCAM (Draelos & Carin, 2020): L = ReLU(Σ_k g ⊙ A), element-wise, no channel weights.
- LayerCAM (Jiang et al., TIP 2021): L = ReLU(Σ_k ReLU(g) ⊙ A).
- Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): the projection of the centred activations (h·w
  positions x C channels) on their first right-singular vector, ReLU applied; not
  class-discriminative (no gradient, no target). SVD signs are arbitrary; we fix the sign so
  that the singular vector's channel loadings sum to a positive number, which is the same as
  the projection correlating positively with the channel-summed activation map.

The small constants guard 0/0 exactly as pytorch-grad-cam does (1e-6 for Grad-CAM++, 1e-7 for
XGrad-CAM), so the maps agree with it to float precision.

Whatever the model's dtype, the arithmetic runs in float32 at least (``_wide``): a float16 model's
Grad-CAM++ overflowed in float16 (Σ A · g³ beyond 65,504 gave weights of 0 or NaN), and bfloat16's
8-bit mantissa put it 0.1-0.2 % off. The gradients and activations themselves are the model's.
"""
from __future__ import annotations

import torch

__all__ = ["gradcam", "counterfactual", "gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam",
           "weighted_sum"]


def _wide(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors in float32 when they are of a narrower floating type (float16, bfloat16)."""
    return tuple(t.float() if t.is_floating_point() and torch.finfo(t.dtype).bits < 32 else t for t in tensors)


def _in_float32(formula):
    def wrapped(g: torch.Tensor, a: torch.Tensor):
        return formula(*_wide(g, a))
    wrapped.__name__, wrapped.__doc__ = formula.__name__, formula.__doc__
    return wrapped


def weighted_sum(alpha: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """ReLU(Σ_k alpha_k A^k): k x N x C weights, N x C x h x w activations -> k x N x h x w, in
    float32 at least."""
    alpha, a = _wide(alpha, a)
    dtype = torch.promote_types(alpha.dtype, a.dtype)
    return torch.relu(torch.einsum("knc,nchw->knhw", alpha.to(dtype), a.to(dtype)))


@_in_float32
def gradcam(g: torch.Tensor, a: torch.Tensor):
    alpha = g.mean(dim=(-2, -1))
    return alpha, weighted_sum(alpha, a)


@_in_float32
def counterfactual(g: torch.Tensor, a: torch.Tensor):
    alpha = -g.mean(dim=(-2, -1))
    return alpha, weighted_sum(alpha, a)


@_in_float32
def gradcam_pp(g: torch.Tensor, a: torch.Tensor):
    g2 = g * g
    g3 = g2 * g
    sum_a = a.sum(dim=(-2, -1), keepdim=True)
    aij = torch.where(g != 0, g2 / (2 * g2 + sum_a * g3 + 1e-6), torch.zeros_like(g))
    alpha = (torch.relu(g) * aij).sum(dim=(-2, -1))
    return alpha, weighted_sum(alpha, a)


@_in_float32
def xgradcam(g: torch.Tensor, a: torch.Tensor):
    alpha = (g * a).sum(dim=(-2, -1)) / (a.sum(dim=(-2, -1)) + 1e-7)
    return alpha, weighted_sum(alpha, a)


@_in_float32
def hirescam(g: torch.Tensor, a: torch.Tensor):
    return None, torch.relu((g * a).sum(dim=-3))


@_in_float32
def layercam(g: torch.Tensor, a: torch.Tensor):
    return None, torch.relu((torch.relu(g) * a).sum(dim=-3))


def eigen_projection(a: torch.Tensor) -> torch.Tensor:
    """N x h x w: the centred activations projected on their first principal direction (signed,
    before the ReLU), computed in float64 with ``torch.linalg.svd``; NaNs count as 0."""
    n, c, h, w = a.shape
    m = torch.nan_to_num(a.detach().to(torch.float64)).reshape(n, c, h * w).transpose(1, 2)
    m = m - m.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(m, full_matrices=False)
    v = vh[:, 0, :]  # N x C
    sign = torch.where(v.sum(dim=1, keepdim=True) < 0, -1.0, 1.0).to(v)
    proj = torch.einsum("npc,nc->np", m, v * sign)
    return proj.reshape(n, h, w).to(a.dtype)


def eigencam(a: torch.Tensor, k: int):
    """The same map for every one of the k targets (Eigen-CAM has no target)."""
    cam = torch.relu(eigen_projection(a))
    return None, cam.unsqueeze(0).expand(k, *cam.shape)
