"""Training the shapes-world classifiers: seeded, on the CPU, a few minutes each, with a model card.

A recipe (``model_zoo.shapes.recipes``) names the architecture and the data; ``train`` generates the
scenes, fits the network (AdamW with a one-cycle learning-rate schedule, cross-entropy; a
two-object scene's target is 1/2 on each of its classes), measures held-out accuracy on scenes of a
disjoint seed, and writes ``<id>.pt`` (a plain state dict) and ``<id>.json`` (the card: accuracy,
config, sha256, training time). Runs are seeded; bit-identical weights across different CPUs are not
promised (floating-point kernels differ), the accuracy on the card is what a rerun reproduces."""
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

from model_zoo.shapes.recipes import (HELDOUT_SEED_OFFSET, MEAN, RECIPES, STD, Recipe, _normalise, accuracy, build,
                                      cue_ablation, with_overrides)
from model_zoo.shapes.world import CLASSES, SIZE, make_scene
from model_zoo.weights import sha256_of

__all__ = ["train", "RECIPES", "with_overrides"]


def _dataset(recipe: Recipe, progress):
    images, targets = [], []
    n = len(CLASSES)
    for i in range(recipe.n_single):
        cue = recipe.cue if recipe.cue == "match" or i % 2 == 0 else "none"
        s = make_scene(recipe.seed, i, "single", cue)
        images.append(s.image)
        targets.append(np.eye(n, dtype=np.float32)[s.label])
        progress.update(1)
    for i in range(recipe.n_pair):
        s = make_scene(recipe.seed, i, "pair", "none")
        t = np.zeros(n, np.float32)
        for o in s.objects:
            t[o.label] += 0.5
        images.append(s.image)
        targets.append(t)
        progress.update(1)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(np.stack(targets))


def train(recipe: Recipe, out_dir: Path, heldout: int = 1000, show_progress: bool = True) -> dict:
    """Train ``recipe`` and write ``<id>.pt`` and ``<id>.json`` into ``out_dir``; return the card.
    Seeded within ``torch.random.fork_rng``: the caller's global random state is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(recipe.seed)
        return _train(recipe, out_dir, heldout, show_progress)


def _train(recipe: Recipe, out_dir: Path, heldout: int, show_progress: bool) -> dict:
    started = time.perf_counter()
    total = recipe.n_single + recipe.n_pair
    steps_per_epoch = math.ceil(total / recipe.batch)
    with tqdm(total=total + recipe.epochs * steps_per_epoch, desc=f"{recipe.id}", unit="step",
              disable=not show_progress) as bar:
        bar.set_postfix_str("generating scenes")
        x, y = _dataset(recipe, bar)
        model = build(recipe)
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch)
        gen = torch.Generator().manual_seed(recipe.seed)
        model.train()
        for epoch in range(recipe.epochs):
            order = torch.randperm(total, generator=gen)
            running = 0.0
            for step in range(steps_per_epoch):
                idx = order[step * recipe.batch:(step + 1) * recipe.batch]
                logits = model(_normalise(x[idx]))
                loss = -(y[idx] * F.log_softmax(logits, 1)).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                running = 0.9 * running + 0.1 * float(loss.detach()) if step else float(loss.detach())
                bar.update(1)
                bar.set_postfix_str(f"epoch {epoch + 1}/{recipe.epochs} loss {running:.3f}")
    train_seconds = time.perf_counter() - started
    model.eval()
    heldout_seed = recipe.seed + HELDOUT_SEED_OFFSET
    acc = accuracy(model, heldout, heldout_seed, "none")
    card = {
        "id": recipe.id,
        "title": recipe.title,
        "description": recipe.description,
        "classes": list(CLASSES),
        "input": {"size": SIZE, "mean": list(MEAN), "std": list(STD)},
        "config": asdict(recipe),
        "parameters": sum(p.numel() for p in model.parameters()),
        "heldout": {"accuracy": round(acc, 4), "n": heldout, "seed": heldout_seed, "kind": "single", "cue": "none"},
        "training_seconds": round(train_seconds, 1),
        "trained_with": {"torch": torch.__version__, "python": platform.python_version(),
                         "machine": platform.machine(), "threads": torch.get_num_threads()},
    }
    card["heldout"].update(cue_ablation(model, heldout, heldout_seed))
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{recipe.id}.pt"
    torch.save(model.state_dict(), weights)
    card["sha256"] = sha256_of(weights)
    (out_dir / f"{recipe.id}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
