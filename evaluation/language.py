"""Grad-CAM for captions and answers, checked against the shapes world's ground truth (the paper's
section 8 protocols on exact masks instead of human annotations).

* :func:`word_pointing`: for the shape and colour words of a two-object scene's caption
  (teacher-forced), is the maximum of the word's map on the object the word names?
* :func:`region_captions`: the dense-captioning protocol: the caption of one object of a
  two-object scene, explained on the whole scene; the map's mean inside that object's box over
  its mean outside (a uniform map gives 1.0), for Grad-CAM, Guided Backprop and Guided Grad-CAM.
* :func:`vqa_pointing`: for "what colour is the <shape>" and "what shape is the <colour>
  object", is the maximum of the true answer's map on the object asked about? And the VQA-HAT
  measure: the rank correlation of the maps with that object's mask, for Grad-CAM, Guided
  Backprop and a random map.

Every map is of layer ``loaded.default_layer``; pointing allows ``tolerance`` pixels (4 at
64 px, the share of an image the paper's 15 px are at 224 px). Scenes come from a seed never
used for training.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import explainers
from explainers import agreement
from model_zoo.shapes import language as L

from . import metrics

__all__ = ["word_pointing", "region_captions", "vqa_pointing", "card_figures"]


def _x(loaded, scene) -> torch.Tensor:
    return loaded.preprocess(Image.fromarray(scene.image)).unsqueeze(0)


def _magnitude(a: np.ndarray) -> np.ndarray:
    return np.abs(a).sum(0) if a.ndim == 3 else a


def word_pointing(loaded, n: int, seed: int, tolerance: float = 4.0, score: str = "logit", progress=None) -> dict:
    """Share of shape and colour words whose Grad-CAM maximum lies on the object they name;
    ``score``: the word's "logit" (default, as Grad-CAM explains a class's logit) or "log_prob"."""
    kind_of = {"logit": explainers.WordLogit, "log_prob": explainers.WordLogProb}[score]
    hits = {"shape": [], "colour": []}
    for i in range(n):
        scene = L.make_described(seed, i, "pair")
        tokens = L.encode_caption(L.caption_words(scene))
        owners = L.word_objects(scene)
        words = L.caption_words(scene)
        wanted = [(p, kind) for p, w in enumerate(words) for kind in ("shape", "colour")
                  if owners[p] is not None and (w in L.COLOURS if kind == "colour" else w in L.CLASSES)]
        capture = explainers.Capture(loaded.model, _x(loaded, scene), layer=loaded.default_layer,
                                     inputs=(tokens[:-1],))
        maps = capture.explain("gradcam", [kind_of(tokens, p) for p, _ in wanted])
        for (p, kind), e in zip(wanted, maps):
            hits[kind].append(metrics.pointing_hit(e.attribution, scene.objects[owners[p]].shape.mask, tolerance))
        if progress:
            progress(i + 1, n)
    every = hits["shape"] + hits["colour"]
    return {"scenes": n, "words": len(every), "pointing": float(np.mean(every)),
            "pointing_shape_words": float(np.mean(hits["shape"])),
            "pointing_colour_words": float(np.mean(hits["colour"])), "tolerance_px": tolerance, "score": score,
            "seed": seed}


def _inside_over_outside(m: np.ndarray, box) -> float:
    x0, y0, x1, y1 = box
    inside = np.zeros(m.shape, bool)
    inside[y0:y1, x0:x1] = True
    out = m[~inside].mean()
    return float(m[inside].mean() / out) if out > 0 else float("nan")


def region_captions(loaded, n: int, seed: int, progress=None) -> dict:
    """Mean over objects of (map mean inside the object's box) / (mean outside), per method."""
    ratios = {"gradcam": [], "guided_backprop": [], "guided_gradcam": []}
    for i in range(n):
        scene = L.make_described(seed, i, "pair")
        x = _x(loaded, scene)
        for o in scene.objects:
            tokens = L.encode_caption(["a", *o.words])
            capture = explainers.Capture(loaded.model, x, layer=loaded.default_layer, pixels=True,
                                         inputs=(tokens[:-1],))
            target = explainers.CaptionLogProb(tokens)
            for method in ratios:
                m = _magnitude(capture.explain(method, target).attribution)
                ratios[method].append(_inside_over_outside(m, o.shape.box))
        if progress:
            progress(i + 1, n)
    out = {m: float(np.nanmean(v)) for m, v in ratios.items()}
    return {"scenes": n, "regions": len(ratios["gradcam"]), "uniform_map": 1.0, **out, "seed": seed}


def vqa_pointing(loaded, n: int, seed: int, tolerance: float = 4.0, progress=None) -> dict:
    """Pointing of the true answer's Grad-CAM on the asked-about object, per question type, and
    the rank correlation of maps with that object's mask (Grad-CAM, Guided Backprop, random)."""
    hits: dict[str, list[bool]] = {"colour_of_shape": [], "shape_of_colour": []}
    rho = {"gradcam": [], "guided_backprop": [], "random": []}
    rng = np.random.default_rng(seed)
    for i in range(n):
        scene = L.make_described(seed, i, "pair")
        x = _x(loaded, scene)
        for q in L.questions(scene):
            if q.kind not in hits:
                continue
            tokens = L.encode_question(q.text)
            capture = explainers.Capture(loaded.model, x, layer=loaded.default_layer, pixels=True, inputs=(tokens,))
            target = explainers.Answer(tokens, L.ANSWERS.index(q.answer))
            mask = scene.objects[q.about].shape.mask
            cam = capture.explain("gradcam", target).attribution
            hits[q.kind].append(metrics.pointing_hit(cam, mask, tolerance))
            gb = _magnitude(capture.explain("guided_backprop", target).attribution)
            for name, m in (("gradcam", cam), ("guided_backprop", gb), ("random", rng.random(mask.shape))):
                r = agreement.rank_correlation(m, mask.astype(float))
                rho[name].append(0.0 if np.isnan(r) else r)
        if progress:
            progress(i + 1, n)
    every = hits["colour_of_shape"] + hits["shape_of_colour"]
    return {"scenes": n, "questions": len(every), "pointing": float(np.mean(every)),
            **{f"pointing_{k}": float(np.mean(v)) for k, v in hits.items()},
            "rank_correlation_with_mask": {k: float(np.mean(v)) for k, v in rho.items()},
            "tolerance_px": tolerance, "seed": seed}


def card_figures(loaded, n: int, seed: int) -> dict:
    """The Grad-CAM figures a captioning or VQA model's card carries."""
    task = loaded.spec.task if loaded.spec is not None else "classification"
    if task == "caption":
        return {"layer": loaded.default_layer, "word_pointing": word_pointing(loaded, n, seed),
                "region_captions": region_captions(loaded, max(1, n // 2), seed)}
    if task == "vqa":
        return {"layer": loaded.default_layer, "vqa": vqa_pointing(loaded, n, seed)}
    raise ValueError(f"{loaded.id} is a {task} model: no captioning or VQA figures")
