"""Cached loaders. Models are cached per registry id (one copy per process, shared by every
browser session; explainers' per-model lock keeps their hooks apart). The forward pass of an
image is cached per (model, image digest, layer) as an ``explainers.Capture``, so switching
class, method, opacity or colour map never repeats it."""
from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st
import torch
from PIL import Image

import explainers
import model_zoo
from model_zoo import shapes


@st.cache_resource(show_spinner=False)
def gallery() -> list:
    """The shapes world's sample scenes, generated once per process (not on every rerun)."""
    return shapes.gallery()


@st.cache_resource(show_spinner="Loading model...")
def load_model(model_id: str) -> model_zoo.LoadedModel:
    return model_zoo.load(model_id)


def available_models() -> tuple[list[str], list[str]]:
    """(ids whose weights are here, ids whose weights are missing)."""
    ready, missing = [], []
    for model_id in model_zoo.list_models():
        (ready if model_zoo.weights_available(model_id) else missing).append(model_id)
    return ready, missing


def digest(image_rgb: np.ndarray) -> str:
    return hashlib.sha256(image_rgb.tobytes() + str(image_rgb.shape).encode()).hexdigest()[:20]


@st.cache_resource(max_entries=8, show_spinner="Running the model...")
def capture(model_id: str, image_digest: str, layer: str, _image: np.ndarray) -> explainers.Capture:
    """One forward pass (with the guided hooks, so every method is available) for this model,
    image and layer. ``_image`` is not hashed: ``image_digest`` identifies it."""
    loaded = load_model(model_id)
    x = loaded.preprocess(Image.fromarray(_image)).unsqueeze(0)
    return explainers.Capture(loaded.model, x, layer=layer, pixels=True)


def probabilities(model_id: str, image_digest: str, layer: str, image: np.ndarray) -> np.ndarray:
    """Softmax of the captured forward pass's output (no new forward)."""
    return torch.softmax(capture(model_id, image_digest, layer, image).output[0], 0).numpy()


@st.cache_data(max_entries=32, show_spinner=False)
def layers(model_id: str) -> list[tuple[str, str]]:
    """(name, description) of the model's spatial layers."""
    loaded = load_model(model_id)
    crop = loaded.preprocess.crop
    return [(info.name, str(info)) for info in
            explainers.list_layers(loaded.model, torch.zeros(1, 3, crop, crop))]


@st.cache_data(max_entries=64, show_spinner=False)
def explanation(model_id: str, image_digest: str, layer: str, method: str, class_index: int,
                _image: np.ndarray) -> dict:
    """The arrays of one map (cached: revisiting a class or method is free)."""
    e = capture(model_id, image_digest, layer, _image).explain(method, class_index)
    return {"attribution": e.attribution, "layer_map": e.layer_map, "weights": e.weights,
            "score": e.score}
