"""The shapes world's detector and segmenter: small networks for scenes of one to four objects
(``kind="multi"``), trained on the CPU in minutes (``training.dense``).

* :class:`ShapesDetector` is a single-stage, anchor-free detector after CenterNet (Zhou et al.,
  "Objects as Points", 2019): a class heatmap, a box size and a sub-cell offset on a 16 x 16 grid.
  In eval mode it returns torchvision's detection layout (one dict per image: ``boxes`` x0 y0 x1
  y1 in input pixels, ``scores``, ``labels``), whose scores are differentiable, so the studio's
  detection targets and every method apply to it as to torchvision's detectors. Why not one of
  torchvision's detectors with a small backbone: their transform resizes every image to
  ``min_size`` and pads it, their losses match anchors or points per image in Python, and the
  two-stage ones sample proposals; on two CPU cores at 64 x 64 pixels a dense head with three
  plain losses trains in about two minutes, and its decoding is a few tensor operations.
* :class:`ShapesSegmenter` is a small encoder-decoder (U-Net-like, two skips) that labels every
  pixel with background or one of the eight classes: ``[N, 9, 64, 64]`` logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .world import CLASSES

__all__ = ["ShapesDetector", "ShapesSegmenter", "DETECTOR_LAYER", "SEGMENTER_LAYER", "STRIDE",
           "SEGMENT_CLASSES", "decode"]

STRIDE = 4  # detector grid: 64 px / 16 cells
SEGMENT_CLASSES = ("background", *CLASSES)  # the segmenter's output channels
# Grad-CAM's layer for the detector: the head's 16 x 16 map, whose 1 x 1 convolution gives the
# class heat. There a detection's gradient is that class's heat weights at its cell, so Grad-CAM's
# averaged weights are class-specific; one layer down they mix every object's features. Chosen on
# the validation world (seed 20 000): the pointing game's Grad-CAM hit rate was 88% at ``head``,
# 53% at the backbone's last map ``features.4``, 20% at ``features.2``.
DETECTOR_LAYER = "head"
# The segmenter's: the decoder's 32 x 32 map before the 1 x 1 classifier, for the same reason.
# On the validation world Grad-CAM put 78% of a class's mass inside its mask there, 42% at the
# 16 x 16 bottleneck ``down.2`` (HiResCAM 90% and 73%).
SEGMENTER_LAYER = "up"


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


def decode(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, top_k: int = 20,
           min_score: float = 0.05) -> list[dict]:
    """Detections from the dense maps (N x classes x h x w heat in 0..1, N x 2 x h x w size in
    units of 64 px, N x 2 x h x w offset in cells): the local maxima of the heat (a 3 x 3 max
    pool, CenterNet's NMS), the ``top_k`` best per image above ``min_score``. The scores are
    gathered from ``heat``, so gradients flow from a detection's score to the input."""
    n, c, h, w = heat.shape
    peaks = heat == F.max_pool2d(heat, 3, 1, 1)
    out = []
    for i in range(n):
        flat = (heat[i] * peaks[i]).flatten()
        k = min(top_k, flat.numel())
        scores, idx = flat.topk(k)
        keep = scores >= min_score
        scores, idx = scores[keep], idx[keep]
        labels = idx // (h * w)
        cell = idx % (h * w)
        ys, xs = cell // w, cell % w
        off = offset[i, :, ys, xs]
        wh = size[i, :, ys, xs].detach() * 64.0
        cx = (xs.float() + off[0].detach()) * STRIDE
        cy = (ys.float() + off[1].detach()) * STRIDE
        boxes = torch.stack([cx - wh[0] / 2, cy - wh[1] / 2, cx + wh[0] / 2, cy + wh[1] / 2], 1).clamp(0, 64)
        out.append({"boxes": boxes, "scores": scores, "labels": labels})
    return out


class ShapesDetector(nn.Module):
    """Normalised 64 x 64 frames (the shapes models' preprocessing) in; in train mode the dense
    maps ``(heat logits, size, offset)``, in eval mode the decoded detections (:func:`decode`)."""

    def __init__(self, classes: int = len(CLASSES), width: int = 64):
        super().__init__()
        w = width
        self.features = nn.Sequential(_block(3, w // 2, 2), _block(w // 2, w, 2), _block(w, w), _block(w, w, dilation=2),
                                      _block(w, w))
        self.head = nn.Sequential(nn.Conv2d(w, w, 3, 1, 1), nn.ReLU())
        self.heat = nn.Conv2d(w, classes, 1)
        self.size = nn.Conv2d(w, 2, 1)
        self.offset = nn.Conv2d(w, 2, 1)
        nn.init.constant_(self.heat.bias, -2.2)  # a prior of about 0.1 per cell (CenterNet's)

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.head(self.features(x))
        return self.heat(h), self.size(h), self.offset(h)

    def forward(self, x: torch.Tensor):
        heat, size, offset = self.maps(x)
        if self.training:
            return heat, size, offset
        return decode(torch.sigmoid(heat), size, offset)


class ShapesSegmenter(nn.Module):
    """Normalised 64 x 64 frames in, ``[N, 9, 64, 64]`` logits out (background, then the eight
    classes): an encoder to 16 x 16, one decoder stage back to 32 x 32 with a skip, the logits
    upsampled bilinearly to the input's size."""

    def __init__(self, classes: int = len(SEGMENT_CLASSES), width: int = 48):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_block(3, w // 2, 2), _block(w // 2, w))  # 32 x 32
        self.down = nn.Sequential(_block(w, 4 * w // 3, 2), _block(4 * w // 3, 4 * w // 3, dilation=2),
                                  _block(4 * w // 3, 4 * w // 3, dilation=4))  # 16 x 16, a view of the whole object
        self.lateral = nn.Sequential(nn.Conv2d(4 * w // 3 + w, w, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.up = _block(w, w)  # 32 x 32
        self.classify = nn.Conv2d(w, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        d = self.down(s)
        u = self.up(self.lateral(torch.cat([F.interpolate(d, scale_factor=2, mode="nearest"), s], 1)))
        return F.interpolate(self.classify(u), size=x.shape[-2:], mode="bilinear", align_corners=False)
