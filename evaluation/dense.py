"""Detection and segmentation figures on the shapes world's scenes of one to four objects:

* ``average_precision`` / ``mean_average_precision``: PASCAL VOC's all-point interpolated AP at
  one IoU threshold (written here: the definition is a dozen lines, checked by hand in
  ``tests/evaluation/test_dense.py``; the peers, torchmetrics and pycocotools, are not
  dependencies of the studio), with torchvision's ``box_iou``;
* ``mean_iou``: the segmenter's per-class IoU over the held-out pixels, averaged over classes;
* ``detection_pointing``: the D-RISE paper's pointing game: for each correctly detected object,
  is the peak of its detection's map inside its ground-truth box;
* ``segmentation_mass``: where a class's map puts its positive mass: inside the class's
  ground-truth mask, on other objects, or on the background.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torchvision.ops import box_iou

__all__ = ["average_precision", "mean_average_precision", "match_objects", "mean_iou", "detection_pointing",
           "segmentation_mass", "scene_batch", "detection_card", "segmentation_card", "HELDOUT_SEED",
           "VALIDATION_SEED", "DETECTION_METHODS", "SEGMENTATION_METHODS", "RISE_OPTIONS"]

HELDOUT_SEED = 10_000  # the held-out multi-object world: never used for training or choices
VALIDATION_SEED = 20_000  # where layers and settings were chosen


def scene_batch(scenes, preprocess) -> torch.Tensor:
    """Scenes as a normalised N x 3 x 64 x 64 batch (the shapes models' preprocessing)."""
    x = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1).float() / 255.0 for s in scenes])
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1)
    return (x - mean) / std


def _box_tensor(boxes) -> torch.Tensor:
    return torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))


