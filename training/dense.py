"""Training the shapes world's detector and segmenter: seeded, on the CPU, in minutes, with a card.

The training scenes are the multi-object world (``kind="multi"``: one to four objects, classes
drawn independently) of the recipe's seed; the card's figures come from the held-out world
(``evaluation.dense.HELDOUT_SEED``), never used for training or for any choice.

* The detector (``ShapesDetector``, after CenterNet) learns a Gaussian heatmap per class
  (penalty-reduced focal loss), and the box size and sub-cell offset at each object's centre
  cell (L1). Its card gives mAP@0.5 (VOC all-point AP).
* The segmenter (``ShapesSegmenter``) learns per-pixel labels (cross-entropy). Its card gives the
  mean IoU over the nine labels (background included) and per class.
"""
from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from evaluation import dense as ev
from model_zoo.shapes.dense import SEGMENT_CLASSES, STRIDE, ShapesDetector, ShapesSegmenter
from model_zoo.shapes.recipes import DENSE_RECIPES, MEAN, STD, DenseRecipe
from model_zoo.shapes.world import CLASSES, SIZE, make_scene
from model_zoo.preprocess import Preprocess
from model_zoo.weights import sha256_of

__all__ = ["DenseRecipe", "DENSE_RECIPES", "train_dense", "detector_targets", "label_image"]

PREPROCESS = Preprocess(resize=SIZE, crop=SIZE, mean=MEAN, std=STD)


def detector_targets(scene, grid: int = SIZE // STRIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CenterNet's targets for one scene: the heat (classes x grid x grid, a Gaussian at each
    object's centre cell, sigma a sixth of its smaller side in cells, at least 0.5), and at the
    centre cells the size (2 x grid x grid, width and height over 64 px), the offset of the
    centre within its cell (2 x grid x grid) and a mask of those cells."""
    heat = np.zeros((len(CLASSES), grid, grid), np.float32)
    size = np.zeros((2, grid, grid), np.float32)
    offset = np.zeros((2, grid, grid), np.float32)
    centre = np.zeros((grid, grid), bool)
    ys, xs = np.mgrid[0:grid, 0:grid]
    for o in scene.objects:
        x0, y0, x1, y1 = o.box
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        i, j = min(int(cy), grid - 1), min(int(cx), grid - 1)
        sigma = max(0.5, min(x1 - x0, y1 - y0) / STRIDE / 6)
        g = np.exp(-((xs - j) ** 2 + (ys - i) ** 2) / (2 * sigma ** 2))
        heat[o.label] = np.maximum(heat[o.label], g)
        size[:, i, j] = ((x1 - x0) / 64.0, (y1 - y0) / 64.0)
        offset[:, i, j] = (cx - j, cy - i)
        centre[i, j] = True
    return heat, size, offset, centre


def label_image(scene) -> np.ndarray:
    """The scene's pixels as labels: 0 background (and clutter, the corner mark), 1 + class."""
    out = np.zeros(scene.image.shape[:2], np.int64)
    for o in scene.objects:
        out[o.mask] = 1 + o.label
    return out


def _focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), over the number of objects."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    loss = -(pos * (1 - p) ** 2 * torch.log(p) + neg * (1 - target) ** 4 * p ** 2 * torch.log(1 - p)).sum()
    return loss / pos.sum().clamp(min=1)


def _scenes(seed: int, n: int, progress, what: str):
    return [make_scene(seed, i, "multi") for i in tqdm(range(n), desc=what, unit="scene", disable=not progress)]


def _batches(n: int, batch: int, rng: np.random.Generator):
    order = rng.permutation(n)
    return [order[k:k + batch] for k in range(0, n, batch)]


def _train_detector(model: ShapesDetector, recipe: DenseRecipe, scenes, show_progress: bool) -> None:
    x = ev.scene_batch(scenes, PREPROCESS)
    t = [detector_targets(s) for s in scenes]
    heat = torch.from_numpy(np.stack([a[0] for a in t]))
    size = torch.from_numpy(np.stack([a[1] for a in t]))
    offset = torch.from_numpy(np.stack([a[2] for a in t]))
    centre = torch.from_numpy(np.stack([a[3] for a in t]))
    _fit(model, recipe, len(scenes), show_progress, lambda idx: _detector_loss(model, x[idx], heat[idx], size[idx],
                                                                               offset[idx], centre[idx]))


