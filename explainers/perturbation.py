"""Methods that run the model again on changed inputs or activations: Score-CAM, Ablation-CAM
and occlusion. Each batches its forwards (``batch_size``), runs them without autograd, and
reports progress through ``progress(done, total)``; none prints.

- Score-CAM (Wang et al., CVPR-W 2020), as torchcam computes it: each channel of A, min-max
  normalised at layer resolution and upsampled bilinearly to the input (``align_corners=False``,
  the convention of every upsampling in the studio), masks the image; the weight of channel k is
  the softmax over channels of the increase of the target score, s(X ⊙ M_k) - s(X);
  L = ReLU(Σ_k alpha_k A^k). (pytorch-grad-cam normalises after upsampling with
  ``align_corners=True`` and leaves out the constant s(X): a slightly different mask.)
- Ablation-CAM (Desai & Ramaswamy, WACV 2020): channel k of the layer's output is set to zero
  and the rest of the network run; alpha_k = (y - y_k) / y, with y the kept forward's score,
  L = ReLU(Σ_k alpha_k A^k), as pytorch-grad-cam computes it for layers whose minimum is 0 (it
  substitutes a large negative value elsewhere; the paper and we zero the channel). The ablated
  rows run in batches of ``batch_size`` channels, as the peer's do, so both run the same
  operations on the same numbers and agree to the bit (``tests/explainers/test_peers.py``). An
  earlier version measured y within each ablated batch (an extra unablated row): on some CPUs
  the kernels for 65 rows and for 1 row round y differently, and that difference, a few ulps of
  y, shifts every alpha_k by the same amount, which over 2048 channels moved ResNet-50's map by
  2e-4 (relative L2) against the peer's. Only the network after the layer needs the ablated
  batch: the part before it runs on the one image and its output is broadcast (a residual added
  after the layer broadcasts too). A two-row unablated run first checks that the broadcast gives
  the image's own score; if not (an operation that fixes the batch size), the image is repeated
  for every row instead, as the peers do.
- RISE (Petsiuk et al., BMVC 2018) and D-RISE (Petsiuk et al., CVPR 2021): ``masks`` random
  masks, each a grid of cells of ``cell`` pixels kept with probability ``p``, upsampled
  bilinearly and shifted by a random fraction of a cell (the paper's smooth masks); the map is
  the masks weighted by the target's score on the masked image, over ``masks * p``. For a
  detection target the weight is its D-RISE similarity (``DetectionScore.similarity``).
- Occlusion (Zeiler & Fergus, ECCV 2014): the drop of the target score when a ``patch`` x
  ``patch`` square is set to ``baseline`` (a number, a tensor, or "blur": the blurred image), averaged over the squares (every ``stride`` pixels,
  the last flush with the border) that cover each pixel. ``evaluation.perturb`` uses this one.
"""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .cams import weighted_sum
from .locking import model_lock
from .paths import baseline_tensor

__all__ = ["score_cam", "ablation_cam", "occlusion", "occlusion_spots", "rise", "rise_masks"]

RowScores = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (output, sample rows) -> k x B


