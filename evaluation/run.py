"""The evaluation loop: every metric for every method on N images, streamed one image at a
time (cost linear in N, memory flat: only running sums are kept)."""
from __future__ import annotations

import csv
import io
import time
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image

import explainers
from explainers import agreement, render

from . import metrics, perturb
from .data import Object, Sample

__all__ = ["baselines", "all_methods", "evaluate", "method_map", "SCORES", "to_csv"]


def baselines() -> list[str]:
    """The registry's baselines (random, centre, and any registered later)."""
    return explainers.method_names("baseline")


def all_methods(model=None) -> list[str]:
    """What an evaluation can score, read from the registry now: every method (with ``model``,
    those that apply to it), then the baselines."""
    return [*explainers.method_names(model=model), *baselines()]

SCORES = {  # which score each metric uses, written into every report
    "localisation_error_top1": "box from the map of the top-1 class (logit), threshold x max",
    "localisation_error_top5": "boxes from the maps of the top-5 classes (logits)",
    "gt_known_localisation_accuracy": "box from the map of the true class (logit; the first "
                                      "annotated object's), IoU >= 0.5 with any of its boxes",
    "pointing": "map of each present class (logit); one trial per class, a hit within tolerance "
                "of any of its instances",
    "pointing_recall_aware": "maps of the top-5 and present classes (logit); a map whose max is "
                             "below reject x the largest of them rejects its class",
    "faithfulness_spearman": "rank correlation with the occlusion map of the top-1 logit",
    "deletion_auc": "softmax probability of the top-1 class (lower is better)",
    "insertion_auc": "softmax probability of the top-1 class (higher is better)",
    "average_drop_pct": "softmax probability of the top-1 class (lower is better)",
    "increase_in_confidence_pct": "softmax probability of the top-1 class (higher is better)",
}


def method_map(capture, method: str, classes: list[int], size, rng: np.random.Generator,
               options: dict | None = None) -> list[np.ndarray]:
    """H x W maps at input resolution, one per class. Pixel methods: |attribution| summed over
    colours; baselines as the registry defines them ("random" draws from ``rng``, so a run's noise
    is one stream). ``options``: the method's own (the evaluation gives occlusion its patch and
    stride)."""
    options = dict(options or {})
    if "rng" in explainers.get_method(method).options:
        options["rng"] = rng
    out = capture.explain(method, list(classes), **options)
    return [np.abs(e.attribution).sum(0) if e.attribution.ndim == 3 else e.attribution for e in out]


def _lap(terms: dict, key: str, since: float) -> float:
    now = time.perf_counter()
    terms[key] += now - since
    return now


class _Sums:
    def __init__(self):
        self.s: dict[str, float] = {}
        self.n: dict[str, int] = {}

    def add(self, key, value, weight=1):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return
        self.s[key] = self.s.get(key, 0.0) + float(value)
        self.n[key] = self.n.get(key, 0) + weight

    def mean(self, key):
        return self.s[key] / self.n[key] if self.n.get(key) else float("nan")


