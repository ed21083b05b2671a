"""The one model registry. The UI, the CLI and the tests all read it.

An entry knows how to build its network, its categories, its preprocessing, its default layer
and where its weights come from. ``load(id)`` gives an eval-mode model with those facts attached;
missing weights are an error that says how to get them, never a silently random model.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .fetch import download, download_url, size_bound
from .preprocess import Preprocess
from .weights import (WeightsError, WeightsUnavailable, ZooError, first_line, load_state_dict_checked, models_dir,
                      read_state_dict, sha256_of)

__all__ = ["ModelSpec", "LoadedModel", "register", "register_model", "list_models", "get_spec", "load",
           "weights_available", "load_plugins", "plugin_errors", "refresh", "UNTRAINED", "ENTRY_POINT_GROUP",
           "add_resolver", "add_refresher", "specs", "fixed_path", "num_classes_in", "fetch_weights"]

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
    default_layer: str | None  # None: found from the model when first explained
    weights_file: Callable[[], Path]
    weights_url: str | None = None
    prepare: Callable[[nn.Module, dict], None] | None = None
    description: str = ""
    weights_mb: float | None = None  # the download's size, when known (torchvision's metadata)
    untrained: bool = False  # a plugin that declares its model has no trained weights (named so)
    pretrained: Callable[[], nn.Module] | None = None  # builds the model with its own weights (timm)
    # what the model's output means: "classification" (class logits, the explaining pages), "caption"
    # (next-word logits for the tokens it is given), "vqa" (answer logits for a question it is given),
    # "agent" (a policy: the action logits, then the value; categories name the actions), "text" (an
    # image-text model: similarities to the phrases it is given, model.tokenize packs them)
    task: str = "classification"
    # task "agent": the frame the policy takes, channels first (model_zoo.agents); else None
    observation_shape: tuple[int, ...] | None = None
    # None: every session sees the entry; else the one app session that uploaded it (its token):
    # list_models(viewer=...) shows it to that session alone (model_zoo.uploads)
    owner: str | None = None

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
    default_layer: str | None  # None: found from the model (explainers.default_layer)
    weights: str  # where the weights came from, in words
    sha256: str | None = None
    spec: ModelSpec | None = field(default=None, repr=False)


_REGISTRY: dict[str, ModelSpec] = {}
# The registry imports none of its entries: the modules that own them register them (the package
# model_zoo imports its own on first import), and these two hooks let an owner add entries lazily.
_RESOLVERS: dict[str, Callable[[str], ModelSpec]] = {}  # id prefix -> the entry of such an id (timm:)
_REFRESHERS: list[Callable[[], None]] = []  # run by refresh(), after the plugins (saved uploads)
_PLUGINS_LOADED: set[str] = set()
_PLUGIN_ERRORS: dict[str, str] = {}
ENTRY_POINT_GROUP = "gradcam_studio.models"


def _callable_key(fn):
    """What a builder is, comparable across re-imports of its module (a new function object or
    partial each time): module, qualified name, and a partial's arguments."""
    if isinstance(fn, partial):
        return ("partial", _callable_key(fn.func), tuple(_callable_key(a) if callable(a) else a for a in fn.args),
                tuple(sorted((k, _callable_key(v) if callable(v) else v) for k, v in fn.keywords.items())))
    if callable(fn):
        return (getattr(fn, "__module__", None), getattr(fn, "__qualname__", repr(fn)))
    return fn


def _fingerprint(spec: "ModelSpec") -> tuple:
    return tuple(_callable_key(v) if callable(v) else v for v in
                 (spec.id, spec.title, spec.family, spec.build, spec.categories, spec.preprocess,
                  spec.default_layer, spec.weights_file, spec.weights_url, spec.prepare, spec.description,
                  spec.owner))