def average_precision(detections: list[dict], truths: list[list[tuple[int, tuple]]], label: int,
                      iou: float = 0.5) -> float | None:
    """AP of class ``label`` over images: ``detections[i]`` a detector's dict for image i,
    ``truths[i]`` that image's (label, box) pairs. Detections are taken best score first over
    all images; one is a true positive if it overlaps a not yet matched ground-truth box of its
    class by IoU >= ``iou``. AP is the area under the precision-recall curve with precision made
    monotone (VOC 2010+, all points). None if the class has no ground truth."""
    total = sum(1 for t in truths for lab, _ in t if lab == label)
    if total == 0:
        return None
    rows = []  # (score, image, box)
    for i, d in enumerate(detections):
        keep = d["labels"] == label
        for s, b in zip(d["scores"][keep].tolist(), d["boxes"][keep].tolist()):
            rows.append((s, i, b))
    rows.sort(key=lambda r: -r[0])
    used = [[False] * len(t) for t in truths]
    tp = np.zeros(len(rows))
    for k, (_, i, b) in enumerate(rows):
        cands = [j for j, (lab, _) in enumerate(truths[i]) if lab == label]
        if not cands:
            continue
        overlaps = box_iou(_box_tensor([b]), _box_tensor([truths[i][j][1] for j in cands]))[0]
        order = overlaps.argsort(descending=True).tolist()
        best = next((cands[j] for j in order if overlaps[j] >= iou and not used[i][cands[j]]), None)
        if best is not None:
            used[i][best] = True
            tp[k] = 1
    if not rows:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / total
    precision = ctp / np.arange(1, len(rows) + 1)
    r = np.concatenate([[0.0], recall, [recall[-1]]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


def mean_average_precision(detections, truths, classes: int, iou: float = 0.5) -> dict:
    """AP per class (None where a class has no ground truth) and their mean over the classes
    that have some."""
    per = [average_precision(detections, truths, c, iou) for c in range(classes)]
    have = [a for a in per if a is not None]
    return {"iou": iou, "per_class": per, "map": float(np.mean(have)) if have else None}


def match_objects(detection: dict, truth: list[tuple[int, tuple]], iou: float = 0.5) -> list[int | None]:
    """For each ground-truth object, the index of the best-scoring detection of its class that
    overlaps it by IoU >= ``iou`` (greedy, each detection used once, objects in order), or None."""
    taken, out = set(), []
    for lab, box in truth:
        same = [k for k in range(len(detection["labels"])) if int(detection["labels"][k]) == lab and k not in taken]
        if not same:
            out.append(None)
            continue
        overlaps = box_iou(_box_tensor([box]), detection["boxes"][same].detach().float())[0]
        ok = [(float(detection["scores"][same[j]]), same[j]) for j in range(len(same)) if overlaps[j] >= iou]
        if not ok:
            out.append(None)
            continue
        k = max(ok)[1]
        taken.add(k)
        out.append(k)
    return out


def mean_iou(predicted: np.ndarray, truth: np.ndarray, classes: int) -> dict:
    """Per-class IoU of label images (N x H x W ints) accumulated over all pixels, and their
    mean over the classes present in either."""
    per = []
    for c in range(classes):
        p, t = predicted == c, truth == c
        union = int((p | t).sum())
        per.append(None if union == 0 else float((p & t).sum() / union))
    have = [v for v in per if v is not None]
    return {"per_class": per, "miou": float(np.mean(have)) if have else None}


def _peak(m: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return int(y), int(x)


def detection_pointing(maps: dict[str, Callable], scenes, detect: Callable, iou: float = 0.5,
                       progress: Callable[[int, int], None] | None = None) -> dict:
    """The pointing game over scenes: ``detect(scene)`` gives the detector's dict for a scene;
    ``maps[name](scene, detection_index, detection)`` the map (H x W) of one detection. For every
    ground-truth object matched by a detection of its class (IoU >= ``iou``), a hit when the
    map's peak lies inside the object's box. Returns per method the share of hits, and the
    number of detections scored."""
    hits = {name: 0 for name in maps}
    n = 0
    for k, scene in enumerate(scenes):
        d = detect(scene)
        truth = [(o.label, o.box) for o in scene.objects]
        for (lab, (x0, y0, x1, y1)), j in zip(truth, match_objects(d, truth, iou)):
            if j is None:
                continue
            n += 1
            for name, fn in maps.items():
                y, x = _peak(fn(scene, j, d))
                hits[name] += x0 <= x < x1 and y0 <= y < y1
        if progress:
            progress(k + 1, len(scenes))
    return {"detections": n, "iou": iou, "hit_rate": {name: h / max(n, 1) for name, h in hits.items()}}


def segmentation_mass(m: np.ndarray, scene, class_index: int) -> dict:
    """Where the positive mass of a map for class ``class_index`` (0-based among the eight
    shapes) falls in a scene: inside that class's ground-truth mask, on the other objects, or
    elsewhere (background and clutter). Shares of the map's positive mass (0 when it has none)."""
    pos = np.maximum(m, 0)
    total = float(pos.sum())
    own = np.zeros(m.shape, bool)
    other = np.zeros(m.shape, bool)
    for o in scene.objects:
        (own if o.label == class_index else other)[o.mask] = True
    if total == 0:
        return {"inside": 0.0, "other_objects": 0.0, "background": 0.0}
    inside, on_other = float(pos[own].sum() / total), float(pos[other].sum() / total)
    return {"inside": inside, "other_objects": on_other, "background": 1.0 - inside - on_other}


DETECTION_METHODS = ("gradcam", "eigencam", "rise", "centre")
SEGMENTATION_METHODS = ("gradcam", "hirescam", "layercam", "eigencam", "centre")
RISE_OPTIONS = {"masks": 500, "cell": 8}  # a 9 x 9 grid of cells on the 64-px scenes (D-RISE's ~16 on ~600 px)


def detection_card(model, layer: str, preprocess, scenes, methods=DETECTION_METHODS, progress=None) -> dict:
    """The detector's pointing game on ``scenes``: every correctly detected object (IoU >= 0.5,
    its class) explained by each method through its :class:`explainers.DetectionScore`."""
    import explainers
    from model_zoo.shapes.world import CLASSES

    def detect(scene):
        with torch.no_grad():
            return model(scene_batch([scene], preprocess))[0]

    kept = {}  # the scene's one kept forward, shared by its detections and the layer methods

    def method_map(name):
        options = RISE_OPTIONS if name == "rise" else {}

        def fn(scene, j, d):
            target = explainers.DetectionScore(int(d["labels"][j]), tuple(d["boxes"][j].tolist()),
                                               name=CLASSES[int(d["labels"][j])])
            x = scene_batch([scene], preprocess)
            if not explainers.get_method(name).needs_layer:
                return explainers.explain(model, x, method=name, target=target, **options).attribution
            if kept.get("scene") is not scene:
                kept.update(scene=scene, cap=explainers.Capture(model, x, layer=layer))
            return kept["cap"].explain(name, target).attribution
        return fn

    got = detection_pointing({m: method_map(m) for m in methods}, scenes, detect, progress=progress)
    return {**got, "layer": layer, "scenes": len(scenes), "rise": dict(RISE_OPTIONS)}


def segmentation_card(model, layer: str, preprocess, scenes, methods=SEGMENTATION_METHODS, progress=None) -> dict:
    """Where each class's map falls: for every class in a scene that the segmenter also predicts,
    the map of its logits summed over its predicted mask (:class:`explainers.SegmentationRegion`),
    its positive mass split into inside the class's ground-truth mask, on other objects and on
    the background; means per method. Classes in a scene the segmenter missed are counted."""
    import explainers
    from model_zoo.shapes.world import CLASSES
    sums = {m: {"inside": 0.0, "other_objects": 0.0, "background": 0.0} for m in methods}
    n = missed = 0
    cap_methods = [m for m in methods if explainers.get_method(m).needs_layer]
    for k, scene in enumerate(scenes):
        x = scene_batch([scene], preprocess)
        cap = explainers.Capture(model, x, layer=layer)  # one forward a scene, kept for every class
        pred = cap.output[0].argmax(0).numpy()
        for c in sorted({o.label for o in scene.objects}):
            region = pred == 1 + c
            if not region.any():
                missed += 1
                continue
            target = explainers.SegmentationRegion(1 + c, region, name=CLASSES[c])
            n += 1
            for m in methods:
                if m in cap_methods:
                    e = cap.explain(m, target)
                else:
                    e = explainers.explain(model, x, method=m, target=target)
                for key, v in segmentation_mass(e.attribution, scene, c).items():
                    sums[m][key] += v
        if progress:
            progress(k + 1, len(scenes))
    return {"layer": layer, "scenes": len(scenes), "classes_explained": n, "classes_missed": missed,
            "mass": {m: {key: v / max(n, 1) for key, v in s.items()} for m, s in sums.items()}}