def _check_batch_size(batch_size) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _tell(progress, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def score_cam(model: nn.Module, x: torch.Tensor, acts: torch.Tensor, row_scores: RowScores,
              clean: torch.Tensor, *, batch_size: int = 32, progress=None):
    """(alpha k x N x C, L k x N x h x w) for N x C x h x w activations ``acts`` of ``x``;
    ``clean``: the targets' scores on ``x`` (k x N). N * C masked forwards in batches."""
    batch_size = _check_batch_size(batch_size)
    a = acts.detach()
    n, c, h, w = a.shape
    lo = a.amin(dim=(-2, -1), keepdim=True)
    masks = (a - lo) / (a.amax(dim=(-2, -1), keepdim=True) - lo + 1e-8)
    masks = masks.reshape(n * c, 1, h, w)
    rows_all = torch.arange(n, device=x.device).repeat_interleave(c)
    total = n * c
    scores = torch.empty(clean.shape[0], total, dtype=torch.float32, device=x.device)
    _tell(progress, 0, total)
    with torch.no_grad():
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            rows = rows_all[start:stop]
            up = F.interpolate(masks[start:stop], size=x.shape[-2:], mode="bilinear", align_corners=False)
            scores[:, start:stop] = row_scores(model(x[rows] * up), rows).float()
            _tell(progress, stop, total)
    increase = scores.view(-1, n, c) - clean.detach().float().view(-1, n, 1)
    alpha = torch.softmax(increase, dim=-1).to(a.dtype)
    return alpha, weighted_sum(alpha, a)


def _run_replacing(model: nn.Module, module: nn.Module, x: torch.Tensor, replacement: torch.Tensor, forward):
    owner = threading.get_ident()

    def hook(_module, _inputs, _output):
        return replacement if threading.get_ident() == owner else None

    with model_lock(model):
        handle = module.register_forward_hook(hook)
        try:
            with torch.no_grad():
                return forward(x)
        finally:
            handle.remove()


def ablation_cam(model: nn.Module, module: nn.Module, x: torch.Tensor, raw: torch.Tensor, acts: torch.Tensor,
                 channel_axis: int, row_scores: RowScores, clean: torch.Tensor, *, batch_size: int = 32,
                 progress=None, forward=None):
    """(alpha k x N x C, L k x N x h x w). ``raw``: the layer's output as the layer gave it
    (its channels along ``channel_axis``); ``acts``: the same as N x C x h x w. ``forward``:
    how to call the model on a batch (default: ``model`` itself; with token inputs, a caller
    that adds them)."""
    batch_size = _check_batch_size(batch_size)
    forward = forward or model
    n, c = acts.shape[:2]
    k = clean.shape[0]
    drops = torch.empty(k, n, c, dtype=torch.float32, device=x.device)
    axis = channel_axis % raw.dim()
    broadcast = True
    total, done = n * c, 0
    _tell(progress, 0, total)
    for i in range(n):
        base = raw[i:i + 1].detach()
        want = clean[:, i].detach().float()
        if broadcast and i == 0:  # does the layer's output broadcast to the image's own score?
            try:
                out = _run_replacing(model, module, x[:1], base.repeat(2, *([1] * (raw.dim() - 1))), forward)
                own = row_scores(out[:1], torch.zeros(1, dtype=torch.long, device=x.device)).float()[:, 0] \
                    if isinstance(out, torch.Tensor) and out.shape[0] == 2 else None
            except RuntimeError:
                own = None
            broadcast = own is not None and torch.allclose(
                own, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()) + 1e-6)
        for start in range(0, c, batch_size):
            channels = torch.arange(start, min(start + batch_size, c), device=x.device)
            rows = channels.numel()
            batch = base.repeat(rows, *([1] * (raw.dim() - 1)))
            keep = torch.ones(rows, c, dtype=batch.dtype, device=x.device)
            keep[torch.arange(rows, device=x.device), channels] = 0
            shape = [rows] + [1] * (raw.dim() - 1)
            shape[axis] = c
            batch = batch * keep.view(shape)
            image = x[i:i + 1] if broadcast else x[i:i + 1].repeat(rows, 1, 1, 1)
            out = _run_replacing(model, module, image, batch, forward)
            s = row_scores(out, torch.full((rows,), i, device=x.device)).float()
            drops[:, i, start:start + rows] = want.unsqueeze(-1) - s
            done += rows
            _tell(progress, done, total)
    y = clean.detach().float().unsqueeze(-1)
    alpha = torch.where(y != 0, drops / torch.where(y != 0, y, torch.ones_like(y)), drops).to(acts.dtype)
    return alpha, weighted_sum(alpha, acts.detach())


