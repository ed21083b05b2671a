"""The one model registry. The UI, the CLI and the tests all read it.

An entry knows how to build its network, its categories, its preprocessing, its default layer
and where its weights come from. ``load(id)`` gives an eval-mode model with those facts attached;
missing weights are an error that says how to get them, never a silently random model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .preprocess import Preprocess
from .weights import WeightsError, WeightsUnavailable, ZooError, load_state_dict_checked, read_state_dict

__all__ = ["ModelSpec", "LoadedModel", "register", "list_models", "get_spec", "load",
           "weights_available", "UNTRAINED"]

UNTRAINED = "untrained"


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry.

    ``build(num_classes)`` returns a freshly initialised network; ``weights_file()`` is where the
    entry's own weights live on this machine; ``weights_url``, if set, is where they can be
    downloaded from (into ``weights_file()``). ``prepare(model, state)`` may adapt a freshly
    built model to a state dict before loading (GoogLeNet's auxiliary heads)."""

    id: str
    title: str
    family: str
    build: Callable[[int], nn.Module]
    categories: tuple[str, ...]
    preprocess: Preprocess
    default_layer: str
    weights_file: Callable[[], Path]
    weights_url: str | None = None
    prepare: Callable[[nn.Module, dict], None] | None = None
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.categories)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """An eval-mode model with what the rest of the project needs to use it."""

    id: str
    model: nn.Module
    preprocess: Preprocess
    categories: tuple[str, ...]
    default_layer: str
    weights: str  # where the weights came from, in words
    sha256: str | None = None
    spec: ModelSpec | None = field(default=None, repr=False)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.id in _REGISTRY:
        raise ValueError(f"model id {spec.id!r} is already registered")
    _REGISTRY[spec.id] = spec
    return spec


def _populate() -> None:
    """Import the entry modules (each registers its entries once, on first import). Listing
    follows import order: the shapes world, the offline default, first."""
    from . import shapes  # noqa: F401
    from . import imagenet  # noqa: F401


def list_models(family: str | None = None) -> list[str]:
    """Registered model ids, optionally of one family (``"imagenet"``, ``"shapes"``)."""
    _populate()
    return [k for k, s in _REGISTRY.items() if family is None or s.family == family]


def get_spec(model_id: str) -> ModelSpec:
    _populate()
    try:
        return _REGISTRY[model_id]
    except KeyError:
        raise ZooError(f"unknown model {model_id!r}; registered: {', '.join(_REGISTRY)}") from None


def weights_available(model_id: str) -> bool:
    """True when the entry's own weights are on this machine (no download attempted)."""
    return get_spec(model_id).weights_file().is_file()


def _fetch(spec: ModelSpec, path: Path) -> None:
    """Download ``spec.weights_url`` to ``path`` through torch.hub's downloader (the path
    torchvision itself uses), checking the hash prefix in the file name."""
    if spec.weights_url is None:
        raise WeightsUnavailable(f"weights for {spec.id!r} are missing: expected {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = Path(spec.weights_url).stem
    prefix = stem.rsplit("-", 1)[-1] if "-" in stem else None
    try:
        torch.hub.download_url_to_file(spec.weights_url, str(path), hash_prefix=prefix, progress=False)
    except Exception as err:
        raise WeightsUnavailable(
            f"ImageNet weights for {spec.id!r} are not on this machine and could not be "
            f"downloaded ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}). "
            f"Download {spec.weights_url} and save it as {path} "
            f"(or set TORCH_HOME), or pass weights=PATH to a local copy"
        ) from None


def _num_classes_in(spec: ModelSpec, state: dict) -> int | None:
    """The number of classes a checkpoint was trained for, read from its last Linear layer."""
    with torch.device("meta"):  # structure only: no memory, no initialisation cost
        probe = spec.build(spec.num_classes)
    linears = [name for name, m in probe.named_modules() if isinstance(m, nn.Linear)]
    if linears and f"{linears[-1]}.weight" in state:
        return int(state[f"{linears[-1]}.weight"].shape[0])
    return None


def load(model_id: str, weights: str | os.PathLike | None = None, *,
         categories: list[str] | None = None, download: bool = True) -> LoadedModel:
    """Build a registered model in eval mode with weights.

    ``weights``: None for the entry's own (ImageNet through torchvision's cache/download path,
    or the weights that ship with the project); a path to a user checkpoint for this
    architecture (its class count is read from the checkpoint; pass ``categories`` to name
    them); or ``"untrained"`` for a randomly initialised network, named as such."""
    spec = get_spec(model_id)
    cats = tuple(categories) if categories is not None else spec.categories
    sha = None
    if isinstance(weights, str) and weights == UNTRAINED:
        model = spec.build(len(cats))
        if spec.prepare is not None:
            spec.prepare(model, {})
        source = "untrained (random initialisation)"
    else:
        if weights is None:
            path = spec.weights_file()
            if not path.is_file():
                if not download:
                    raise WeightsUnavailable(
                        f"weights for {model_id!r} are not on this machine; expected {path}"
                        + (f" (from {spec.weights_url})" if spec.weights_url else ""))
                _fetch(spec, path)
            source = f"{spec.family} weights ({path.name})"
        else:
            path = Path(weights)
            source = f"checkpoint {path.name}"
        state, sha = read_state_dict(path)
        if weights is not None and categories is None:
            n = _num_classes_in(spec, state)
            if n is not None and n != len(cats):
                cats = tuple(f"class {i}" for i in range(n))
        model = spec.build(len(cats))
        if spec.prepare is not None:
            spec.prepare(model, state)
        load_state_dict_checked(model, state, f"weights file {path.name}", spec.id)
    model.eval()
    return LoadedModel(id=model_id, model=model, preprocess=spec.preprocess, categories=cats,
                       default_layer=spec.default_layer, weights=source, sha256=sha, spec=spec)


__all__ += ["ZooError", "WeightsError", "WeightsUnavailable"]
