"""What the Detect and Segment pages share: the model of the task, the image (a held-out scene of
the multi-object shapes world, whose boxes and masks are known, or an upload), boxes and label
images drawn for the screen."""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from PIL import Image, ImageDraw

from evaluation import dense as ev
from explainers import images
from explainers.render import LABEL_PALETTE as PALETTE, label_overlay  # noqa: F401  (the pages draw with them)
from model_zoo.shapes.world import make_scene
from ui import cache
from ui.text import plain

SCALE = 4  # a 64-px scene drawn 4 times enlarged, so boxes and labels are legible


def model_and_image(task: str, key: str, train_hint: str):
    """(model id, loaded model, image name, the model's view of the image, the scene or None),
    or Nones with a message on screen."""
    ready, missing = cache.available_models(task)
    if not ready:
        st.info(f"No {task} model has its weights here" + (f" ({', '.join(missing)} missing)" if missing else "")
                + f": train one with `{train_hint}`.")
        return None, None, None, None, None
    a, b = st.columns([1, 2])
    model_id = a.selectbox("Model", ready, key=f"{key}_model")
    loaded = cache.load_model(model_id)
    source = b.radio("Image", ["Held-out scene", "Upload"], horizontal=True, key=f"{key}_source")
    scene = None
    if source == "Held-out scene":
        index = int(b.number_input(f"Scene of the held-out world (seed {ev.HELDOUT_SEED}, never trained on)",
                                   0, 99_999, 0, key=f"{key}_scene"))
        scene = make_scene(ev.HELDOUT_SEED, index, "multi")
        original, name = scene.image, f"held-out scene {index}"
    else:
        upload = b.file_uploader("An image", type=list(images.IMAGE_SUFFIXES), key=f"{key}_upload")
        if loaded.spec is not None and loaded.spec.family == "shapes":
            b.caption(f"{model_id} has only seen the shapes world (coloured shapes on a noisy background): on "
                      "another picture its boxes and labels are guesses among the eight shapes.")
        if upload is None:
            st.info("Upload an image, or pick a held-out scene.")
            return None, None, None, None, None
        try:
            original, name = np.asarray(images.open_image(upload.getvalue(), name=upload.name)), upload.name
        except images.ImageError as err:
            st.error(f"Cannot use this file: {plain(err)}")
            return None, None, None, None, None
    view = np.asarray(loaded.preprocess.display(Image.fromarray(original)))
    if scene is not None and view.shape[:2] != scene.image.shape[:2]:
        scene = None  # a model of another input size: the scene's boxes do not apply to its view
    return model_id, loaded, name, view, scene


def enlarge(picture, scale: int = SCALE) -> Image.Image:
    p = picture if isinstance(picture, Image.Image) else Image.fromarray(np.asarray(picture, np.uint8))
    if scale == 1:
        return p.convert("RGB")
    return p.convert("RGB").resize((p.width * scale, p.height * scale), Image.NEAREST)


def scale_for(view: np.ndarray) -> int:
    """Small views (the shapes world's 64 px) are enlarged for the screen; photos are not."""
    return max(1, 256 // max(view.shape[:2]))


def draw_boxes(picture, boxes, labels: list[str], scale: int, highlight: int | None = None) -> Image.Image:
    """``boxes`` (x0, y0, x1, y1 in view pixels) drawn on the enlarged picture with their labels;
    the ``highlight``-th thick and white."""
    out = enlarge(picture, scale)
    draw = ImageDraw.Draw(out)
    for k, (box, text) in enumerate(zip(boxes, labels)):
        colour = tuple(int(v) for v in PALETTE[1 + k % (len(PALETTE) - 1)])
        width = 3 if k == highlight else 1
        if k == highlight:
            colour = (255, 255, 255)
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        draw.text((x0 + 2, max(0.0, y0 - 11)), text, fill=colour)
    return out


def run(model, x):
    """The model's output for ``x`` without autograd (the detections, or the segmenter's labels
    as an H x W array)."""
    with torch.no_grad():
        out = model(x)
    if isinstance(out, torch.Tensor):
        return out[0].argmax(0).numpy()
    return {k: v.numpy() for k, v in out[0].items()}


def input_of(loaded, view) -> torch.Tensor:
    return loaded.preprocess.tensor(view).unsqueeze(0)


def seconds_per_image(model, x, copies: int = 16) -> float:
    """One forward's time per image, measured on a batch of ``copies`` copies (the best of 3)."""
    import time
    batch = x.repeat(copies, 1, 1, 1)
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            t = time.perf_counter()
            model(batch)
            best = min(best, time.perf_counter() - t)
    return best / copies


def true_object(scene, label: int, box) -> int | None:
    """The index of the scene's object that a detection (label, box) matches, or None."""
    from evaluation import dense as ev
    d = {"boxes": torch.tensor([list(box)]), "scores": torch.tensor([1.0]), "labels": torch.tensor([label])}
    match = ev.match_objects(d, [(o.label, o.box) for o in scene.objects])
    return next((i for i, v in enumerate(match) if v is not None), None)
