"""Grad-CAM Studio's explainer library: Grad-CAM, counterfactual Grad-CAM, Guided Backprop and
Guided Grad-CAM (Selvaraju et al., ICCV 2017 / IJCV 2020), the CAM family (Grad-CAM++,
XGrad-CAM, HiResCAM, LayerCAM, Score-CAM, Ablation-CAM, Eigen-CAM) and pixel methods (gradient,
Integrated Gradients, SmoothGrad, occlusion) for any CNN or vision transformer, layer and target.
Every method is one entry of the registry in :mod:`explainers.methods`."""
from .core import Capture, Explanation, RankedClass, TopK, explain
from .layers import LayerInfo, default_layer, list_layers, resolve_layer
from .layouts import Layout, layout_of, to_maps
from .locking import model_lock
from .methods import (KINDS, PAPER, REGISTRY, Cost, Method, get_method, has_attention, list_methods, method_names,
                      register_method)
from .targets import (ActionContrast, ActionLogit, ActionProbability, Answer, CaptionLogProb, ClassLogit,
                      ClassProbability, Contrast, Custom, DetectionScore, Negated, SegmentationRegion, Target, TextSimilarity,
                      Value, WordLogit, WordLogProb, as_target, match_detection, model_inputs)

__all__ = [
    "KINDS", "PAPER", "method_names", "has_attention", "REGISTRY", "Method", "Cost", "get_method", "list_methods", "register_method",
    "Explanation", "explain", "Capture", "TopK", "RankedClass", "LayerInfo", "default_layer", "list_layers",
    "resolve_layer", "Layout", "layout_of", "to_maps", "model_lock", "Target", "ClassLogit",
    "ClassProbability", "Negated", "Contrast", "Custom", "as_target", "CaptionLogProb", "WordLogProb", "WordLogit", "Answer",
    "model_inputs", "ActionLogit", "ActionProbability", "ActionContrast", "Value", "DetectionScore",
    "SegmentationRegion", "match_detection", "TextSimilarity",
]
