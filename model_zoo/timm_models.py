"""timm models as registry entries, on demand: ``timm:<name>`` (``timm:resnet18``,
``timm:convnext_tiny``) when the optional package timm is installed.

The entry is made from timm's own metadata, without building or downloading anything: the
pretrained config gives the input size, crop fraction, mean, std and interpolation (resize =
crop / crop_pct, as timm's eval transform does) and the class count; ImageNet-1k class names
come from ``timm.data.ImageNetInfo``. The default layer is found from the network when it is
first explained. Pretrained weights come through timm's own download and cache
(``timm.create_model(name, pretrained=True)``: the Hugging Face hub cache); a weights file of
your own is ``load("timm:<name>", weights=PATH)``."""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

from torch import nn

from .preprocess import Preprocess
from .registry import ModelSpec, add_resolver
from .weights import ZooError

__all__ = ["PREFIX", "spec_for", "available"]

PREFIX = "timm:"


def available() -> bool:
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


def _build(name: str, num_classes: int) -> nn.Module:
    import timm
    return timm.create_model(name, pretrained=False, num_classes=num_classes)


def _pretrained(name: str) -> nn.Module:
    import timm
    return timm.create_model(name, pretrained=True)


def _cached_file(hub_id: str | None, url: str | None) -> Path:
    """Where timm keeps the pretrained weights once downloaded (the Hugging Face hub cache, or
    torch.hub's checkpoints folder for the older URLs); a placeholder path when not there."""
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
            repo, _, revision = hub_id.partition("@")
            for filename in ("model.safetensors", "pytorch_model.bin"):
                found = try_to_load_from_cache(repo, filename, revision=revision or None)
                if isinstance(found, str):
                    return Path(found)
        except Exception:  # no hub client or an unreadable cache: not cached
            pass
    if url:
        import torch
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if path.is_file():
            return path
    return Path(f"<timm cache: {hub_id or url}>")


def spec_for(model_id: str):
    """The registry entry of ``timm:<name>``."""
    name = model_id[len(PREFIX):]
    try:
        import timm
        from timm.data import ImageNetInfo
    except ImportError:
        raise ZooError(f"{model_id} needs the optional package timm: pip install timm "
                       "(requirements-dev.txt installs it)") from None
    if not name or not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0].split('_')[0]}*")[:6] if name else []
        raise ZooError(f"timm has no model {name!r}" + (f"; close names: {', '.join(close)}" if close else
                                                        "; see timm.list_models()"))
    cfg = timm.get_pretrained_cfg(name)
    cfg = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else (cfg or {})
    crop = int(cfg.get("input_size", (3, 224, 224))[-1])
    crop_pct = float(cfg.get("crop_pct", 0.875) or 0.875)
    interpolation = cfg.get("interpolation", "bicubic")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bilinear"
    n = int(cfg.get("num_classes", 1000) or 1000)
    if n == 1000:
        info = ImageNetInfo()
        categories = tuple(info.index_to_description(i).split(",")[0] for i in range(1000))
    else:
        categories = tuple(f"class {i}" for i in range(n))
    hub_id, url = cfg.get("hf_hub_id"), cfg.get("url")
    return ModelSpec(
        id=model_id, title=f"{name} (timm)", family="timm", build=partial(_build, name), categories=categories,
        preprocess=Preprocess(resize=math.floor(crop / crop_pct), crop=crop, mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                              std=tuple(cfg.get("std", (0.229, 0.224, 0.225))), interpolation=interpolation),
        default_layer=None, weights_file=partial(_cached_file, hub_id, url), weights_url=None,
        description=f"timm's {name}: {n} classes, {crop} px input; pretrained weights through timm's cache",
        pretrained=partial(_pretrained, name))


add_resolver(PREFIX, spec_for)
