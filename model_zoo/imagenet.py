"""torchvision ImageNet classifiers. Categories and preprocessing come from torchvision's weights
metadata (no download), kept in ``imagenet_weights.json`` beside this file so that listing the
models does not import torchvision (its import, which pulls in ``torch._dynamo``, took 1.1 s of
the dashboard's 4.8 s cold start; ``python -m model_zoo.imagenet`` writes the file again from the
installed torchvision, and a test checks it against it). Weights through torchvision's cache
(``$TORCH_HOME/hub/checkpoints``) and download URL, loaded with ``weights_only=True``; torchvision
is imported when a network is built."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from torch import nn

from .preprocess import Preprocess
from .registry import ModelSpec, register

METADATA = Path(__file__).with_name("imagenet_weights.json")

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
    import torchvision

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


def metadata_from_torchvision() -> dict:
    """What the registry needs of each architecture's default torchvision weights (the contents
    of ``imagenet_weights.json``)."""
    import torchvision

    out = {"torchvision": torchvision.__version__.split("+")[0], "categories": None, "weights": {}}
    for arch in ARCHITECTURES:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        t = weights.transforms()
        categories = list(weights.meta["categories"])
        if out["categories"] is None:
            out["categories"] = categories
        elif categories != out["categories"]:
            raise ValueError(f"{arch}'s weights name other categories than the rest")
        out["weights"][arch] = {
            "name": str(weights), "url": weights.url, "resize": int(t.resize_size[0]), "crop": int(t.crop_size[0]),
            "mean": list(t.mean), "std": list(t.std), "interpolation": t.interpolation.value,
            "file_mb": weights.meta.get("_file_size"), "acc1": weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]}
    return out


def _register(arch: str, title: str, layer: str, meta: dict, categories: tuple[str, ...]) -> None:
    w = meta["weights"][arch]
    register(ModelSpec(
        id=arch,
        title=title,
        family="imagenet",
        build=partial(_build, arch),
        categories=categories,
        preprocess=Preprocess(resize=w["resize"], crop=w["crop"], mean=tuple(w["mean"]), std=tuple(w["std"]),
                              interpolation=w["interpolation"]),
        default_layer=layer,
        weights_file=partial(_checkpoint_path, w["url"]),
        weights_url=w["url"],
        prepare=_drop_googlenet_aux if arch == "googlenet" else None,
        weights_mb=w["file_mb"],
        description=f"{title}, torchvision {w['name']}: ImageNet top-1 {w['acc1']:.1f}%",
    ))


def _metadata() -> dict:
    # without the file (a checkout that lost it), from torchvision itself: slower, the same entries
    return json.loads(METADATA.read_text()) if METADATA.is_file() else metadata_from_torchvision()


_META = _metadata()
CATEGORIES: tuple[str, ...] = tuple(_META["categories"])  # ImageNet-1k's names, as torchvision gives them

for _arch, (_title, _layer) in ARCHITECTURES.items():
    _register(_arch, _title, _layer, _META, CATEGORIES)


if __name__ == "__main__":  # write imagenet_weights.json again from the installed torchvision (silently)
    METADATA.write_text(json.dumps(metadata_from_torchvision(), indent=1) + "\n")
