"""Pointing on real photos: for each photo of ``model_zoo.photos`` (scikit-image's, and the cat
beside the espresso), does the map of the paper's four methods peak on the object that the
explained class names (its hand-drawn box, moved like the pixels by the model's resize and crop,
``tolerance`` pixels of slack: the paper's 15 at 224 px)?

A single photo explains the model's top class (a row only where that class names a boxed
object); the composite explains, for each of its two objects, the most probable class naming
it, the paper's class-discrimination demo. A pixel map's peak is that of its magnitude summed
over the colour channels (``metrics.pointing_hit`` on ``|a|`` summed), a layer map's its own."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import explainers
from model_zoo import photos

from .groundtruth import mass_in_box
from .metrics import pointing_hit

__all__ = ["pointing_rows", "markdown"]


def _peak_map(attribution: np.ndarray) -> np.ndarray:
    return np.abs(attribution).sum(0) if attribution.ndim == 3 else attribution


def _box_mask(box, size: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    return mask


def pointing_rows(loaded, layer: str | None = None, tolerance: float = 15.0) -> list[dict]:
    """One row per explained (photo, object): the class, its probability, the object's box in
    the model's view, and per method the peak (x, y), whether it hits the box, and the share of
    the map's positive mass in the box."""
    layer = layer or loaded.default_layer
    rows = []
    for p in photos.photos():
        size = (p.image.shape[1], p.image.shape[0])
        view, x = loaded.preprocess.prepare(Image.fromarray(p.image))
        capture = explainers.Capture(loaded.model, x.unsqueeze(0), layer=layer, pixels=True)
        probs = torch.softmax(capture.output.detach()[0].float(), 0).numpy()
        if p.name == photos.COMPOSITE:
            wanted = [(o, max(o.classes, key=lambda c: probs[c])) for o in p.objects]
        else:
            top = int(probs.argmax())
            wanted = [(p.object_for(top), top)] if p.object_for(top) is not None else []
        for obj, cls in wanted:
            box = loaded.preprocess.view_box(obj.box, size)
            mask = _box_mask(box, view.shape[0]) if box is not None else np.zeros(view.shape[:2], bool)
            row = {"photo": p.name, "object": obj.name, "class": cls, "class_name": loaded.categories[cls],
                   "probability": float(probs[cls]), "box": box, "peak": {}, "hit": {}, "mass": {}}
            for method in explainers.method_names(tag=explainers.PAPER):
                m = _peak_map(capture.explain(method, cls).attribution)
                y, x_ = np.unravel_index(int(np.argmax(m)), m.shape)
                row["peak"][method] = (int(x_), int(y))
                row["hit"][method] = pointing_hit(m, mask, tolerance)
                row["mass"][method] = mass_in_box(np.maximum(m, 0), box) if box is not None else 0.0
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The README's table: one row per (photo, object), a column per method."""
    methods = explainers.method_names(tag=explainers.PAPER)  # the paper's four
    lines = ["| photo | object | class (probability) | " + " | ".join(methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for r in rows:
        cells = [("yes" if r["hit"][m] else "no") + f" ({r['mass'][m]:.0%})" for m in methods]
        lines.append(f"| {r['photo']} | {r['object']} | {r['class_name']} ({r['probability']:.2f}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)
