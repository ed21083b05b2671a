"""The shapes world: synthetic scenes with ground truth and the small CNNs that ship with the
project (the offline default, the teaching world, the trust-study pairs, the bias demo)."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from ..preprocess import Preprocess
from ..registry import ModelSpec, register
from .recipes import MEAN, RECIPES, STD, build
from .world import CLASSES, SIZE, Scene, make_scene

__all__ = ["WEIGHTS_DIR", "card", "gallery", "CLASSES", "make_scene", "Scene"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_LAYERS = {"resnet": "layer3", "fc": "layer3"}


def card(model_id: str) -> dict:
    """The model card shipped beside the weights (held-out accuracy, config, sha256, ...)."""
    path = WEIGHTS_DIR / f"{model_id}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no model card for {model_id!r} at {path}")
    return json.loads(path.read_text())


def _weights_path(model_id: str) -> Path:
    return WEIGHTS_DIR / f"{model_id}.pt"


def gallery() -> list[tuple[str, Scene]]:
    """Sample scenes the dashboard can offer without uploads: one of each class, two-object
    scenes, and scenes with a matching and a misleading corner mark."""
    items = [(f"{name}", make_scene(2024, i, "single", label=i)) for i, name in enumerate(CLASSES)]
    for i in range(4):
        s = make_scene(2024, i, "pair")
        items.append((f"pair: {s.objects[0].name} + {s.objects[1].name}", s))
    for i in range(2):
        s = make_scene(2024, 100 + i, "single", "match")
        items.append((f"{s.objects[0].name}, matching corner mark", s))
        f = make_scene(2024, 200 + i, "single", "flip")
        items.append((f"{f.objects[0].name}, misleading corner mark ({CLASSES[f.cue.label]})", f))
    return items


def _build_multimodal(recipe, num_classes: int):
    from .multimodal import build_multimodal
    return build_multimodal(recipe)


for _recipe in RECIPES.values():
    register(ModelSpec(
        id=_recipe.id,
        title=_recipe.title,
        family="shapes",
        build=partial(build, _recipe),
        categories=CLASSES,
        preprocess=Preprocess(resize=SIZE, crop=SIZE, mean=MEAN, std=STD),
        default_layer=DEFAULT_LAYERS[_recipe.arch],
        weights_file=partial(_weights_path, _recipe.id),
        description=_recipe.description,
    ))


from . import language  # noqa: E402  (the language world: captions and questions)
from .multimodal import MULTI_RECIPES  # noqa: E402

for _recipe in MULTI_RECIPES.values():
    register(ModelSpec(
        id=_recipe.id,
        title=_recipe.title,
        family="shapes",
        build=partial(_build_multimodal, _recipe),
        categories=language.WORDS if _recipe.task == "caption" else language.ANSWERS,
        preprocess=Preprocess(resize=SIZE, crop=SIZE, mean=MEAN, std=STD),
        default_layer="layer3",
        weights_file=partial(_weights_path, _recipe.id),
        description=_recipe.description,
        task=_recipe.task,
    ))

from ..agents import register_agent  # noqa: E402  (the navigation agents: model_zoo.agents)
from .navigation import ACTIONS  # noqa: E402
from .nets import AGENT_LAYER, ShapesAgent  # noqa: E402
from .recipes import AGENT_RECIPES  # noqa: E402

for _recipe in AGENT_RECIPES.values():
    register_agent(_recipe.id, partial(ShapesAgent, len(ACTIONS)), actions=ACTIONS, observation_shape=(3, SIZE, SIZE),
                   weights=_weights_path(_recipe.id), default_layer=AGENT_LAYER, title=_recipe.title, family="shapes",
                   description=_recipe.description)

from .dense import DETECTOR_LAYER, SEGMENT_CLASSES, SEGMENTER_LAYER, ShapesDetector, ShapesSegmenter  # noqa: E402
from .recipes import DENSE_RECIPES  # noqa: E402

for _recipe in DENSE_RECIPES.values():
    _detector = _recipe.task == "detection"
    register(ModelSpec(
        id=_recipe.id,
        title=_recipe.title,
        family="shapes",
        build=(lambda _n: ShapesDetector()) if _detector else (lambda _n: ShapesSegmenter()),
        categories=CLASSES if _detector else SEGMENT_CLASSES,
        preprocess=Preprocess(resize=SIZE, crop=SIZE, mean=MEAN, std=STD),
        default_layer=DETECTOR_LAYER if _detector else SEGMENTER_LAYER,
        weights_file=partial(_weights_path, _recipe.id),
        description=_recipe.description,
        task=_recipe.task,
    ))

from .clip import CLIP_LAYER, CLIP_RECIPE, SHAPE_PROMPTS, ShapesCLIP  # noqa: E402

register(ModelSpec(
    id=CLIP_RECIPE.id,
    title=CLIP_RECIPE.title,
    family="shapes",
    build=lambda _n: ShapesCLIP(),
    categories=SHAPE_PROMPTS,  # the default zero-shot prompts; a text model scores any phrase
    preprocess=Preprocess(resize=SIZE, crop=SIZE, mean=MEAN, std=STD),
    default_layer=CLIP_LAYER,
    weights_file=partial(_weights_path, CLIP_RECIPE.id),
    description=CLIP_RECIPE.description,
    task="text",
))
