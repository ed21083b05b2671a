"""torchvision ImageNet classifiers. Categories and preprocessing come from torchvision's weights
metadata (no download); weights through torchvision's cache (``$TORCH_HOME/hub/checkpoints``) and
download URL, loaded with ``weights_only=True``."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torchvision
from torch import nn

from .preprocess import Preprocess
from .registry import ModelSpec, register

# architecture -> (title, default layer: the last spatial feature map, as explainers.default_layer finds it)
ARCHITECTURES = {
    "resnet18": ("ResNet-18", "layer4"),
    "resnet50": ("ResNet-50", "layer4"),
    "vgg16": ("VGG-16", "features.29"),
    "alexnet": ("AlexNet", "features.11"),
    "densenet121": ("DenseNet-121", "features"),
    "googlenet": ("GoogLeNet", "inception5b"),
    "mobilenet_v3_large": ("MobileNetV3-Large", "features"),
    "efficientnet_b0": ("EfficientNet-B0", "features"),
    "convnext_tiny": ("ConvNeXt-Tiny", "features"),
    # transformers: the first LayerNorm of the last block, as pytorch-grad-cam's documentation
    # recommends (explainers.default_layer gives the reason); tokens and Swin's channels-last
    # grid are read as maps by explainers.layouts
    "vit_b_16": ("ViT-B/16", "encoder.layers.encoder_layer_11.ln_1"),
    "swin_t": ("Swin-T", "features.7.1.norm1"),
}


def _build(arch: str, num_classes: int) -> nn.Module:
    if arch == "googlenet":  # as torchvision builds it for its ImageNet weights
        return torchvision.models.googlenet(weights=None, num_classes=num_classes, aux_logits=True,
                                            transform_input=True, init_weights=False)
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)


def _drop_googlenet_aux(model: nn.Module, state: dict) -> None:
    """torchvision's GoogLeNet checkpoints carry auxiliary heads that eval mode never uses."""
    for key in [k for k in state if k.startswith(("aux1.", "aux2."))]:
        del state[key]
    model.aux_logits = False
    model.aux1 = None
    model.aux2 = None


def _checkpoint_path(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _register(arch: str, title: str, layer: str) -> None:
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    t = weights.transforms()
    register(ModelSpec(
        id=arch,
        title=title,
        family="imagenet",
        build=partial(_build, arch),
        categories=tuple(weights.meta["categories"]),
        preprocess=Preprocess(resize=int(t.resize_size[0]), crop=int(t.crop_size[0]),
                              mean=tuple(t.mean), std=tuple(t.std), interpolation=t.interpolation.value),
        default_layer=layer,
        weights_file=partial(_checkpoint_path, weights.url),
        weights_url=weights.url,
        prepare=_drop_googlenet_aux if arch == "googlenet" else None,
        weights_mb=weights.meta.get("_file_size"),
        description=f"{title}, torchvision {weights}: ImageNet top-1 "
                    f"{weights.meta['_metrics']['ImageNet-1K']['acc@1']:.1f}%",
    ))


for _arch, (_title, _layer) in ARCHITECTURES.items():
    _register(_arch, _title, _layer)
