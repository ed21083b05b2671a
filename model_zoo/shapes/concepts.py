"""The concept of every pixel of a shapes-world scene: its object's shape class, its hue, the
corner mark, clutter or background. For dissecting units (``explainers.dissect``) and for telling
where a map peaks.

* shape concepts (``CLASSES``): the pixels of the objects of that class;
* hue concepts (``HUES``): the pixels (any: object, mark, clutter or background) whose hue lies
  within 1/12 of the named hue's, with saturation >= 0.4 and value >= 0.3 (Pillow's HSV
  conversion);
* "corner mark": the mark's box when the scene has one; "clutter": the visible pixels of the
  lines and dots; "background": every other pixel.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
from PIL import Image

from .world import CLASSES, CUE_BOX, Scene, make_scene

__all__ = ["HUES", "CONCEPTS", "REGIONS", "concept_masks", "hue_masks", "probe", "region_at"]

HUES = ("red", "yellow", "green", "cyan", "blue", "purple")  # hue 0, 1/6, ... 5/6
CONCEPTS = (*CLASSES, *HUES, "corner mark", "clutter", "background")
REGIONS = ("true object", "other object", "corner mark", "clutter", "background")


def hue_masks(image: np.ndarray) -> dict[str, np.ndarray]:
    hsv = np.asarray(Image.fromarray(image).convert("HSV"), np.int32)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    vivid = (s >= 0.4 * 255) & (v >= 0.3 * 255)
    out = {}
    for i, name in enumerate(HUES):
        centre = i * 256 / 6
        d = np.abs(h - centre)
        d = np.minimum(d, 256 - d)
        out[name] = vivid & (d <= 256 / 12)
    return out


def _mark(scene: Scene) -> np.ndarray:
    m = np.zeros(scene.image.shape[:2], bool)
    if scene.cue is not None:
        x0, y0, x1, y1 = CUE_BOX
        m[y0:y1, x0:x1] = True
    return m


def concept_masks(scene: Scene) -> dict[str, np.ndarray]:
    """{concept: H x W bool} for every concept of ``CONCEPTS``."""
    shape = scene.image.shape[:2]
    out = {c: np.zeros(shape, bool) for c in CLASSES}
    for o in scene.objects:
        out[o.name] = out[o.name] | o.mask
    out.update(hue_masks(scene.image))
    out["corner mark"] = _mark(scene)
    out["clutter"] = scene.clutter.copy() if scene.clutter is not None else np.zeros(shape, bool)
    taken = out["corner mark"] | out["clutter"]
    for o in scene.objects:
        taken = taken | o.mask
    out["background"] = ~taken
    return out


def probe(n: int, seed: int, batch: int = 100, kinds=("single", "pair"), cue: str = "random") -> Iterator:
    """Batches of (N x 3 x 64 x 64 inputs, {concept: N x 64 x 64 masks}) for
    ``explainers.dissect``: ``n`` scenes alternating over ``kinds``, each with a corner mark of a
    random class (``cue``), so every concept occurs."""
    from .train import scenes_to_tensor
    for start in range(0, n, batch):
        scenes = []
        for i in range(start, min(n, start + batch)):
            kind = kinds[i % len(kinds)]
            scenes.append(make_scene(seed, i, kind, cue if kind == "single" or cue in ("none", "random") else "none"))
        masks = [concept_masks(s) for s in scenes]
        yield scenes_to_tensor(scenes), {c: np.stack([m[c] for m in masks]) for c in CONCEPTS}


def _near(mask: np.ndarray, y: int, x: int, tolerance: float) -> bool:
    if tolerance <= 0:
        return bool(mask[y, x])
    ys, xs = np.nonzero(mask)
    return bool(len(ys)) and bool(((ys - y) ** 2 + (xs - x) ** 2).min() <= tolerance ** 2)


def region_at(scene: Scene, y: int, x: int, true_label: int | None = None, tolerance: float = 0.0) -> str:
    """Which of ``REGIONS`` the pixel (y, x) belongs to, in that order of precedence: an object
    (of class ``true_label``: "true object", else "other object"; every object is "true" when it
    is None) or the mark within ``tolerance`` pixels (a map upsampled from a coarse layer peaks
    a few pixels off a small target, as the pointing game allows), then clutter under the pixel
    itself, then background."""
    objects = sorted(scene.objects, key=lambda o: true_label is not None and o.label != true_label)
    for o in objects:
        if _near(o.mask, y, x, tolerance):
            return "true object" if true_label is None or o.label == true_label else "other object"
    if _near(_mark(scene), y, x, tolerance):
        return "corner mark"
    if scene.clutter is not None and scene.clutter[y, x]:
        return "clutter"
    return "background"