def _detector_loss(model, x, heat, size, offset, centre):
    h, s, o = model.maps(x)
    m = centre.unsqueeze(1).float()
    n = m.sum().clamp(min=1)
    return _focal(h, heat) + 5.0 * (torch.abs(s - size) * m).sum() / n + (torch.abs(o - offset) * m).sum() / n


def _train_segmenter(model: ShapesSegmenter, recipe: DenseRecipe, scenes, show_progress: bool) -> None:
    x = ev.scene_batch(scenes, PREPROCESS)
    y = torch.from_numpy(np.stack([label_image(s) for s in scenes]))
    _fit(model, recipe, len(scenes), show_progress, lambda idx: F.cross_entropy(model(x[idx]), y[idx]))


def _fit(model, recipe: DenseRecipe, n: int, show_progress: bool, loss_of) -> None:
    rng = np.random.default_rng([recipe.seed, 17])
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    steps = recipe.epochs * math.ceil(n / recipe.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=steps, pct_start=0.15)
    model.train()
    with tqdm(total=steps, desc=f"{recipe.id}: training", unit="batch", disable=not show_progress) as bar:
        for _ in range(recipe.epochs):
            for idx in _batches(n, recipe.batch, rng):
                loss = loss_of(torch.from_numpy(idx))
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    model.eval()


def detect_all(model: ShapesDetector, scenes, batch: int = 128) -> list[dict]:
    out = []
    with torch.no_grad():
        for k in range(0, len(scenes), batch):
            out += model(ev.scene_batch(scenes[k:k + batch], PREPROCESS))
    return out


def segment_all(model: ShapesSegmenter, scenes, batch: int = 128) -> np.ndarray:
    out = []
    with torch.no_grad():
        for k in range(0, len(scenes), batch):
            out.append(model(ev.scene_batch(scenes[k:k + batch], PREPROCESS)).argmax(1).numpy())
    return np.concatenate(out)


def heldout_figures(model, task: str, scenes) -> dict:
    """The card's accuracy figures on held-out scenes: mAP@0.5 (and @0.75) for the detector,
    mean IoU for the segmenter."""
    if task == "detection":
        d = detect_all(model, scenes)
        truths = [[(o.label, o.box) for o in s.objects] for s in scenes]
        m50 = ev.mean_average_precision(d, truths, len(CLASSES), 0.5)
        m75 = ev.mean_average_precision(d, truths, len(CLASSES), 0.75)
        return {"scenes": len(scenes), "objects": sum(len(t) for t in truths), "map50": m50["map"],
                "map75": m75["map"], "ap50_per_class": dict(zip(CLASSES, m50["per_class"]))}
    pred = segment_all(model, scenes)
    truth = np.stack([label_image(s) for s in scenes])
    m = ev.mean_iou(pred, truth, len(SEGMENT_CLASSES))
    return {"scenes": len(scenes), "miou": m["miou"], "iou_per_class": dict(zip(SEGMENT_CLASSES, m["per_class"])),
            "pixel_accuracy": float((pred == truth).mean())}


def train_dense(recipe: DenseRecipe, out_dir: Path, heldout: int = 500, show_progress: bool = True) -> dict:
    """Train ``recipe``, save ``<id>.pt`` (a plain state dict) and ``<id>.json`` (its card)."""
    torch.manual_seed(recipe.seed)
    started = time.perf_counter()
    scenes = _scenes(recipe.seed, recipe.scenes, show_progress, f"{recipe.id}: scenes")
    model = ShapesDetector() if recipe.task == "detection" else ShapesSegmenter()
    if recipe.task == "detection":
        _train_detector(model, recipe, scenes, show_progress)
    else:
        _train_segmenter(model, recipe, scenes, show_progress)
    seconds = time.perf_counter() - started
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{recipe.id}.pt"
    torch.save(model.state_dict(), path)
    held = _scenes(ev.HELDOUT_SEED, heldout, show_progress, f"{recipe.id}: held-out scenes")
    card = {"id": recipe.id, "title": recipe.title, "task": recipe.task, "recipe": asdict(recipe),
            "training_scenes": {"seed": recipe.seed, "kind": "multi", "n": recipe.scenes},
            "heldout_seed": ev.HELDOUT_SEED, "heldout": heldout_figures(model, recipe.task, held),
            "parameters": sum(p.numel() for p in model.parameters()), "training_seconds": round(seconds, 1),
            "torch": torch.__version__, "machine": platform.machine(), "threads": torch.get_num_threads(),
            "sha256": sha256_of(path), "retrain": f"./studio shapes train --model {recipe.id}"}
    (out_dir / f"{recipe.id}.json").write_text(json.dumps(card, indent=2))
    return card
