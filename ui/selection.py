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
from ui import cache, prefs, zoo
from ui.text import plain

KEY = "studio_selection"
# what the app opens on: a real ImageNet model that works offline, on the photo of two objects
# (the paper's Fig. 1); the shapes world is one click away in the Model picker
DEFAULT_MODEL = "efficientnet-lite0"


@dataclass(frozen=True)
class Selection:
    model_id: str
    original: np.ndarray  # the image as opened (RGB, uint8)
    image: np.ndarray  # the model's view of it (resized and cropped as the model sees it)
    digest: str  # identifies ``image``: keys every cached forward pass
    name: str  # "circle" (a gallery scene) or the uploaded file's name


@st.cache_data(max_entries=8, show_spinner=False)
def _decode(data: bytes, name: str):
    """(RGB array, name, the original size when it was decoded reduced, else None)."""
    im = images.open_image(data, name=name)
    return np.asarray(im), name, im.info.get("reduced_from")


PROBLEM = "studio_image_problem"  # why the chosen image cannot be used: shown in the main area too


def sidebar() -> Selection | None:
    """Draw the model and image pickers in the sidebar; remember and return the choice."""
    st.session_state[KEY] = None
    st.session_state[PROBLEM] = None
    ready, missing = cache.available_models()
    with st.sidebar:
        options = ready + missing
        # bound to preferences (ui.prefs): the choice outlives a visit to a page without this sidebar
        model_id = st.selectbox("Model", options,
                                key=prefs.bind("model", "model", DEFAULT_MODEL if DEFAULT_MODEL in ready else options[0],
                                               options),
                                format_func=lambda m: m if m in ready else f"{m} (weights not here yet)",
                                help="Shapes-world models ship with the studio and work offline; the others "
                                     "download their weights once.")
        st.caption(cache.describe_model(model_id))
        zoo.plugin_notices()
        if model_id in missing:
            zoo.weights_button(model_id, f"sidebar_download_{model_id}")
            st.session_state[KEY] = ("needs weights", model_id)
            return None
        why = unusable(model_id)
        if why is not None:
            st.error(zoo.for_this_visitor(f"{model_id} cannot be explained: {why}. Choose another model; "
                                          "every other model works."))
            st.session_state[KEY] = ("unusable", model_id)
            return None
        sources = ["Gallery", "Upload"]
        source = st.radio("Image", sources, horizontal=True,
                          key=prefs.bind("image_source", "image_source", "Gallery", sources))
        original, name = None, None
        if source == "Gallery" and cache.family(model_id) == "shapes":
            items = cache.gallery()
            names = [n for n, _ in items]
            name = st.selectbox("Sample scene", names, key=prefs.bind("gallery", "gallery", names[0], names))
            scene = items[names.index(name)][1]
            original = scene.image
        elif source == "Gallery":  # real photos for the real-world models
            items = {p.name: p for p in cache.photos()}
            name = st.selectbox("Photo", list(items), key=prefs.bind("photo", "photo", next(iter(items)), list(items)),
                                format_func=lambda n: items[n].title)
            photo = items[name]
            original = photo.image
            st.caption(f"Photo: {photo.credit}; {photo.licence}.")
        else:
            upload = st.file_uploader("An image (PNG, JPEG, ...)", key="upload")
            if cache.family(model_id) == "shapes":
                st.caption(f"{model_id} knows eight synthetic shapes ({', '.join(cache.load_model(model_id).categories)}) "
                           "on noisy backgrounds: any upload is read as one of them. An ImageNet model "
                           "(see the Model zoo page) knows photos.")
            if upload is not None:
                try:
                    original, name, reduced_from = _decode(upload.getvalue(), upload.name)
                except images.ImageError as err:
                    st.error(plain(str(err)))
                    st.session_state[PROBLEM] = str(err)
    if original is None:
        return None
    loaded = cache.load_model(model_id)
    size = (original.shape[1], original.shape[0])
    try:
        loaded.preprocess.check(size)
    except ValueError as err:
        with st.sidebar:
            st.error(plain(str(err)))
        st.session_state[PROBLEM] = str(err)
        return None
    view = np.asarray(loaded.preprocess.display(Image.fromarray(original)))
    with st.sidebar:
        how = loaded.preprocess.describe(size)
        if source != "Gallery" and reduced_from:
            how = f"{reduced_from[0]} x {reduced_from[1]} decoded reduced to {how}"
        st.caption(f"What {model_id} sees: {how}.")
    selection = Selection(model_id, original, view, cache.digest(view), name)
    st.session_state[KEY] = selection
    return selection


GROUND_TRUTH_MODEL = "shapes-resnet"


def _use_shapes() -> None:
    prefs.put("model", GROUND_TRUTH_MODEL)
    prefs.put("image_source", "Gallery")


def shapes_button(key: str) -> None:
    """One click to the shapes world, whose ground truth the page needs (the sidebar's model and
    image change to shapes-resnet and its scenes)."""
    st.button(f"Use {GROUND_TRUTH_MODEL} (the shapes world)", key=key, on_click=_use_shapes)


def unusable(model_id: str) -> str | None:
    """Why the model cannot be explained (its plugin's code fails to build it, it has no
    spatial layer, ...), in one line; None when it loads. A plugin's failure is a message that
    names the model, never an error page."""
    try:
        cache.load_model(model_id)
    except (Exception, SystemExit) as err:  # noqa: BLE001  a plugin's code may raise anything
        if isinstance(err, SystemExit):
            return f"its code called sys.exit({err.code!r})"
        lines = str(err).strip().splitlines()
        return f"{type(err).__name__}: {lines[0][:300]}" if lines else type(err).__name__
    return None


def current() -> Selection:
    """The sidebar's choice, or a prompt to make one (and the page stops there)."""
    selection = st.session_state.get(KEY)
    if isinstance(selection, tuple) and selection[0] == "unusable":
        st.info(f"{selection[1]} cannot be explained (the sidebar says why): choose another model there.")
        st.stop()
    if isinstance(selection, tuple):  # the model's weights are missing
        st.info(f"The weights of {selection[1]} are not on this machine yet: download them with the button "
                "in the sidebar (or on the Model zoo page).")
        st.stop()
    if selection is None and st.session_state.get(PROBLEM):  # where the user is looking, not only the sidebar
        st.error(plain(f"This image cannot be used: {st.session_state[PROBLEM]}") + "  \nUpload another one, or "
                 "choose a sample in the sidebar.")
        st.stop()
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
