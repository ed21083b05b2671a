"""Layers by dotted name: lookup with helpful errors, discovery of candidate layers, and the
default layer (the last spatial feature map before global pooling, as Grad-CAM uses)."""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from .layouts import layout_of
from .locking import model_lock

__all__ = ["LayerInfo", "resolve_layer", "list_layers", "default_layer"]

_POOLING = (
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d,
    nn.Dropout, nn.Dropout2d, nn.Identity,
)


@dataclass(frozen=True)
class LayerInfo:
    """A module whose output is a spatial map: ``N x C x H x W``, or tokens / a channels-last
    grid that the rule of :mod:`explainers.layouts` reads as one (``layout`` says how)."""

    name: str
    kind: str
    shape: tuple[int, int, int]  # C, H, W of one sample, after the layout rule
    layout: str = "N x C x h x w map"

    def __str__(self):
        c, h, w = self.shape
        how = "" if self.layout == "N x C x h x w map" else f", {self.layout}"
        return f"{self.name} ({self.kind}, {c}x{h}x{w}{how})"


def _summarise(names: list[str], limit: int = 12) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    head = ", ".join(names[: limit - 2])
    return f"{head}, ..., {', '.join(names[-2:])} ({len(names)} in all)"


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted, as in ``named_modules()``), or a ``ValueError``
    that lists the candidates."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"layer must be a dotted module name, got {name!r}")
    modules = dict(model.named_modules())
    if name in modules:
        return modules[name]
    top = [n for n, _ in model.named_children()]
    parent = name.rsplit(".", 1)[0] if "." in name else None
    hint = ""
    if parent in modules:
        children = [f"{parent}.{n}" for n, _ in modules[parent].named_children()]
        hint = f"; children of {parent!r}: {_summarise(children)}"
    raise ValueError(
        f"layer {name!r} not found in {type(model).__name__}; top-level candidates: "
        f"{_summarise(top)}{hint} (see explainers.list_layers(model) for all spatial layers)"
    )


def _trace(model: nn.Module, x: torch.Tensor):
    """One no-grad forward recording, per module, its last output that the layout rule reads as
    a map (4D, or tokens of a square grid); returns (name -> (module, output as N x C x h x w,
    layout)) in completion order."""
    records: dict[str, tuple[nn.Module, torch.Tensor]] = {}
    owner = threading.get_ident()
    handles = []

    def make_hook(name):
        def hook(module, inputs, output):
            if threading.get_ident() != owner:
                return
            if isinstance(output, torch.Tensor) and output.dim() in (3, 4):
                try:
                    layout = layout_of(name, module, output)
                except ValueError:
                    return
                records.pop(name, None)
                records[name] = (module, layout.apply(output), layout)
        return hook

    with model_lock(model):
        try:
            for name, module in model.named_modules():
                if name:
                    handles.append(module.register_forward_hook(make_hook(name)))
            with torch.no_grad():
                model(x)
        finally:
            for h in handles:
                h.remove()
    return records


def _example_input(model: nn.Module, x: torch.Tensor | None) -> torch.Tensor:
    if x is not None:
        return x[:1].detach()
    try:
        p = next(model.parameters())
        device, dtype = p.device, p.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    return torch.zeros(1, 3, 224, 224, device=device, dtype=dtype)


def list_layers(model: nn.Module, x: torch.Tensor | None = None) -> list[LayerInfo]:
    """Every module whose output is a spatial map, in definition order, with its output shape
    for the example input ``x`` (default: one 3x224x224 image). Costs one forward pass."""
    records = _trace(model, _example_input(model, x))
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    return [
        LayerInfo(name, type(module).__name__.lstrip("_"), tuple(out.shape[1:]), layout.describe())
        for name, (module, out, layout) in sorted(records.items(), key=lambda kv: order[kv[0]])
    ]


_DEFAULTS: "weakref.WeakKeyDictionary[nn.Module, str]" = weakref.WeakKeyDictionary()
_DEFAULTS_LOCK = threading.Lock()


def _transformer_default(model: nn.Module) -> str | None:
    """Transformers: the first LayerNorm of the last block (a module with two or more LayerNorm
    children: ViT's encoder block, Swin's block, timm's Block). This is the layer pytorch-grad-cam's
    documentation recommends (``model.blocks[-1].norm1`` for ViT,
    ``model.layers[-1].blocks[-1].norm1`` for Swin), for the reason it gives: a ViT classifies
    from the class token alone, so the gradient of the score at the last block's output is zero
    at every patch token; before the last attention, the patches still feed the class token."""
    blocks = [(name, m) for name, m in model.named_modules()
              if sum(isinstance(c, nn.LayerNorm) for c in m.children()) >= 2]
    if not blocks:
        return None
    name, block = blocks[-1]
    first = next(n for n, c in block.named_children() if isinstance(c, nn.LayerNorm))
    return f"{name}.{first}" if name else first


def default_layer(model: nn.Module, x: torch.Tensor | None = None) -> str:
    """The last spatial feature map before global pooling: walking back from the last module
    to finish, skip outputs of 1x1 size and pooling/dropout layers (and containers that merely
    return such an output); the first remaining module is the default. ResNet: ``layer4``;
    VGG-16: ``features.29`` (conv5_3 after ReLU, 14x14, as in the paper); DenseNet: ``features``.
    Transformers (see :func:`_transformer_default`): ViT-B/16
    ``encoder.layers.encoder_layer_11.ln_1``, Swin-T ``features.7.1.norm1``.
    Cached per model object after the first call (one forward pass)."""
    with _DEFAULTS_LOCK:
        if model in _DEFAULTS:
            return _DEFAULTS[model]
    records = _trace(model, _example_input(model, x))
    pooled = {id(out) for module, out, _ in records.values() if isinstance(module, _POOLING)}
    choice = _transformer_default(model)
    if choice is not None and choice not in records:
        choice = None
    for name, (module, out, _) in reversed(list(records.items()) if choice is None else []):
        if out.shape[-2] * out.shape[-1] > 1 and id(out) not in pooled:
            choice = name
            break
    if choice is None:
        raise ValueError(
            f"{type(model).__name__} has no module with a spatial N x C x H x W output; "
            "Grad-CAM needs a convolutional layer: pass layer=... explicitly"
        )
    with _DEFAULTS_LOCK:
        _DEFAULTS[model] = choice
    return choice
