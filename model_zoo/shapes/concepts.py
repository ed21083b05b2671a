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
from scipy import ndimage
from PIL import Image

from .world import CLASSES, CUE_BOX, Scene, make_scene

__all__ = ["HUES", "CONCEPTS", "REGIONS", "concept_masks", "hue_masks", "probe", "region_at", "peak_area",
           "PEAK_SHARE"]

HUES = ("red", "yellow", "green", "cyan", "blue", "purple")  # hue 0, 1/6, ... 5/6
CONCEPTS = (*CLASSES, *HUES, "corner mark", "clutter", "background")
REGIONS = ("true object", "other object", "corner mark", "clutter", "background")
PEAK_SHARE = 0.8  # a map's peak area: its pixels at 80% of the maximum or more, around the maximum


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
    from .recipes import scenes_to_tensor
    for start in range(0, n, batch):
        scenes = []
        for i in range(start, min(n, start + batch)):
            kind = kinds[i % len(kinds)]
            scenes.append(make_scene(seed, i, kind, cue if kind == "single" or cue in ("none", "random") else "none"))
        masks = [concept_masks(s) for s in scenes]
        yield scenes_to_tensor(scenes), {c: np.stack([m[c] for m in masks]) for c in CONCEPTS}


def _near(mask: np.ndarray, peak: np.ndarray, tolerance: float) -> bool:
    """Whether ``mask`` has a pixel within ``tolerance`` of a pixel of ``peak`` (both H x W bool;
    ``scipy.ndimage.distance_transform_edt``)."""
    if not mask.any():
        return False
    if tolerance <= 0:
        return bool((mask & peak).any())
    return bool((ndimage.distance_transform_edt(~peak)[mask] <= tolerance).any())


def peak_area(m: np.ndarray, share: float = PEAK_SHARE) -> np.ndarray:
    """The map's peak as an area: the 8-connected pixels at ``share`` x max or more around its
    maximum (``scipy.ndimage.label``). A map upsampled from a coarse layer is often a plateau
    whose maximum pixel lies a few pixels off the region the plateau covers."""
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    labels, _ = ndimage.label(m >= share * m[y, x], structure=np.ones((3, 3)))
    return labels == labels[y, x]


def region_at(scene: Scene, y: int, x: int, true_label: int | None = None, tolerance: float = 0.0,
              peak: np.ndarray | None = None) -> str:
    """Which of ``REGIONS`` the map's peak lies on, in that order of precedence: an object (of
    class ``true_label``: "true object", else "other object"; every object is "true" when it is
    None) or the mark within ``tolerance`` pixels of the peak (``peak``: its area, see
    :func:`peak_area`; else the pixel (y, x)), then clutter under the pixel (y, x) itself, then
    background."""
    if peak is None:
        peak = np.zeros(scene.image.shape[:2], bool)
        peak[y, x] = True
    objects = sorted(scene.objects, key=lambda o: true_label is not None and o.label != true_label)
    for o in objects:
        if _near(o.mask, peak, tolerance):
            return "true object" if true_label is None or o.label == true_label else "other object"
    if _near(_mark(scene), peak, tolerance):
        return "corner mark"
    if scene.clutter is not None and scene.clutter[y, x]:
        return "clutter"
    return "background"