def evaluate(loaded, samples: Iterable[Sample], methods=None, *, threshold: float = 0.15,
             tolerance: float = 15.0, reject: float = 0.5, steps: int = 32, patch: int = 8,
             stride: int = 4, seed: int = 0, progress: Callable[[int], None] | None = None) -> dict:
    """Every metric for every method on the samples. ``loaded``: a model_zoo LoadedModel (its
    categories name the samples' objects). Returns the report: per method each metric by name,
    the mean deletion/insertion curves, what score each metric uses, the settings, and the seconds
    each method took per image for its maps (``map_seconds_per_image``). Nothing is
    dropped silently: files a folder skipped are listed (``skipped_files``), and maps with NaN or
    infinite values are counted per method (``maps_not_finite``) and left out of its means."""
    known = all_methods()
    methods = all_methods(loaded.model) if methods is None else list(methods)
    bad = [m for m in methods if m not in known]
    if bad:
        raise ValueError(f"unknown method(s) {', '.join(bad)}; choose among {', '.join(known)}")
    model, names = loaded.model, list(loaded.categories)
    index = {n: i for i, n in enumerate(names)}
    rng = np.random.default_rng(seed)
    sums = {m: _Sums() for m in methods}
    curves = {m: {"deletion": np.zeros(steps + 1), "insertion": np.zeros(steps + 1)} for m in methods}
    n_images = correct = 0
    skipped_objects = 0
    nan_maps = {m: 0 for m in methods}
    map_seconds = {m: 0.0 for m in methods}
    terms = {k: 0.0 for k in ("decode and preprocess", "forward (kept)", "occlusion reference", "maps",
                              "boxes and pointing", "faithfulness", "deletion and insertion",
                              "average drop and increase")}
    started = time.perf_counter()
    for sample in samples:
        tick = time.perf_counter()
        image = Image.fromarray(sample.image)
        view, x = loaded.preprocess.prepare(image)
        x = x.unsqueeze(0)
        objects = sample.objects
        if view.shape[:2] != sample.image.shape[:2]:  # boxes follow the resize and crop; masks give way to boxes
            moved = [(o.name, loaded.preprocess.view_box(o.box, image.size)) for o in objects]
            objects = tuple(Object(name, box) for name, box in moved if box is not None)
        tick = _lap(terms, "decode and preprocess", tick)
        capture = explainers.Capture(model, x, layer=loaded.default_layer,
                                     pixels=any(explainers.get_method(m).needs_pixels
                                                for m in methods))
        tick = _lap(terms, "forward (kept)", tick)
        logits = capture.output[0]
        top5 = [int(i) for i in logits.topk(min(5, logits.numel())).indices]
        top1_prob = float(torch.softmax(logits.float(), 0)[top5[0]])
        present = [(index[o.name], o) for o in objects if o.name in index]
        skipped_objects += len(sample.objects) - len(present)
        truth = [(o.name, o.box) for o in objects]
        correct += int(any(names[top5[0]] == o.name for o in sample.objects))
        tick = time.perf_counter()
        occlusion = capture.explain("occlusion", top5[0], patch=patch, stride=stride).attribution
        _lap(terms, "occlusion reference", tick)
        size = tuple(x.shape[-2:])
        classes = list(dict.fromkeys(top5 + [c for c, _ in present]))
        instances = [metrics.Instance(c, o.box, o.mask) for c, o in present]
        regions = metrics.class_regions(instances, size)  # per class, every instance of it
        for m in methods:
            tick = time.perf_counter()
            maps = dict(zip(classes, method_map(capture, m, classes, size, rng,
                                                {"patch": patch, "stride": stride} if m == "occlusion" else None)))
            map_seconds[m] += time.perf_counter() - tick
            tick = _lap(terms, "maps", tick)
            s = sums[m]
            if not all(np.isfinite(v).all() for v in maps.values()):
                nan_maps[m] += 1  # counted in the report; this image's metrics for m are left out
                continue
            boxes = {c: metrics.box_from_map(maps[c], threshold) for c in top5}
            s.add("localisation_error_top1", 1 - metrics.localisation([(names[top5[0]], boxes[top5[0]])], truth))
            s.add("localisation_error_top5", 1 - metrics.localisation([(names[c], boxes[c]) for c in top5], truth))
            gt_known, pointing = metrics.localise_and_point(maps, instances, threshold, tolerance)
            if gt_known is not None:
                s.add("gt_known_localisation_accuracy", gt_known)
            for hit in pointing.values():
                s.add("pointing", hit)
            cut = reject * max(float(np.max(v)) for v in maps.values())
            for c in classes:
                s.add("pointing_recall_aware", metrics.recall_aware_hit(maps[c], regions.get(c), cut, tolerance))
            tick = _lap(terms, "boxes and pointing", tick)
            s.add("faithfulness_spearman", agreement.rank_correlation(maps[top5[0]], occlusion))
            tick = _lap(terms, "faithfulness", tick)
            deletion, insertion = perturb.deletion_insertion(model, x, maps[top5[0]], top5[0], steps)
            curves[m]["deletion"] += deletion
            curves[m]["insertion"] += insertion
            s.add("deletion_auc", metrics.auc(deletion))
            s.add("insertion_auc", metrics.auc(insertion))
            tick = _lap(terms, "deletion and insertion", tick)
            (m01,) = render.normalize([np.maximum(maps[top5[0]], 0)], "per_map")
            drop, increase = perturb.average_drop_increase(model, x, m01, top5[0], top1_prob)
            s.add("average_drop_pct", 100 * drop)
            s.add("increase_in_confidence_pct", 100 * increase)
            _lap(terms, "average drop and increase", tick)
        del capture
        n_images += 1
        if progress:
            progress(n_images)
    skipped_files = [{"file": name, "reason": why} for name, why in getattr(samples, "skipped", [])]
    if n_images == 0:
        detail = f"; {len(skipped_files)} skipped, e.g. {skipped_files[0]['file']}: " \
                 f"{skipped_files[0]['reason']}" if skipped_files else ""
        raise ValueError("no images to evaluate (an empty folder, or no image with a VOC annotation)" + detail)
    return {
        "model": loaded.id, "weights_sha256": loaded.sha256, "layer": loaded.default_layer,
        "images": n_images, "top1_accuracy": correct / n_images, "objects_not_in_model_classes": skipped_objects,
        "skipped_files": skipped_files,
        "maps_not_finite": {m: k for m, k in nan_maps.items()},
        "images_per_method": {m: n_images - nan_maps[m] for m in methods},
        "seconds": round(time.perf_counter() - started, 2),
        # the maps of one image (its top-5 and present classes, one capture shared), not the metrics
        "map_seconds_per_image": {m: map_seconds[m] / n_images for m in methods},
        # where an image's time goes, every method together (maps: all methods' maps of its classes)
        "term_seconds_per_image": {k: v / n_images for k, v in terms.items()},
        "settings": {"threshold": threshold, "tolerance_px": tolerance, "reject": reject, "steps": steps,
                     "occlusion_patch": patch, "occlusion_stride": stride, "seed": seed},
        "scores": SCORES,
        "methods": {m: {k: sums[m].mean(k) for k in SCORES} for m in methods},
        "curves": {m: {k: (v / max(n_images - nan_maps[m], 1)).tolist() for k, v in c.items()}
                   for m, c in curves.items()},
    }


def to_csv(report: dict) -> str:
    """The report's metrics as CSV rows: method, metric, value, the score it uses."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "metric", "value", "score used"])
    for m, vals in report["methods"].items():
        for k, v in vals.items():
            w.writerow([m, k, v, report["scores"][k]])
    return buf.getvalue()
