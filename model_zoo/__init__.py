"""Grad-CAM Studio's model zoo: one registry of models with their categories, preprocessing,
default layer and weights."""
from .preprocess import Preprocess
from .registry import (UNTRAINED, LoadedModel, ModelSpec, get_spec, list_models, load, register,
                       weights_available)
from .weights import WeightsError, WeightsUnavailable, ZooError, read_state_dict

__all__ = ["Preprocess", "UNTRAINED", "LoadedModel", "ModelSpec", "get_spec", "list_models", "load",
           "register", "weights_available", "WeightsError", "WeightsUnavailable", "ZooError",
           "read_state_dict"]
