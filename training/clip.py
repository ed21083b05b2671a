"""Training ``shapes-clip`` (``model_zoo.shapes.clip`` holds the network, the recipe and the
card's measures): seeded, on the CPU, with a model card of held-out figures."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from model_zoo.shapes import language as L
from model_zoo.shapes import phrases as P
from model_zoo.shapes.clip import HELDOUT_OFFSET, ClipRecipe, ShapesCLIP, batch_labels, heldout_figures, sample_batch
from model_zoo.shapes.multimodal import images_tensor
from training.step import step
from model_zoo.weights import read_state_dict, sha256_of

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "model_zoo" / "shapes" / "weights"
TRUNK = ("stem", "layer1", "layer2", "layer3")
__all__ = ["train_clip"]


def _ids(phrase) -> list[int]:
    return list(P.encode_phrases([P.say(phrase)]))


def train_clip(recipe: ClipRecipe, out_dir: Path, show_progress: bool = True, evaluate=None) -> dict:
    """Train ``recipe`` and write ``<id>.pt`` and its card ``<id>.json`` into ``out_dir``.
    ``evaluate(model) -> dict``: further held-out figures for the card (the pointing figures of
    ``evaluation.text``)."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    started = time.perf_counter()
    scenes = [L.make_described(recipe.seed, i, "single") for i in range(recipe.n_single)] + \
             [L.make_described(recipe.seed, i, "pair") for i in range(recipe.n_pair)]
    x_all = images_tensor(scenes)
    model = ShapesCLIP()
    if recipe.trunk_from:
        state, _ = read_state_dict(WEIGHTS_DIR / f"{recipe.trunk_from}.pt", label=recipe.trunk_from)
        missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in TRUNK},
                                                    strict=False)
        if unexpected or any(k.split(".")[0] in TRUNK for k in missing):
            raise ValueError(f"{recipe.trunk_from}'s trunk does not fit {recipe.id}: {unexpected or missing}")
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    per_epoch = len(scenes) // recipe.batch
    steps = recipe.epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps)
    bar = tqdm(total=steps, desc=f"training {recipe.id}", unit="step", disable=not show_progress)
    model.train()
    for _ in range(recipe.epochs):
        order = rng.permutation(len(scenes))
        for b in range(per_epoch):
            idx = order[b * recipe.batch:(b + 1) * recipe.batch]
            batch = [scenes[i] for i in idx]
            phrases = sample_batch(batch, rng)
            labels = batch_labels(batch, phrases)
            img = model.image_embedding(x_all[idx])
            text = model.text_embedding([_ids(p) for p in phrases])
            logits = model.logit_scale.exp() * img @ text.T + model.logit_bias
            loss = F.binary_cross_entropy_with_logits(logits, labels)
            step(opt, sched, loss, bar)
    bar.close()
    seconds = time.perf_counter() - started
    model.eval()
    figures = heldout_figures(model, recipe.seed + HELDOUT_OFFSET)
    if evaluate is not None:
        figures.update(evaluate(model))
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{recipe.id}.pt"
    torch.save(model.state_dict(), weights)
    card = {"id": recipe.id, "title": recipe.title, "task": "text", "recipe": asdict(recipe), **figures,
            "training_seconds": round(seconds, 1), "torch": torch.__version__, "machine": platform.machine(),
            "threads": torch.get_num_threads(), "sha256": sha256_of(weights),
            "retrain": f"./studio shapes train --model {recipe.id}"}
    (out_dir / f"{recipe.id}.json").write_text(json.dumps(card, indent=2))
    return card
