"""Grad-CAM Studio's explainer library: Grad-CAM, counterfactual Grad-CAM, Guided Backprop and
Guided Grad-CAM (Selvaraju et al., ICCV 2017 / IJCV 2020) for any CNN, layer and target."""
from .core import METHODS, Capture, Explanation, RankedClass, TopK, explain
from .layers import LayerInfo, default_layer, list_layers, resolve_layer
from .locking import model_lock
from .targets import ClassLogit, ClassProbability, Contrast, Custom, Negated, Target, as_target

__all__ = [
    "METHODS", "Explanation", "explain", "Capture", "TopK", "RankedClass", "LayerInfo", "default_layer", "list_layers",
    "resolve_layer", "model_lock", "Target", "ClassLogit", "ClassProbability", "Negated",
    "Contrast", "Custom", "as_target",
]
