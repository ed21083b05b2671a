"""The shared sidebar: which model and which image every explaining page works on.

The widgets live in the entry point (dashboard.py calls :func:`sidebar` before the page runs), so
the choice survives page switches. Only stable strings and the image array go into session
state, never a model object."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from explainers import images
from ui import cache

KEY = "studio_selection"


@dataclass(frozen=True)
class Selection:
    model_id: str
    original: np.ndarray  # the image as opened (RGB, uint8)
    image: np.ndarray  # the model's view of it (resized and cropped as the model sees it)
    digest: str  # identifies ``image``: keys every cached forward pass
    name: str  # "circle" (a gallery scene) or the uploaded file's name


@st.cache_data(max_entries=8, show_spinner=False)
def _decode(data: bytes, name: str) -> np.ndarray:
    return np.asarray(images.open_image(data, name=name))


def sidebar() -> Selection | None:
    """Draw the model and image pickers in the sidebar; remember and return the choice."""
    st.session_state[KEY] = None
    ready, missing = cache.available_models()
    with st.sidebar:
        model_id = st.selectbox("Model", ready, key="model",
                                help="Shapes-world models ship with the studio and work offline.")
        if missing:
            st.caption(f"{len(missing)} ImageNet models need their weights first (see the Model "
                       "zoo page).")
        source = st.radio("Image", ["Gallery", "Upload"], horizontal=True, key="image_source")
        original, name = None, None
        if source == "Gallery":
            items = cache.gallery()
            names = [n for n, _ in items]
            name = st.selectbox("Sample scene", names, key="gallery")
            scene = items[names.index(name)][1]
            original = scene.image
        else:
            upload = st.file_uploader("An image (PNG, JPEG, ...)", key="upload")
            if upload is not None:
                try:
                    original, name = _decode(upload.getvalue(), upload.name), upload.name
                except images.ImageError as err:
                    st.error(str(err))
    if original is None:
        return None
    loaded = cache.load_model(model_id)
    view = np.asarray(loaded.preprocess.display(Image.fromarray(original)))
    selection = Selection(model_id, original, view, cache.digest(view), name)
    st.session_state[KEY] = selection
    return selection


def current() -> Selection:
    """The sidebar's choice, or a prompt to make one (and the page stops there)."""
    selection = st.session_state.get(KEY)
    if selection is None:
        st.info("Choose a sample scene or upload an image in the sidebar.")
        st.stop()
    return selection


def view_of(model_id: str, selection: Selection) -> np.ndarray:
    """The selected image as another model sees it."""
    if model_id == selection.model_id:
        return selection.image
    loaded = cache.load_model(model_id)
    return np.asarray(loaded.preprocess.display(Image.fromarray(selection.original)))