def occlusion_spots(size: tuple[int, int], patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of the occluding squares: every ``stride`` pixels, plus one flush with
    the bottom and right borders when the stride does not reach them."""
    for name, v in (("patch", patch), ("stride", stride)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    h, w = size
    if patch > min(h, w):
        raise ValueError(f"patch {patch} is larger than the image ({h}x{w})")
    ys = list(range(0, h - patch + 1, stride))
    xs = list(range(0, w - patch + 1, stride))
    if ys[-1] + patch < h:
        ys.append(h - patch)
    if xs[-1] + patch < w:
        xs.append(w - patch)
    return [(y, x0) for y in ys for x0 in xs]


def occlusion(model: nn.Module, x: torch.Tensor, row_scores: RowScores, clean: torch.Tensor, *,
              patch: int = 8, stride: int = 4, baseline: float = 0.0, batch_size: int = 64,
              progress=None) -> torch.Tensor:
    """k x N x H x W: the mean drop of each target's score over the squares covering a pixel."""
    batch_size = _check_batch_size(batch_size)
    n, _, h, w = x.shape
    spots: Sequence[tuple[int, int]] = occlusion_spots((h, w), patch, stride)
    k = clean.shape[0]
    fill = baseline_tensor(baseline, x)
    total_drop = torch.zeros(k, n, h, w, dtype=torch.float64, device=x.device)
    count = torch.zeros(h, w, dtype=torch.float64, device=x.device)
    for y, x0 in spots:
        count[y:y + patch, x0:x0 + patch] += 1
    jobs = [(i, s) for i in range(n) for s in range(len(spots))]
    _tell(progress, 0, len(jobs))
    with torch.no_grad():
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            rows = torch.tensor([i for i, _ in chunk], device=x.device)
            batch = x[rows].clone()
            for r, (i, s) in enumerate(chunk):
                y, x0 = spots[s]
                batch[r, :, y:y + patch, x0:x0 + patch] = fill[i, :, y:y + patch, x0:x0 + patch]
            drops = (clean.detach().double()[:, rows] - row_scores(model(batch), rows).double())
            for r, (i, s) in enumerate(chunk):
                y, x0 = spots[s]
                total_drop[:, i, y:y + patch, x0:x0 + patch] += drops[:, r, None, None]
            _tell(progress, start + len(chunk), len(jobs))
    return total_drop / count.clamp(min=1)


def rise_masks(size: tuple[int, int], masks: int, cell: int, p: float, seed: int,
               device=None) -> torch.Tensor:
    """``masks`` x H x W smooth random masks in 0..1 (RISE's): a grid of ``cell``-pixel cells,
    each kept with probability ``p``, one cell more each way, upsampled bilinearly and cropped
    at a random offset within a cell. Seeded: the same arguments give the same masks."""
    for name, v in (("masks", masks), ("cell", cell)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not 0 < p <= 1:
        raise ValueError(f"p, the share of cells kept, must lie in (0, 1], got {p!r}")
    h, w = size
    gh, gw = -(-h // cell) + 1, -(-w // cell) + 1
    g = torch.Generator().manual_seed(int(seed))
    grid = (torch.rand(masks, 1, gh, gw, generator=g) < p).float()
    big = F.interpolate(grid, size=(gh * cell, gw * cell), mode="bilinear", align_corners=False)[:, 0]
    dy = torch.randint(0, cell, (masks,), generator=g)
    dx = torch.randint(0, cell, (masks,), generator=g)
    out = torch.stack([big[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(masks)])
    return out.to(device) if device is not None else out


def rise(model: nn.Module, x: torch.Tensor, row_scores: RowScores, k: int, *, masks: int = 1000, cell: int = 16,
         p: float = 0.5, seed: int = 0, batch_size: int = 64, progress=None) -> torch.Tensor:
    """k x N x H x W: RISE's saliency, sum_i score(x * M_i) M_i / (masks * p), for each target
    (``row_scores`` gives the k targets' scores of a batch's outputs: a detection target's
    D-RISE similarity). The masked image is ``x * M``: zero, the mean colour of a normalised
    input, where a mask is 0."""
    batch_size = _check_batch_size(batch_size)
    n, _, h, w = x.shape
    m = rise_masks((h, w), masks, cell, p, seed, x.device)
    total = torch.zeros(k, n, h, w, dtype=torch.float64, device=x.device)
    jobs = [(i, j) for i in range(n) for j in range(masks)]
    _tell(progress, 0, len(jobs))
    with torch.no_grad():
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            rows = torch.tensor([i for i, _ in chunk], device=x.device)
            js = torch.tensor([j for _, j in chunk], device=x.device)
            batch = x[rows] * m[js].unsqueeze(1).to(x.dtype)
            s = row_scores(model(batch), rows).double()  # k x B
            for r, (i, j) in enumerate(chunk):
                total[:, i] += s[:, r, None, None] * m[j].double()
            _tell(progress, start + len(chunk), len(jobs))
    return total / (masks * p)
