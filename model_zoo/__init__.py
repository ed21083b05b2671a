"""Grad-CAM Studio's model zoo: one registry of models with their categories, preprocessing,
default layer and weights."""
from .fetch import fetch_weights
from .preprocess import Preprocess
from .registry import (ENTRY_POINT_GROUP, UNTRAINED, LoadedModel, ModelSpec, get_spec, list_models, load,
                       load_plugins, notes_path, plugin_errors, refresh, register, register_model, weights_available)
from . import timm_models, uploads
from .uploads import save_upload
from .weights import WeightsError, WeightsUnavailable, ZooError, read_state_dict

__all__ = ["Preprocess", "UNTRAINED", "LoadedModel", "ModelSpec", "get_spec", "list_models", "load",
           "register", "register_model", "weights_available", "fetch_weights", "save_upload", "load_plugins",
           "plugin_errors", "refresh", "notes_path", "ENTRY_POINT_GROUP", "WeightsError", "WeightsUnavailable", "ZooError",
           "read_state_dict"]