def register(spec: "ModelSpec") -> "ModelSpec":
    """Add an entry. Registering the same entry again (a module imported twice) is a no-op that
    returns the entry already there; a different entry under a taken id is an error."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"register() takes a ModelSpec, not {type(spec).__name__}")
    known = _REGISTRY.get(spec.id)
    if known is not None:
        if _fingerprint(known) == _fingerprint(spec):
            return known
        raise ValueError(f"model id {spec.id!r} is already registered (by {_callable_key(known.build)[0]}) "
                         "with other settings; choose another id")
    _REGISTRY[spec.id] = spec
    return spec


def fixed_path(path: Path) -> Path:
    """``weights_file`` of an entry whose weights lie at one path: ``partial(fixed_path, PATH)``."""
    return path


def add_resolver(prefix: str, resolve: Callable[[str], ModelSpec]) -> None:
    """Entries made on first use: ``get_spec(id)`` of an unregistered id starting with ``prefix``
    registers ``resolve(id)`` (a ``ZooError`` from it says why there is no such model)."""
    _RESOLVERS[prefix] = resolve


def add_refresher(fn: Callable[[], None]) -> None:
    """``fn()`` runs at each :func:`refresh`, after the plugins are imported (once per function)."""
    if fn not in _REFRESHERS:
        _REFRESHERS.append(fn)


def specs(family: str | None = None) -> list[ModelSpec]:
    """Every entry (of one family), whichever session owns it: for quotas and admin views."""
    _populate()
    return [s for s in _REGISTRY.values() if family is None or s.family == family]


def register_model(id: str, build=None, *, categories, preprocess: "Preprocess | None" = None,
                   default_layer: str | None = None, weights=None, weights_url: str | None = None,
                   title: str | None = None, family: str = "plugin", description: str = ""):
    """Register a model of your own (the plugin API). ``build(num_classes)`` returns the network;
    ``categories`` names its classes; ``preprocess`` defaults to ImageNet's (resize 256, crop
    224); ``default_layer`` None: the last spatial feature map, found when first explained;
    ``weights``: the path of its state dict (None: no weights file of its own; ``load(id,
    weights=PATH)`` gives one; ``"untrained"``: a random initialisation, named as such wherever
    the model is shown). Call it directly, or use it as a decorator on the builder:
    ``@register_model("my-net", categories=[...], weights="my-net.pt")``."""
    def do(fn):
        untrained = isinstance(weights, str) and weights == UNTRAINED
        path = Path(weights).expanduser().resolve() if weights is not None and not untrained \
            else Path(f"<no weights file for {id}>")
        register(ModelSpec(
            id=id, title=title or id, family=family, build=fn, categories=tuple(categories),
            preprocess=preprocess or Preprocess(resize=256, crop=224), default_layer=default_layer,
            weights_file=partial(fixed_path, path), weights_url=weights_url, description=description,
            untrained=untrained))
        return fn
    return do if build is None else do(build)


def _import_plugin(name: str) -> None:
    """Import a plugin by file path or dotted module name (once)."""
    if name in _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED.add(name)
    try:
        if name.endswith(".py") or "/" in name or os.sep in name:
            path = Path(name).expanduser().resolve()
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path}")
            module_name = f"gradcam_studio_plugin_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise
        else:
            importlib.import_module(name)
    except (Exception, SystemExit, KeyboardInterrupt) as err:  # a message, never a crash of the app or the CLI
        _PLUGIN_ERRORS[name] = _why(err)


def _why(err: BaseException) -> str:
    """A plugin's failure in one line; ``sys.exit()`` and an interrupt named as such."""
    if isinstance(err, SystemExit):
        return f"it called sys.exit({err.code!r}) while being imported"
    if isinstance(err, KeyboardInterrupt):
        return "it raised KeyboardInterrupt while being imported"
    return first_line(err)


def load_plugins() -> None:
    """Import the plugins named in ``STUDIO_MODELS`` (file paths or dotted module names,
    separated by commas) and the entry points of installed packages in the group
    ``gradcam_studio.models`` (a module, or a callable that registers). Import errors are kept
    (:func:`plugin_errors`), not raised."""
    for name in _configured():
        _import_plugin(name)
    try:
        points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # a broken installed distribution's metadata
        points = []
    for point in points:
        key = f"entry point {point.name} ({point.value})"
        if key in _PLUGINS_LOADED:
            continue
        _PLUGINS_LOADED.add(key)
        try:
            target = point.load()
            if callable(target) and not isinstance(target, type(sys)):
                target()
        except (Exception, SystemExit, KeyboardInterrupt) as err:
            _PLUGIN_ERRORS[key] = _why(err)


def _configured() -> list[str]:
    return [n.strip() for n in os.environ.get("STUDIO_MODELS", "").split(",") if n.strip()]


def plugin_errors() -> dict[str, str]:
    """Plugin -> why it could not be imported, for the plugins configured now (``STUDIO_MODELS``
    and entry points); empty when every one loaded."""
    _populate()
    load_plugins()
    named = set(_configured())
    return {k: v for k, v in _PLUGIN_ERRORS.items() if k in named or k.startswith("entry point ")}


_REFRESH = {"done": False, "busy": False}


def refresh() -> None:
    """Import the plugins of ``STUDIO_MODELS`` and the entry points, then register the
    checkpoints saved from the app (each once; call again after either changes): plugins first,
    so that a saved checkpoint of a plugin's architecture finds it after a restart. Listing
    order: the shapes world (the offline default) first, then ImageNet, plugins, uploads."""
    if _REFRESH["busy"]:  # an upload's or a plugin's own registry calls while refreshing
        return
    _REFRESH["busy"] = True
    try:
        load_plugins()
        for fn in list(_REFRESHERS):
            fn()
        _REFRESH["done"] = True
    finally:
        _REFRESH["busy"] = False


def _populate() -> None:
    if not _REFRESH["done"]:
        refresh()


