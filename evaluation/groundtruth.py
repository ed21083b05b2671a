"""Where Grad-CAM lands in the shapes world, measured against ground truth (the figures on the
shipped models' cards).

* pointing: on single-object scenes the model classifies correctly, the fraction whose map
  maximum (at input resolution) lies inside the object's mask;
* pair: on two-object scenes, for each of the two classes, the fraction of maps whose maximum
  lies inside that class's own object;
* cue energy: on scenes carrying the class's corner mark, the share of the map's mass that falls
  inside the mark (a biased model looks there; a sound one does not).
"""
from __future__ import annotations

import numpy as np
import torch

import explainers
from model_zoo.shapes.recipes import scenes_to_tensor
from model_zoo.shapes.world import CUE_BOX, make_scene

from .metrics import pointing_hit

__all__ = ["pointing", "pair_discrimination", "cue_energy", "mass_in_box", "per_sample", "batch_maps"]


def mass_in_box(attribution: np.ndarray, box) -> float:
    """Share of a non-negative map's total inside the half-open box (x0, y0, x1, y1)."""
    total = float(attribution.sum())
    if total <= 0:
        return 0.0
    x0, y0, x1, y1 = box
    return float(attribution[y0:y1, x0:x1].sum()) / total


def per_sample(labels: torch.Tensor, name: str) -> explainers.Custom:
    """A target that scores each image of a batch by its own class (``labels``: N ids)."""
    return explainers.Custom(lambda out: out.gather(1, labels.view(-1, 1).to(out.device))[:, 0], name)


def batch_maps(e, n: int) -> np.ndarray:
    """An explanation's attribution as N x H x W (a batch of one comes back unbatched)."""
    return e.attribution.reshape(n, *e.attribution.shape[-2:])


def _batches(n: int, batch: int):
    for start in range(0, n, batch):
        yield range(start, min(n, start + batch))


def pointing(model, layer: str, n: int, seed: int, method: str = "gradcam", batch: int = 100) -> dict:
    correct = hits = 0
    for idx in _batches(n, batch):
        scenes = [make_scene(seed, i, "single") for i in idx]
        x = scenes_to_tensor(scenes)
        labels = torch.tensor([s.label for s in scenes])
        capture = explainers.Capture(model, x, layer=layer, pixels=method.startswith("guided"))
        e = capture.explain(method, per_sample(labels, "true class"))
        pred = capture.output.argmax(1)  # the same forward pass, not a second one
        for s, m, ok in zip(scenes, batch_maps(e, len(scenes)), (pred == labels).tolist()):
            if ok:
                correct += 1
                hits += pointing_hit(m, s.objects[0].mask, tolerance=0)
    return {"n": n, "seed": seed, "accuracy": round(correct / n, 4), "correct": correct,
            "pointing": round(hits / max(correct, 1), 4)}


def pair_discrimination(model, layer: str, n: int, seed: int, batch: int = 100) -> dict:
    hits = total = both_top2 = 0
    for idx in _batches(n, batch):
        scenes = [make_scene(seed, i, "pair") for i in idx]
        x = scenes_to_tensor(scenes)
        targets = [per_sample(torch.tensor([s.objects[k].label for s in scenes]), f"object {k}") for k in (0, 1)]
        capture = explainers.Capture(model, x, layer=layer)
        maps = [batch_maps(e, len(scenes)) for e in capture.explain("gradcam", targets)]
        top2 = capture.output.topk(2, dim=1).indices
        for j, s in enumerate(scenes):
            both_top2 += {o.label for o in s.objects} == set(top2[j].tolist())
            for k in (0, 1):
                hits += pointing_hit(maps[k][j], s.objects[k].mask, tolerance=0)
                total += 1
    return {"n": n, "seed": seed, "own_object": round(hits / total, 4),
            "both_classes_in_top2": round(both_top2 / n, 4)}


def cue_energy(model, layer: str, n: int, seed: int, batch: int = 100) -> dict:
    """Mean share of Grad-CAM mass (for the true class) inside the corner mark, on single-object
    scenes whose mark matches their class."""
    shares = []
    for idx in _batches(n, batch):
        scenes = [make_scene(seed, i, "single", "match") for i in idx]
        labels = torch.tensor([s.label for s in scenes])
        e = explainers.explain(model, scenes_to_tensor(scenes), layer=layer, target=per_sample(labels, "true class"))
        shares.extend(mass_in_box(m, CUE_BOX) for m in batch_maps(e, len(scenes)))
    return {"n": n, "seed": seed, "cue_mass": round(float(np.mean(shares)), 4)}
