"""What the Captioning and VQA pages share: the model of the task and the image (a scene of the
language world, whose caption and questions are known, or an upload)."""
from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from explainers import images
from ui import cache
from ui.text import plain


def model_and_image(task: str, key: str):
    """(model id, loaded model, image name, the model's view of the image) or Nones with a message."""
    ready, missing = cache.available_models(task)
    if not ready:
        st.info(f"No {task} model has its weights here" + (f" ({', '.join(missing)} missing)" if missing else "")
                + ": train one with `./studio shapes train --model shapes-"
                + ("captioner" if task == "caption" else "vqa") + "`.")
        return None, None, None, None
    a, b = st.columns([1, 2])
    model_id = a.selectbox("Model", ready, key=f"{key}_model")
    loaded = cache.load_model(model_id)
    source = b.radio("Image", ["Described scene", "Upload"], horizontal=True, key=f"{key}_source")
    if source == "Described scene":
        items = cache.language_gallery()
        names = [n for n, _ in items]
        name = b.selectbox("Scene (its true caption)", names, key=f"{key}_scene")
        original = items[names.index(name)][1].image
    else:
        upload = b.file_uploader("An image", type=list(images.IMAGE_SUFFIXES), key=f"{key}_upload")
        words = "its captions" if task == "caption" else "its answers"
        b.caption(f"{model_id} has only seen the shapes world's described scenes (one or two coloured shapes on a "
                  f"noisy background) and knows their few words: on any other picture {words} are guesses in "
                  "that vocabulary, and the maps show where those guesses come from.")
        if upload is None:
            st.info("Upload an image, or pick a described scene.")
            return None, None, None, None
        try:
            original, name = np.asarray(images.open_image(upload.getvalue(), name=upload.name)), upload.name
        except images.ImageError as err:
            st.error(f"Cannot use this file: {plain(err)}")
            return None, None, None, None
    view = np.asarray(loaded.preprocess.display(Image.fromarray(original)))
    return model_id, loaded, name, view


def scene(name: str):
    """The described scene of the gallery called ``name``, or None (an upload)."""
    return dict(cache.language_gallery()).get(name)


def scene_caption(name: str) -> str | None:
    s = scene(name)
    return None if s is None else s.caption


def tokens_or_stop(encode, text: str, what: str) -> tuple[int, ...]:
    """``encode(text)``, or the reason it cannot be read (unknown words named, an empty text) on
    screen and the page stopped."""
    try:
        return encode(text)
    except ValueError as err:  # unknown words, too long, empty: the words typed are shown as written
        st.error(f"{what}: {plain(err)}")
        st.stop()
