"""The two task kinds beside trust and discrimination (issue 30):

* **Simulatability** (``"simulate"``; Colin, Fel et al., NeurIPS 2022): can a person predict what
  the model will say from its explanation? A learning phase shows scenes with the model's
  prediction and its map; the test phase shows new scenes with the map only, and the participant
  picks what the model will say from two options. The score is agreement with the model, not with
  the truth. The model is by default ``shapes-biased``, which reads the corner mark: on scenes
  whose mark matches the shape it is right, on scenes whose mark names another shape it errs, and
  its maps show why. Half the test scenes are of each kind, so that predicting the truth gets
  half of them.
* **Bias discovery** (``"bias"``, after Adebayo et al.): the participant sees the model's map and
  is asked what the model relies on (the shape, the small mark in a corner, the background),
  scored against the known shortcut of ``shapes-biased``: the corner mark.

Both run as between-subjects arms when the design asks for them, so a no-explanation arm (the
scene and, in the learning phase, the prediction; no map) is the baseline.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image

import explainers
from explainers import render
from model_zoo.shapes import world

__all__ = ["TASK_KINDS", "RELIES_ON", "SHORTCUT", "build_task_study", "mark_mass", "peak_on_mark"]

TASK_KINDS = ("simulate", "bias")
RELIES_ON = ("the shape", "the small mark in a corner", "the background")
SHORTCUT = RELIES_ON[1]  # shapes-biased was trained where the corner mark's colour gave the class away


def mark_mass(attribution: np.ndarray, box=world.CUE_BOX) -> float:
    """Share of a map's (positive) mass inside the corner mark's box."""
    m = np.clip(np.asarray(attribution, np.float64), 0, None)
    if m.ndim == 3:
        m = np.abs(np.asarray(attribution, np.float64)).sum(0)
    total = m.sum()
    x0, y0, x1, y1 = box
    return float(m[y0:y1, x0:x1].sum() / total) if total > 0 else 0.0


def peak_on_mark(attribution: np.ndarray, tolerance: float = 4.0, box=world.CUE_BOX) -> bool:
    """Whether the map's maximum lies on the corner mark (within ``tolerance`` pixels: the
    pointing rule of the captioning and VQA protocols at 64 px)."""
    m = np.asarray(attribution, np.float64)
    if m.ndim == 3:
        m = np.abs(m).sum(0)
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    x0, y0, x1, y1 = box
    dx, dy = max(x0 - x, 0, x - (x1 - 1)), max(y0 - y, 0, y - (y1 - 1))
    return bool(dx * dx + dy * dy <= tolerance * tolerance)


def _picture(loaded, view, capture, method: str, cls: int) -> tuple[bytes, dict]:
    """The stimulus (the scene with the map over it; the scene alone for no explanation) and what
    the map shows of the corner mark: its mass there, and whether its peak is on it."""
    if method == "none":
        return render.png_bytes(Image.fromarray(np.asarray(view, np.uint8))), {"mark_mass": None, "peak_on_mark": None}
    e = capture.explain(method, cls)
    a = e.attribution
    read = {"mark_mass": mark_mass(a), "peak_on_mark": peak_on_mark(a)}
    if a.ndim == 3:
        return render.png_bytes(render.pixel_image(a)), read
    (m01,) = render.normalize([a], "per_map")
    return render.png_bytes(render.overlay(view, m01, 0.5)), read


def build_task_study(design, progress: Callable[[int, int], None] | None = None, load=None):
    """(config, trials, stimuli) of a simulatability or bias-discovery study (``design.kind``).
    ``design.n_images`` test scenes (half where the model is right, half where it errs, for
    simulatability); ``design.source["learn"]`` learning scenes (simulatability, default 4)."""
    import model_zoo
    load = load or model_zoo.load
    (model_id,) = design.models
    loaded = load(model_id)
    wrong = [m for m in design.methods if m != "none" and m not in explainers.method_names(model=loaded.model)]
    if wrong:  # studies.design names it a DesignError
        raise LookupError(f"{', '.join(wrong)} cannot explain {model_id}: it reads a transformer's attention, and "
                          f"{model_id} has none")
    names = list(loaded.categories)
    rng = np.random.default_rng(design.seed)
    seed = int(design.source.get("seed", 31000))
    learn = int(design.source.get("learn", 4)) if design.kind == "simulate" else 0
    methods = list(design.methods)
    pixels = any(explainers.get_method(m).needs_pixels for m in methods if m != "none")
    want = {True: (design.n_images + 1) // 2, False: design.n_images // 2}  # model right / wrong
    if design.kind == "bias":
        want = {True: design.n_images, False: 0}
    trials, stimuli, kept, seen = [], {}, {"learn": 0, True: 0, False: 0}, 0
    for i in range(int(design.source.get("candidates", 400))):
        if kept["learn"] >= learn and all(kept[k] >= want[k] for k in (True, False)):
            break
        cue = "match" if (design.kind == "bias" or i % 2 == 0) else "flip"
        scene = world.make_scene(seed, i, "single", cue)
        seen += 1
        view, x = loaded.preprocess.prepare(Image.fromarray(scene.image))
        cap = explainers.Capture(loaded.model, x.unsqueeze(0), layer=loaded.default_layer, pixels=pixels)
        pred = int(cap.output[0].argmax())
        obj = scene.objects[0].label
        right = pred == obj
        role = "learn" if kept["learn"] < learn else "trial"
        if role == "trial" and kept[right] >= want[right]:
            continue
        kept["learn" if role == "learn" else right] += 1
        other = scene.cue.label if scene.cue.label != obj else int((obj + rng.integers(1, len(names))) % len(names))
        options = [names[obj], names[other]] if rng.random() < 0.5 else [names[other], names[obj]]
        for method in methods:
            t = len(trials)
            png, read = _picture(loaded, view, cap, method, pred)
            stimuli[(t, "map")] = png
            payload = {"image": {"source": "shapes", "seed": seed, "index": i, "kind": "single", "cue": cue},
                       "method": method, "role": role, "model_says": names[pred], "model_right": bool(right),
                       "object_class": names[obj], "mark_class": names[scene.cue.label], **read}
            if design.kind == "simulate":
                payload["options"] = options if names[pred] in options else [names[pred], names[obj]]
            else:
                payload["options"] = list(RELIES_ON)
                payload["answer"] = SHORTCUT
            trials.append(payload)
        del cap
        if progress:
            progress(kept[True] + kept[False], design.n_images)
    if kept[True] + kept[False] == 0:  # studies.design names it a DesignError
        raise LookupError(f"no scene kept of {seen} candidates: add candidates")
    config = {"kind": design.kind, "title": design.title, "models": [model_id], "methods": methods,
              "arms": bool(design.arms), "seed": design.seed, "source": dict(design.source),
              "n_images": design.n_images, "instructions": design.instructions,
              "field_settings": dict(design.field_settings), "plan": dict(design.plan),
              "weights_sha256": {model_id: loaded.sha256}, "layers": {model_id: loaded.default_layer},
              "map_settings": {"normalisation": "per_map", "overlay_alpha": 0.5, "target": "logit of the prediction"},
              "candidates_seen": seen, "images_kept": kept[True] + kept[False], "learning_scenes": kept["learn"],
              "model_right": kept[True], "model_wrong": kept[False], "unreadable_files": []}
    return config, trials, stimuli