def list_models(family: str | None = None, viewer: str | None = None) -> list[str]:
    """Registered model ids, optionally of one family (``"imagenet"``, ``"shapes"``). A model
    uploaded in one app session (its ``owner``) is listed only for ``viewer`` = that session."""
    _populate()
    listed = [k for k, s in _REGISTRY.items()
              if (family is None or s.family == family) and (s.owner is None or s.owner == viewer)]
    # the shapes world (the offline default) first, whichever module was imported first
    return sorted(listed, key=lambda k: _REGISTRY[k].family != "shapes")


def get_spec(model_id: str) -> ModelSpec:
    """The entry of ``model_id``; a ``timm:<name>`` id is registered on first use (timm is an
    optional package)."""
    _populate()
    if model_id not in _REGISTRY and isinstance(model_id, str):
        for prefix, resolve in _RESOLVERS.items():
            if model_id.startswith(prefix):
                return register(resolve(model_id))
    try:
        return _REGISTRY[model_id]
    except KeyError:
        shared = ", ".join(k for k, s in _REGISTRY.items() if s.owner is None)  # no session's uploads
        raise ZooError(f"unknown model {model_id!r}; registered: {shared}") from None


def notes_path(model_id: str, what: str) -> Path:
    """Where a file of results about a model (``what``: "dissection-layer3") is kept:
    ``STUDIO_NOTES_DIR`` when set, else ``STUDIO_MODELS_DIR``/notes (``data/models/notes``). Never
    beside the weights: the shipped weights' folder is part of the source tree."""
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in f"{model_id}.{what}")
    get_spec(model_id)  # an unknown model is named as such
    folder = os.environ.get("STUDIO_NOTES_DIR")
    if folder:
        return Path(folder) / f"{safe}.json"
    return models_dir() / "notes" / f"{safe}.json"


def weights_available(model_id: str) -> bool:
    """True when the entry's own weights are on this machine (no download attempted; for timm,
    in timm's cache), or the entry declares itself untrained."""
    spec = get_spec(model_id)
    return spec.untrained or spec.weights_file().is_file()


def _fetch(spec: ModelSpec, path: Path) -> None:
    """Download ``spec.weights_url`` to ``path`` (model_zoo.fetch: temporary file, hash prefix
    checked, renamed only when complete, bounded by a deadline and the entry's known size)."""
    if spec.weights_url is None:
        raise WeightsUnavailable(f"weights for {spec.id!r} are missing: expected {path}")
    download(download_url(spec.weights_url), path, max_bytes=size_bound(spec.weights_mb))


def num_classes_in(spec: ModelSpec, state: dict) -> int | None:
    """The number of classes a checkpoint was trained for, read from its last Linear layer (None
    for an image-text model: it scores phrases, not classes)."""
    if spec.task == "text":
        return None
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
    if (isinstance(weights, str) and weights == UNTRAINED) or (weights is None and spec.untrained):
        model = spec.build(len(cats))
        if spec.prepare is not None:
            spec.prepare(model, {})
        source = "untrained (random initialisation)"
    elif weights is None and spec.pretrained is not None:  # timm: its own download and cache
        cached = spec.weights_file()
        if not cached.is_file() and not download:
            raise WeightsUnavailable(f"the pretrained weights of {model_id!r} are not in timm's cache yet; "
                                     "download them (the app's button, the CLI's --download) or pass weights=PATH")
        try:
            model = spec.pretrained()
        except Exception as err:
            raise WeightsUnavailable(f"timm could not provide the pretrained weights of {model_id!r} "
                                     f"({first_line(err, 150)}); "
                                     "offline? pass weights=PATH to a local state dict") from None
        cached = spec.weights_file()
        sha = sha256_of(cached) if cached.is_file() else None
        source = f"{spec.family} pretrained weights ({cached.name})"
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
            n = num_classes_in(spec, state)
            if n is not None and n != len(cats):
                cats = tuple(f"class {i}" for i in range(n))
        model = spec.build(len(cats))
        if spec.prepare is not None:
            spec.prepare(model, state)
        load_state_dict_checked(model, state, f"weights file {path.name}", spec.id)
    model.eval()
    return LoadedModel(id=model_id, model=model, preprocess=spec.preprocess, categories=cats,
                       default_layer=spec.default_layer, weights=source, sha256=sha, spec=spec)


def fetch_weights(model_id: str, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """The registered model's own weights file, downloaded when missing (through
    ``STUDIO_WEIGHTS_BASE_URL`` when set); returns its path."""
    spec = get_spec(model_id)
    path = spec.weights_file()
    if path.is_file():
        return path
    if spec.pretrained is not None:  # timm downloads into its own cache (its own progress, not ours)
        if progress:
            progress(0, None)
        load(model_id)
        path = spec.weights_file()
        if progress:
            progress(1, 1)
        return path
    if spec.weights_url is None:
        raise WeightsUnavailable(f"weights for {model_id!r} are missing and have no download address: "
                                 f"expected {path}")
    return download(download_url(spec.weights_url), path, progress, max_bytes=size_bound(spec.weights_mb))


__all__ += ["ZooError", "WeightsError", "WeightsUnavailable"]
