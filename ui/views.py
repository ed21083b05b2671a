"""Views shared by the pages: downloads, the layer-map heatmap, the normalisation notice."""
from __future__ import annotations

import io
import json

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from ui import cache

NORMALISATION_LABELS = {"per_map": "per map", "joint": "joint"}
NORMALISATION_TEXT = {
    "per_map": "Each map is normalised to its own maximum (per map): shapes compare, strengths do not.",
    "joint": "All maps share one scale (joint: divided by the largest maximum among them): "
             "strengths compare across the grid.",
}


def normalisation_picker(key: str, default: str = "per_map") -> str:
    options = list(NORMALISATION_LABELS)
    return st.radio("Normalisation", options, index=options.index(default), horizontal=True,
                    format_func=NORMALISATION_LABELS.get, key=key,
                    help="How maps are scaled to colours. Joint puts every map on one scale.")


def png_bytes(picture) -> bytes:
    buf = io.BytesIO()
    (picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture))).save(buf, format="PNG")
    return buf.getvalue()


def strip(pictures) -> Image.Image:
    """PIL images side by side, left to right, on white."""
    out = Image.new("RGB", (sum(p.width for p in pictures), max(p.height for p in pictures)), "white")
    x = 0
    for p in pictures:
        out.paste(p, (x, 0))
        x += p.width
    return out


def npy_bytes(array) -> bytes:
    """.npy of one array, or .npz of named arrays when given a dict (maps of different shapes)."""
    buf = io.BytesIO()
    if isinstance(array, dict):
        np.savez(buf, **{k: np.asarray(v) for k, v in array.items()})
    else:
        np.save(buf, np.asarray(array))
    return buf.getvalue()


def downloads(key: str, stem: str, picture, array, settings: dict, what: str = "map",
              array_what: str | None = None) -> None:
    """Three download buttons: the picture (PNG), the array (.npy), the settings (JSON)."""
    c1, c2, c3 = st.columns(3)
    c1.download_button(f"{what} (PNG)", png_bytes(picture), f"{stem}.png", "image/png", key=f"{key}_png")
    ext = "npz" if isinstance(array, dict) else "npy"
    c2.download_button(f"{array_what or what} (.{ext})", npy_bytes(array), f"{stem}.{ext}", key=f"{key}_npy")
    c3.download_button("Settings (JSON)", json.dumps(settings, indent=2, default=float),
                       f"{stem}.json", "application/json", key=f"{key}_json")


def heatmap(z: np.ndarray, title: str, *, colorscale: str = "Jet", height: int = 360,
            width: int | None = 420, zmid: float | None = None) -> go.Figure:
    """A map as a Plotly heatmap in image orientation with square cells and hover values."""
    fig = go.Figure(go.Heatmap(z=z, colorscale=colorscale, zmid=zmid,
                               hovertemplate="row %{y}, col %{x}: %{z:.4f}<extra></extra>"))
    fig.update_layout(height=height, width=width, margin=dict(l=0, r=0, t=28, b=0), title=title,
                      yaxis=dict(autorange="reversed", scaleanchor="x", constrain="domain"),
                      xaxis=dict(constrain="domain"))
    return fig


def settings_of(selection, loaded, **extra) -> dict:
    """What a download was made from: enough to make it again."""
    return {"model": selection.model_id, "weights": loaded.weights, "weights_sha256": loaded.sha256,
            "image": selection.name, "image_digest": selection.digest, **extra}


def layer_picker(model_id: str, key: str, where=st) -> str:
    """The model's spatial layers with their shapes, starting at its default layer; the key
    names the model, so a new model starts at its own default."""
    options = cache.layers(model_id)
    names = [n for n, _ in options]
    default = cache.load_model(model_id).default_layer
    return where.selectbox("Layer", names, index=names.index(default), format_func=dict(options).get,
                           key=f"{key}_{model_id}")


def class_picker(categories, probs, key: str, label: str = "Class", index: int | None = None,
                 where=st) -> int:
    """Any class by name (searchable), with its probability; starts at ``index`` (default: the
    top-1). Key it by model and image so a new image starts at its own top-1."""
    return where.selectbox(label, list(range(len(categories))),
                           index=int(np.argmax(probs)) if index is None else index,
                           format_func=lambda i: f"{categories[i]} ({probs[i]:.1%})", key=key)
