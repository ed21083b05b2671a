"""torchvision's detectors and segmenters, for users with weights (the weights download and cache
that the classifiers have: ``$TORCH_HOME/hub/checkpoints``, loaded with ``weights_only=True``).

Their metadata (categories, URLs, sizes, COCO figures) is kept in ``dense_weights.json`` beside
this file, so listing the models does not import torchvision; ``python -m model_zoo.tv_dense``
writes it again from the installed torchvision and a test checks it.

How they fit the studio's contracts:

* A detector is built with its transform's ``min_size`` and ``max_size`` set to the view's size
  (the ``Preprocess`` crop, a multiple of 32), so it neither rescales nor pads the view: its
  feature maps cover exactly the picture under the maps. Its input is the view in 0..1 (it
  normalises inside, as torchvision's detectors do); its output is torchvision's list of dicts,
  which ``explainers.DetectionScore`` reads.
* A segmenter is wrapped to return its ``out`` tensor (``[N, classes, H, W]``), which
  ``explainers.SegmentationRegion`` reads; the auxiliary head of the checkpoints is dropped (eval
  mode never uses it).
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from torch import nn

from .preprocess import Preprocess
from .registry import ModelSpec, register

METADATA = Path(__file__).with_name("dense_weights.json")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# architecture -> (title, task, view size, default layer: the backbone's last feature map)
ARCHITECTURES = {
    "fasterrcnn_mobilenet_v3_large_fpn": ("Faster R-CNN, MobileNetV3-Large FPN", "detection", 512,
                                          "backbone.body.16"),
    "retinanet_resnet50_fpn_v2": ("RetinaNet, ResNet-50 FPN v2", "detection", 512, "backbone.body.layer4"),
    "fcos_resnet50_fpn": ("FCOS, ResNet-50 FPN", "detection", 512, "backbone.body.layer4"),
    "ssdlite320_mobilenet_v3_large": ("SSDlite320, MobileNetV3-Large", "detection", 320, "backbone.features.0"),
    "deeplabv3_mobilenet_v3_large": ("DeepLabV3, MobileNetV3-Large", "segmentation", 512, "net.backbone.16"),
    "lraspp_mobilenet_v3_large": ("LR-ASPP, MobileNetV3-Large", "segmentation", 512, "net.backbone.16"),
}


class SegmentationOutput(nn.Module):
    """A torchvision segmenter that returns its ``out`` logits, ``[N, classes, H, W]``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


def _build(arch: str, size: int, num_classes: int) -> nn.Module:
    import torchvision

    task = ARCHITECTURES[arch][1]
    if task == "detection":
        extra = {} if arch.startswith("ssdlite") else {"min_size": size, "max_size": size}
        return torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=num_classes,
                                            **extra)
    return SegmentationOutput(torchvision.models.get_model(arch, weights=None, weights_backbone=None,
                                                           num_classes=num_classes, aux_loss=False))


def _segmenter_state(model: nn.Module, state: dict) -> None:
    """The checkpoints' keys under the wrapper's ``net.``, their auxiliary head left out."""
    for key in list(state):
        value = state.pop(key)
        if not key.startswith("aux_classifier."):
            state[f"net.{key}"] = value


def _checkpoint_path(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def metadata_from_torchvision() -> dict:
    import torchvision

    out = {"torchvision": torchvision.__version__.split("+")[0], "weights": {}}
    for arch in ARCHITECTURES:
        w = torchvision.models.get_model_weights(arch).DEFAULT
        (dataset, figures), = w.meta["_metrics"].items()
        out["weights"][arch] = {"name": str(w), "url": w.url, "file_mb": w.meta.get("_file_size"),
                                "categories": list(w.meta["categories"]), "metrics": {dataset: figures}}
    return out


def _metadata() -> dict:
    return json.loads(METADATA.read_text()) if METADATA.is_file() else metadata_from_torchvision()


def _register(arch: str, meta: dict) -> None:
    title, task, size, layer = ARCHITECTURES[arch]
    w = meta["weights"][arch]
    (dataset, figures), = w["metrics"].items()
    figure = ", ".join(f"{k} {v}" for k, v in figures.items())
    detector = task == "detection"
    register(ModelSpec(
        id=arch, title=title, family="torchvision-" + task, build=partial(_build, arch, size),
        categories=tuple(w["categories"]),
        preprocess=Preprocess(resize=size, crop=size, mean=(0.0, 0.0, 0.0) if detector else IMAGENET_MEAN,
                              std=(1.0, 1.0, 1.0) if detector else IMAGENET_STD),
        default_layer=layer, weights_file=partial(_checkpoint_path, w["url"]), weights_url=w["url"],
        prepare=None if detector else _segmenter_state, weights_mb=w["file_mb"], task=task,
        description=f"{title}, torchvision {w['name']}: {dataset} {figure}"))


_META = _metadata()
for _arch in ARCHITECTURES:
    _register(_arch, _META)


if __name__ == "__main__":  # write dense_weights.json again from the installed torchvision (silently)
    METADATA.write_text(json.dumps(metadata_from_torchvision(), indent=1) + "\n")
