"""Grad-CAM Studio's model zoo: one registry of models with their categories, preprocessing,
default layer and weights."""
from .preprocess import Preprocess
from .registry import (ENTRY_POINT_GROUP, UNTRAINED, LoadedModel, ModelSpec, fetch_weights, get_spec, list_models,
                       load, load_plugins, notes_path, plugin_errors, refresh, register, register_model,
                       weights_available)
# the package registers its own entries (the registry imports none of them): the shapes world
# first (the offline default), ImageNet, EfficientNet-Lite0, timm ids on first use, saved uploads
from . import shapes, imagenet, efficientnet_lite, timm_models, tv_dense, clip_models, uploads  # noqa: E402,F401
from .uploads import save_upload
from .weights import WeightsError, WeightsUnavailable, ZooError, read_state_dict

__all__ = ["Preprocess", "UNTRAINED", "LoadedModel", "ModelSpec", "get_spec", "list_models", "load",
           "register", "register_model", "weights_available", "fetch_weights", "save_upload", "load_plugins",
           "plugin_errors", "refresh", "notes_path", "ENTRY_POINT_GROUP", "WeightsError", "WeightsUnavailable", "ZooError",
           "read_state_dict"]
