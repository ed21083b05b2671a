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
- ShapleyCAM (Cai et al., 2025): alpha_k = mean_ij (g - ½ H·A), H·A the Hessian of the score
  with respect to the layer's output times the activations (a second-order Taylor term of the
  score's Shapley value); L = ReLU(Σ_k alpha_k A^k). As pytorch-grad-cam 1.5.7 computes it.
- KPCA-CAM (Karmani et al., 2024): Eigen-CAM with kernel PCA: the h·w positions (C channels,
  centred) projected on the first principal component of a kernel (sigmoid by default, as
  scikit-learn's ``KernelPCA``), ReLU applied. Signs fixed as Eigen-CAM's (pytorch-grad-cam
  leaves them to the eigensolver: its map may be our map's negative before its ReLU).
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

import numpy as np
import torch

__all__ = ["gradcam", "counterfactual", "gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam",
           "weighted_sum", "shapleycam", "kpca_projection", "kpcacam", "KERNELS"]


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


def shapleycam(g: torch.Tensor, a: torch.Tensor, hvp: torch.Tensor):
    """``hvp``: H·A, shaped as ``g`` (k x N x C x h x w)."""
    g, a, hvp = _wide(g, a, hvp)
    alpha = (g - 0.5 * hvp.to(g.dtype)).mean(dim=(-2, -1))
    return alpha, weighted_sum(alpha, a)


KERNELS = ("sigmoid", "rbf", "poly", "cosine", "linear")


def _kernel(x: torch.Tensor, kind: str, gamma: float | None, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """P x P kernel of the rows of ``x`` (P x C), with scikit-learn's definitions and defaults
    (gamma None: 1 / C; coef0 1; degree 3)."""
    g = 1.0 / x.shape[1] if gamma is None else float(gamma)
    if kind == "linear":
        return x @ x.T
    if kind == "poly":
        return (g * (x @ x.T) + coef0) ** degree
    if kind == "sigmoid":
        return torch.tanh(g * (x @ x.T) + coef0)
    if kind == "rbf":
        return torch.exp(-g * torch.cdist(x, x).square())
    if kind == "cosine":
        unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return unit @ unit.T
    raise ValueError(f"unknown kernel {kind!r}; choose one of {', '.join(KERNELS)}")


def kpca_projection(a: torch.Tensor, kernel: str = "sigmoid", gamma: float | None = None) -> torch.Tensor:
    """N x h x w: each image's positions (rows: h·w, columns: the C channels, centred) projected
    on the first kernel principal component, signed (before the ReLU): the top eigenvector of
    the centred kernel matrix times the square root of its eigenvalue, as scikit-learn's
    ``KernelPCA(n_components=1).fit_transform``. The eigenpair comes from
    ``scipy.linalg.eigh`` (the top one only), in float64. The sign: the projection correlates
    positively with the channel-summed activations."""
    import scipy.linalg

    n, c, h, w = a.shape
    out = []
    for img in torch.nan_to_num(a.detach().to(torch.float64)):
        x = img.reshape(c, h * w).T
        x = x - x.mean(dim=0, keepdim=True)
        k = _kernel(x, kernel, gamma)
        p = k.shape[0]
        one = torch.full((p, p), 1.0 / p, dtype=k.dtype)
        kc = (k - one @ k - k @ one + one @ k @ one).numpy()
        vals, vecs = scipy.linalg.eigh(kc, subset_by_index=[p - 1, p - 1])
        proj = torch.from_numpy(vecs[:, 0] * np.sqrt(max(float(vals[0]), 0.0)))
        summed = img.reshape(c, h * w).sum(0)
        if float(((proj - proj.mean()) * (summed - summed.mean())).sum()) < 0:
            proj = -proj
        out.append(proj.reshape(h, w))
    return torch.stack(out).to(a.dtype)


def kpcacam(a: torch.Tensor, k: int, kernel: str = "sigmoid", gamma: float | None = None):
    """The same map for every one of the k targets (KPCA-CAM has no target)."""
    cam = torch.relu(kpca_projection(a, kernel, gamma))
    return None, cam.unsqueeze(0).expand(k, *cam.shape)
