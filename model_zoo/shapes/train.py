"""Training the shapes-world models: seeded, on the CPU, a few minutes each, with a model card.

A recipe names the architecture and the data; ``train`` generates the scenes, fits the network
(AdamW with a one-cycle learning-rate schedule, cross-entropy; a two-object scene's target is
1/2 on each of its classes), measures held-out accuracy on scenes of a disjoint seed, and writes
``<id>.pt`` (a plain state dict) and ``<id>.json`` (the card: accuracy, config, sha256,
training time). Runs are seeded; bit-identical weights across different CPUs are not promised
(floating-point kernels differ), the accuracy on the card is what a rerun reproduces."""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..weights import sha256_of
from .nets import ARCHITECTURES
from .world import CLASSES, SIZE, make_scene

__all__ = ["Recipe", "RECIPES", "build", "train", "scenes_to_tensor", "accuracy", "cue_ablation", "MEAN", "STD",
           "HELDOUT_SEED_OFFSET"]

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
HELDOUT_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class Recipe:
    id: str
    title: str
    arch: str
    width: int
    n_single: int
    n_pair: int
    epochs: int
    # the corner mark on single-object training scenes: "match" (always, the class's colour: a
    # spurious cue) or "random" (on half the scenes, any colour: seen, but uninformative)
    cue: str = "random"
    seed: int = 0
    lr: float = 3e-3
    batch: int = 64
    description: str = ""


RECIPES = {r.id: r for r in (
    Recipe("shapes-resnet", "Shapes ResNet (GAP)", "resnet", 16, 6000, 8000, 8,
           description="residual CNN with global average pooling: the strong model; Grad-CAM equals CAM here"),
    Recipe("shapes-fc", "Shapes CNN, fully connected head", "fc", 16, 6000, 8000, 16,
           description="the strong trunk with a VGG-style fully connected head: CAM does not apply, Grad-CAM does"),
    Recipe("shapes-weak", "Shapes weak net", "resnet", 4, 6000, 0, 10,
           description="a quarter of the strong model's width, no two-object scenes: the weaker model of the trust pair"),
    Recipe("shapes-biased", "Shapes biased net", "resnet", 16, 6000, 0, 4, cue="match",
           description="trained where a corner mark's colour always gives the class away"),
)}


def build(recipe: Recipe, num_classes: int = len(CLASSES)) -> nn.Module:
    return ARCHITECTURES[recipe.arch](num_classes=num_classes, width=recipe.width)


def scenes_to_tensor(scenes) -> torch.Tensor:
    """Scenes -> normalised N x 3 x H x W float tensor (what the models were trained on)."""
    return _normalise(torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2))


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


def _normalise(batch_uint8: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W uint8 -> (x / 255 - MEAN) / STD."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (batch_uint8.float() / 255.0 - mean) / std


@contextmanager
def evaluating(model: nn.Module):
    """``model`` in eval mode for the block; every module's own training flag restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.train(flag)


@torch.no_grad()
def accuracy(model: nn.Module, n: int, seed: int, cue: str = "none", batch: int = 250) -> float:
    """Top-1 accuracy on single-object scenes ``0..n-1`` of the world ``seed`` (in eval mode; the
    caller's model comes back in the mode it was in)."""
    correct = 0
    with evaluating(model):
        for start in range(0, n, batch):
            scenes = [make_scene(seed, i, "single", cue) for i in range(start, min(n, start + batch))]
            pred = model(scenes_to_tensor(scenes)).argmax(1)
            correct += int((pred == torch.tensor([s.label for s in scenes])).sum())
    return correct / n


def cue_ablation(model: nn.Module, n: int, seed: int) -> dict:
    """Accuracy on the same scenes with the class's corner mark and with a misleading one (the
    scenes differ from the card's plain held-out scenes only in the mark)."""
    return {"accuracy_with_matching_cue": round(accuracy(model, n, seed, "match"), 4),
            "accuracy_with_flipped_cue": round(accuracy(model, n, seed, "flip"), 4)}


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


def with_overrides(recipe: Recipe, **changes) -> Recipe:
    return replace(recipe, **{k: v for k, v in changes.items() if v is not None})
