"""Text prompts checked against the shapes world's ground truth: does a phrase's map find the
object it names?

* :func:`phrase_pointing`: on held-out two-object scenes, for the phrases naming one object (its
  colour and shape; its size, colour and shape), is the maximum of the phrase's map on that
  object (``tolerance`` pixels, 4 at 64 px as the captioning protocols use)? The control: how often
  the same maximum lies on the other object.
* :func:`colour_swap`: the phrase "<colour of B> <shape of A>" names neither object exactly; does
  its map move to B, the object of that colour? (Reported, not required: the colour word and the
  shape word pull towards different objects.)

Every map is of layer ``loaded.default_layer``, explaining :class:`explainers.TextSimilarity`.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

import explainers
from model_zoo.shapes import language as L
from model_zoo.shapes.clip import HELDOUT_OFFSET

from . import metrics

__all__ = ["phrase_pointing", "colour_swap", "card_figures", "HELDOUT_OFFSET"]


def _capture(loaded, scene, phrases):
    x = loaded.preprocess(Image.fromarray(scene.image)).unsqueeze(0)
    tokens = loaded.model.tokenize(phrases)
    return explainers.Capture(loaded.model, x, layer=loaded.default_layer, inputs=(tokens,)), tokens


def phrase_pointing(loaded, n: int, seed: int, method: str = "gradcam", tolerance: float = 4.0,
                    progress=None) -> dict:
    """Share of one-object phrases whose map's maximum lies on the object they name (every
    phrase of a scene from one forward pass)."""
    hits = {"colour shape": [], "size colour shape": []}
    other = []  # the control: the same maps' maximum on the object the phrase does not name
    for i in range(n):
        scene = L.make_described(seed, i, "pair")
        wanted = [(f"{o.colour} {o.name}", "colour shape", k) for k, o in enumerate(scene.objects)] + \
                 [(f"{o.size} {o.colour} {o.name}", "size colour shape", k) for k, o in enumerate(scene.objects)]
        capture, tokens = _capture(loaded, scene, [p for p, _, _ in wanted])
        maps = capture.explain(method, [explainers.TextSimilarity(tokens, j) for j in range(len(wanted))])
        for (_, kind, k), e in zip(wanted, maps):
            hits[kind].append(metrics.pointing_hit(e.attribution, scene.objects[k].shape.mask, tolerance))
            other.append(metrics.pointing_hit(e.attribution, scene.objects[1 - k].shape.mask, tolerance))
        if progress:
            progress(i + 1, n)
    every = hits["colour shape"] + hits["size colour shape"]
    return {"scenes": n, "phrases": len(every), "pointing": float(np.mean(every)),
            "pointing_colour_shape": float(np.mean(hits["colour shape"])),
            "pointing_size_colour_shape": float(np.mean(hits["size colour shape"])),
            "pointing_other_object": float(np.mean(other)), "tolerance_px": tolerance, "method": method, "seed": seed}


def colour_swap(loaded, n: int, seed: int, tolerance: float = 4.0, progress=None) -> dict:
    """For each object A of a two-object scene and the other object B: the map of "<B's colour>
    <A's shape>"; how often its maximum lies on B (the colour moved it), on A (the shape kept it),
    or on neither."""
    on_b = on_a = 0
    total = 0
    for i in range(n):
        scene = L.make_described(seed, i, "pair")
        a, b = scene.objects
        swapped = [f"{b.colour} {a.name}", f"{a.colour} {b.name}"]
        capture, tokens = _capture(loaded, scene, swapped)
        maps = capture.explain("gradcam", [explainers.TextSimilarity(tokens, j) for j in range(2)])
        for e, (shape_of, colour_of) in zip(maps, ((a, b), (b, a))):
            hit_colour = metrics.pointing_hit(e.attribution, colour_of.shape.mask, tolerance)
            hit_shape = metrics.pointing_hit(e.attribution, shape_of.shape.mask, tolerance)
            on_b += hit_colour and not hit_shape
            on_a += hit_shape and not hit_colour
            total += 1
        if progress:
            progress(i + 1, n)
    return {"swapped_phrases": total, "moved_to_colour": on_b / total, "stayed_on_shape": on_a / total,
            "scenes": n, "seed": seed, "tolerance_px": tolerance}


def card_figures(loaded, n: int, seed: int) -> dict:
    """The pointing figures of the model card (``n`` held-out two-object scenes)."""
    p = phrase_pointing(loaded, n, seed)
    s = colour_swap(loaded, n, seed)
    return {"phrase_pointing": round(p["pointing"], 4),
            "phrase_pointing_colour_shape": round(p["pointing_colour_shape"], 4),
            "phrase_pointing_size_colour_shape": round(p["pointing_size_colour_shape"], 4),
            "phrase_pointing_other_object": round(p["pointing_other_object"], 4),
            "phrase_pointing_phrases": p["phrases"], "phrase_pointing_seed": seed,
            "colour_swap_moved": round(s["moved_to_colour"], 4), "colour_swap_stayed": round(s["stayed_on_shape"], 4),
            "colour_swap_phrases": s["swapped_phrases"]}
