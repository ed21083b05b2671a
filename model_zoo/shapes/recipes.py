"""The shapes-world classifiers' recipes: architecture, data and schedule of each shipped model,
its input normalisation, and the held-out accuracy its card reports (``accuracy``). The training
loop that fits a recipe is a front end of its own (``training.shapes``)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .nets import ARCHITECTURES
from .world import CLASSES, make_scene

__all__ = ["Recipe", "RECIPES", "AgentRecipe", "AGENT_RECIPES", "DenseRecipe", "DENSE_RECIPES", "build", "scenes_to_tensor", "accuracy", "cue_ablation", "MEAN", "STD",
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


@dataclass(frozen=True)
class AgentRecipe:
    """A navigation agent's recipe (``training.agents`` trains it; its docstring has the two stages)."""
    id: str
    title: str
    cue: str  # the training episodes' colours (model_zoo.shapes.navigation.CUES)
    episodes: int = 6000  # training layouts for the imitation stage
    states_per_episode: int = 6  # agent cells drawn on each
    epochs: int = 6
    ppo_steps: int = 16_384
    seed: int = 0
    lr: float = 2e-3
    ppo_lr: float = 5e-5
    batch: int = 128
    description: str = ""


AGENT_RECIPES = {r.id: r for r in (
    AgentRecipe("shapes-agent", "Shapes navigation agent", "none",
                description="walks to the circle round the other shapes, whatever their colours"),
    AgentRecipe("shapes-agent-shortcut", "Shapes shortcut agent", "goal-red",
                description="trained where the goal was always red: a colour shortcut, shown by the 'lying' cue"),
)}


def build(recipe: Recipe, num_classes: int = len(CLASSES)) -> nn.Module:
    return ARCHITECTURES[recipe.arch](num_classes=num_classes, width=recipe.width)


def scenes_to_tensor(scenes) -> torch.Tensor:
    """Scenes -> normalised N x 3 x H x W float tensor (what the models were trained on)."""
    return _normalise(torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2))


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


def with_overrides(recipe: Recipe, **changes) -> Recipe:
    return replace(recipe, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class DenseRecipe:
    """A detector's or segmenter's recipe (``training.dense`` trains it on multi-object scenes)."""
    id: str
    title: str
    task: str  # "detection" or "segmentation"
    scenes: int = 8000
    epochs: int = 12
    seed: int = 0
    lr: float = 2e-3
    batch: int = 64
    description: str = ""


DENSE_RECIPES = {r.id: r for r in (
    DenseRecipe("shapes-detector", "Shapes detector (CenterNet-style)", "detection", epochs=10,
                description="boxes and classes of one to four shapes: a single-stage, anchor-free detector"),
    DenseRecipe("shapes-segmenter", "Shapes segmenter (small U-Net)", "segmentation", scenes=8000, epochs=10,
                description="a label per pixel: background or one of the eight shapes"),
)}
