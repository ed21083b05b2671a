"""Training the shapes world's captioner and VQA model: seeded, on the CPU, with a model card of
held-out figures (``model_zoo.shapes.multimodal`` holds the networks, recipes and measures)."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from model_zoo.shapes import language as L
from model_zoo.shapes.multimodal import (CONCEPTS, HELDOUT_OFFSET, MultiRecipe, _evaluate, _scenes, build_multimodal,
                                         caption_batch, concept_labels, images_tensor, question_batch)
from training.step import step
from model_zoo.weights import sha256_of

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "model_zoo" / "shapes" / "weights"
__all__ = ["train_multimodal"]


def train_multimodal(recipe: MultiRecipe, out_dir: Path, heldout: int = 800, show_progress: bool = True) -> dict:
    """Train ``recipe`` and write ``<id>.pt`` and its card ``<id>.json`` into ``out_dir``."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    started = time.perf_counter()
    scenes = _scenes(recipe.n_single, recipe.n_pair, recipe.seed)
    x_all = images_tensor(scenes)
    model = build_multimodal(recipe)
    if recipe.trunk_from:
        from model_zoo.weights import read_state_dict
        state, _ = read_state_dict(WEIGHTS_DIR / f"{recipe.trunk_from}.pt",
                                   label=recipe.trunk_from)
        trunk = {k: v for k, v in state.items() if k.split(".")[0] in ("stem", "layer1", "layer2", "layer3")}
        missing, unexpected = model.load_state_dict(trunk, strict=False)
        if unexpected or any(k.split(".")[0] in ("stem", "layer1", "layer2", "layer3") for k in missing):
            raise ValueError(f"{recipe.trunk_from}'s trunk does not fit {recipe.id}: {unexpected or missing}")
    params = list(model.parameters())
    if recipe.concept_loss:
        concepts = nn.Linear(model.features, len(CONCEPTS))
        labels = concept_labels(scenes)
        params += list(concepts.parameters())
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=1e-4)
    steps = recipe.epochs * (len(scenes) // recipe.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps)
    if recipe.task == "caption":
        captions = [L.encode_caption(L.caption_words(s)) for s in scenes]
    else:
        qa = [[(L.encode_question(q.text), L.ANSWERS.index(q.answer)) for q in L.questions(s)] for s in scenes]
    bar = tqdm(total=steps, desc=f"training {recipe.id}", unit="step", disable=not show_progress)
    model.train()
    for _ in range(recipe.epochs):
        order = rng.permutation(len(scenes))
        for b in range(len(scenes) // recipe.batch):
            idx = order[b * recipe.batch:(b + 1) * recipe.batch]
            xb = x_all[idx]
            f = model.encode(xb)
            if recipe.task == "caption":
                inp, tgt = caption_batch([captions[i] for i in idx])
                logits = model.decode(f, inp)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=0)
            else:  # every question of every scene: the image passes once, its vector meets each question
                rows = [j for j, i in enumerate(idx) for _ in qa[i]]
                picks = [p for i in idx for p in qa[i]]
                logits = model.answer(model.vector(f)[rows], question_batch([q for q, _ in picks]))
                loss = F.cross_entropy(logits, torch.tensor([a for _, a in picks]))
            if recipe.concept_loss:
                loss = loss + recipe.concept_loss * F.binary_cross_entropy_with_logits(concepts(f), labels[idx])
            step(opt, sched, loss, bar)
    bar.close()
    seconds = time.perf_counter() - started
    model.eval()
    figures = _evaluate(model, recipe, recipe.seed + HELDOUT_OFFSET, heldout)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{recipe.id}.pt"
    torch.save(model.state_dict(), weights)
    card = {"id": recipe.id, "title": recipe.title, "task": recipe.task, "recipe": asdict(recipe), **figures,
            "training_seconds": round(seconds, 1), "torch": torch.__version__, "machine": platform.machine(),
            "threads": torch.get_num_threads(), "sha256": sha256_of(weights),
            "retrain": f"./studio shapes train --model {recipe.id}"}
    (out_dir / f"{recipe.id}.json").write_text(json.dumps(card, indent=2))
    return card
