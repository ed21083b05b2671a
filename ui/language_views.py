"""What the Captioning, VQA and Text prompt pages share: the model of the task and the image (a
scene of the language world, whose caption and questions are known, a real photo for image-text
models, or an upload)."""
from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

import model_zoo
from explainers import images
from ui import cache
from ui.text import plain


_TRAIN = {"caption": "shapes-captioner", "vqa": "shapes-vqa", "text": "shapes-clip"}
_WORDS = {"caption": "its captions", "vqa": "its answers", "text": "its similarities"}


def model_and_image(task: str, key: str):
    """(model id, loaded model, image name, the model's view of the image) or Nones with a message.
    Image-text models (``task="text"``) also take the real photos."""
    ready, missing = cache.available_models(task)
    if not ready:
        st.info(f"No {task} model has its weights here" + (f" ({', '.join(missing)} missing)" if missing else "")
                + f": train one with `./studio shapes train --model {_TRAIN[task]}`"
                + (", or fetch a CLIP model's weights on the Model zoo page." if task == "text" else "."))
        return None, None, None, None
    a, b = st.columns([1, 2])
    model_id = a.selectbox("Model", ready, key=f"{key}_model")
    loaded = cache.load_model(model_id)
    sources = ["Described scene", "Real photo", "Upload"] if task == "text" else ["Described scene", "Upload"]
    source = b.radio("Image", sources, horizontal=True, key=f"{key}_source")
    shapes_model = model_zoo.get_spec(model_id).family == "shapes"
    if source != "Described scene" and shapes_model:  # said before a file is chosen
        b.caption(f"{model_id} has only seen the shapes world's described scenes (one or two coloured shapes on a "
                  f"noisy background) and knows their few words: on any other picture {_WORDS[task]} are guesses "
                  "in that vocabulary, and the maps show where those guesses come from.")
    if source == "Described scene":
        items = cache.language_gallery()
        names = [n for n, _ in items]
        name = b.selectbox("Scene (its true caption)", names, key=f"{key}_scene")
        original = items[names.index(name)][1].image
    elif source == "Real photo":
        photos = cache.photos()
        titles = [p.title for p in photos]
        title = b.selectbox("Photo", titles, key=f"{key}_photo")
        photo = photos[titles.index(title)]
        original, name = photo.image, photo.name
        b.caption(f"{photo.credit} ({photo.licence}).")
    else:
        upload = b.file_uploader("An image", type=list(images.IMAGE_SUFFIXES), key=f"{key}_upload")
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
