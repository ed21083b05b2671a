"""Naming a layer's units from concept masks (Network Dissection, Bau et al., CVPR 2017), and the
paper's textual explanations from neuron importance (Grad-CAM, IJCV 2020, section 7): the units
with the largest alpha_k for a decision, with their names.

Dissection of unit k, over a probe set of images with per-pixel concept masks L_c:

* T_k: the activation A^k's top-``top`` quantile over every position of every probe image, at
  layer resolution (as Network Dissection computes it; default 0.005, the paper's);
* M_k = upsample(A^k) >= T_k, bilinearly upsampled to the masks' size (T_k <= 0, a unit that is
  almost never on, uses A^k > 0 instead so a dead unit covers nothing);
* IoU_{k,c} = sum over images |M_k & L_c| / sum |M_k | L_c|;
* the unit's name is the concept of highest IoU when that IoU exceeds ``min_iou`` (0.05, the
  paper's), else it has none.

``>=`` rather than ``>``: a unit whose activation is one constant on its concept (a hand-built
detector) has that constant as its quantile and would otherwise cover nothing.

The model runs in eval mode without gradients (batch norm statistics untouched) and comes back in
the mode it was in. The activations of the probe set are kept at layer resolution (N x K x h x w floats) for the
quantile; the masks are consumed a batch at a time (intersections and unions are running sums).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import resolve_layer
from .layouts import to_maps
from .locking import model_lock

__all__ = ["Dissection", "UnitReason", "dissect", "decision_units", "sentence", "DEFAULT_TOP", "MIN_IOU"]

DEFAULT_TOP = 0.005
MIN_IOU = 0.05
# The IoU pass upsamples each unit's map to the masks' size: for a probe batch of 100 images, 128
# units and 64 x 64 pixels that is 210 MB of floats per step, each a fresh allocation the kernel
# must map and zero. A few images at a time (about this many values: 8 MB of floats) keep it in
# the cache and out of the page-fault path, with the same sums (counts of 0/1 values, exact in
# float32): shapes-resnet's layer3 on 400 probes (2 threads) took 1.80 s in one piece, 1.10 s so.
IOU_CHUNK_VALUES = 2 ** 21


@dataclass(frozen=True, eq=False)
class Dissection:
    """Per-unit IoU with every concept (``iou``: K x C) and the thresholds T_k."""

    layer: str
    concepts: tuple[str, ...]
    iou: np.ndarray
    thresholds: np.ndarray
    images: int
    top: float = DEFAULT_TOP
    min_iou: float = MIN_IOU
    concept_pixels: dict = field(default_factory=dict)  # concept -> how many probe pixels carry it

    @property
    def units(self) -> int:
        return int(self.iou.shape[0])

    def best(self, unit: int) -> tuple[str, float]:
        """(the concept of highest IoU, that IoU), named or not."""
        c = int(np.argmax(self.iou[unit]))
        return self.concepts[c], float(self.iou[unit, c])

    def name(self, unit: int) -> str | None:
        concept, iou = self.best(unit)
        return concept if iou > self.min_iou else None

    def names(self) -> list[str | None]:
        return [self.name(k) for k in range(self.units)]

    def summary(self) -> dict[str, int]:
        """How many units each concept names (concepts naming none left out), and how many are unnamed."""
        out: dict[str, int] = {}
        for n in self.names():
            out[n or "unnamed"] = out.get(n or "unnamed", 0) + 1
        return out

    def to_json(self) -> str:
        return json.dumps({"layer": self.layer, "concepts": list(self.concepts), "iou": self.iou.round(6).tolist(),
                           "thresholds": self.thresholds.tolist(), "images": self.images, "top": self.top,
                           "min_iou": self.min_iou, "concept_pixels": self.concept_pixels})

    @classmethod
    def from_json(cls, text: str) -> "Dissection":
        d = json.loads(text)
        return cls(d["layer"], tuple(d["concepts"]), np.asarray(d["iou"], np.float64),
                   np.asarray(d["thresholds"], np.float64), int(d["images"]), float(d["top"]), float(d["min_iou"]),
                   dict(d.get("concept_pixels", {})))


def _activations(model: nn.Module, x: torch.Tensor, layer: str, inputs: tuple, reshape) -> torch.Tensor:
    module = resolve_layer(model, layer)
    owner = threading.get_ident()
    got = {}

    def hook(mod, args, output):
        if threading.get_ident() == owner:
            got["a"] = output.detach()

    with model_lock(model):
        handle = module.register_forward_hook(hook)
        was_training = model.training
        try:
            model.eval()
            with torch.no_grad():
                model(x, *inputs)
        finally:
            handle.remove()
            model.train(was_training)
    if "a" not in got:
        raise ValueError(f"layer {layer!r} was not called during the forward pass; pick a layer on the path "
                         "to the output")
    return to_maps(layer, module, got["a"], reshape).float()


def dissect(model: nn.Module, probe: Iterable[tuple[torch.Tensor, dict[str, np.ndarray]]], layer: str,
            concepts: Sequence[str], *, top: float = DEFAULT_TOP, min_iou: float = MIN_IOU,
            inputs: tuple = (), reshape: Callable | None = None,
            progress: Callable[[int, int], None] | None = None, total: int | None = None) -> Dissection:
    """Name the units of ``layer`` from ``probe``: batches of (N x 3 x H x W model inputs,
    {concept: N x H x W bool masks}); a concept missing from a batch has no pixels there.
    ``progress(done, total)`` is called after each batch (``total``: the number of batches if
    known, else 0) and after the IoU pass."""
    if not 0 < top < 1:
        raise ValueError(f"top must be a fraction in (0, 1), not {top}")
    concepts = tuple(concepts)
    if not concepts:
        raise ValueError("no concepts to name units with")
    acts, masks = [], []
    for b, (x, m) in enumerate(probe):
        unknown = sorted(set(m) - set(concepts))
        if unknown:
            raise ValueError(f"masks for unknown concept(s) {', '.join(unknown)}; the concepts are "
                             f"{', '.join(concepts)}")
        a = _activations(model, x, layer, inputs, reshape)
        size = tuple(x.shape[-2:])
        stack = np.zeros((x.shape[0], len(concepts), *size), bool)
        for j, c in enumerate(concepts):
            if c in m:
                mk = np.asarray(m[c], bool)
                if mk.shape != (x.shape[0], *size):
                    raise ValueError(f"concept {c!r}: masks of shape {mk.shape} for {x.shape[0]} images of "
                                     f"{size[1]} x {size[0]} pixels")
                stack[:, j] = mk
        acts.append(a)
        masks.append(stack)
        if progress:
            progress(b + 1, total or 0)
    if not acts:
        raise ValueError("the probe set is empty")
    every = torch.cat(acts)  # N x K x h x w
    k = every.shape[1]
    flat = every.transpose(0, 1).reshape(k, -1)
    thresholds = torch.from_numpy(np.quantile(flat.numpy(), 1 - top, axis=1, method="higher"))
    inter = np.zeros((k, len(concepts)))
    unit_px = np.zeros(k)
    concept_px = np.zeros(len(concepts))
    t = thresholds.view(1, -1, 1, 1)
    for a, stack in zip(acts, masks):
        step = max(1, IOU_CHUNK_VALUES // (k * stack.shape[-2] * stack.shape[-1]))  # images at a time
        for i in range(0, a.shape[0], step):
            up = F.interpolate(a[i:i + step], size=stack.shape[-2:], mode="bilinear", align_corners=False)
            on = torch.where(t > 0, up >= t, up > 0).flatten(2).float()  # n x K x P
            lab = torch.from_numpy(stack[i:i + step]).flatten(2).float()  # n x C x P
            inter += torch.einsum("nkp,ncp->kc", on, lab).double().numpy()
            unit_px += on.sum((0, 2)).double().numpy()
            concept_px += lab.sum((0, 2)).double().numpy()
    union = unit_px[:, None] + concept_px[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return Dissection(layer, concepts, iou, thresholds.double().numpy(), int(every.shape[0]), top, min_iou,
                      {c: int(n) for c, n in zip(concepts, concept_px)})


@dataclass(frozen=True)
class UnitReason:
    unit: int
    alpha: float
    name: str | None
    iou: float  # the IoU of its best concept (below min_iou when unnamed)
    best: str


def decision_units(weights: np.ndarray, dissection: Dissection, k: int = 5) -> tuple[list[UnitReason], list[UnitReason]]:
    """The ``k`` units of largest and of smallest alpha_k (an explanation's ``weights``) with
    their names: what spoke most for the decision and most against it."""
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.shape[0] != dissection.units:
        raise ValueError(f"{w.shape[0]} channel weights for a dissection of {dissection.units} units "
                         f"(layer {dissection.layer!r}): dissect the layer that was explained")
    order = np.argsort(-w, kind="stable")

    def reason(u):
        best, iou = dissection.best(int(u))
        return UnitReason(int(u), float(w[u]), dissection.name(int(u)), iou, best)

    return [reason(u) for u in order[:k]], [reason(u) for u in order[::-1][:k]]


def sentence(decision: str, top: Sequence[UnitReason], predicted: str | None = None) -> str:
    """The paper's textual explanation: "predicted <decision> because of units for: <name>
    (<IoU>), ..." over the named units among ``top``. When ``predicted`` names another class than
    ``decision`` (a class chosen by the user, not the model's), the sentence says so: "for the
    class <decision> (the model predicts <predicted>), units for: ..."."""
    named = [f"{r.name} ({r.iou:.2f})" for r in top if r.name]
    if predicted is None or predicted == decision:
        if not named:
            return f"predicted {decision}; none of its {len(top)} most important units has a name"
        return f"predicted {decision} because of units for: {', '.join(named)}"
    head = f"for the class {decision} (the model predicts {predicted})"
    if not named:
        return f"{head}, none of its {len(top)} most important units has a name"
    return f"{head}, units for: {', '.join(named)}"
