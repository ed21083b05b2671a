"""Cached loaders. Models are cached per registry id (one copy per process, shared by every
browser session; explainers' per-model lock keeps their hooks apart). The forward pass of an
image is cached per (model, image digest, layer) as an ``explainers.Capture``, so switching
class, method, opacity or colour map never repeats it."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import threading
import time
from collections import OrderedDict

import numpy as np
import streamlit as st
import torch

import explainers
from explainers import masking, render
import model_zoo
from model_zoo import shapes, threads


@st.cache_resource(show_spinner=False)
def gallery() -> list:
    """The shapes world's sample scenes, generated once per process (not on every rerun)."""
    return shapes.gallery()


@st.cache_resource(show_spinner=False)
def photos() -> list:
    """The real photos (model_zoo.photos: scikit-image's and the two-object composite), read once
    per process."""
    from model_zoo import photos as gallery_photos
    return gallery_photos.photos()


@st.cache_resource(show_spinner="Loading model...")
def load_model(model_id: str) -> model_zoo.LoadedModel:
    """The model, its default layer found from the network when its entry names none."""
    loaded = model_zoo.load(model_id, download=False)
    if loaded.default_layer is None:
        crop = loaded.preprocess.crop
        layer = explainers.default_layer(loaded.model, torch.zeros(1, 3, crop, crop))
        loaded = dataclasses.replace(loaded, default_layer=layer)
    return loaded



# PyTorch's intra-op threads per model: model_zoo.threads (small models on one thread), with the
# parameter count kept per model id.
ALL_THREADS = threads.ALL_THREADS


@st.cache_resource(show_spinner=False)
def _parameters(model_id: str) -> int:
    return threads.parameters(load_model(model_id).model)


def torch_threads(model_id: str):
    """Run the block with the intra-op threads this model's passes should use."""
    return threads.torch_threads(_parameters(model_id))


def family(model_id: str) -> str:
    return model_zoo.get_spec(model_id).family


def describe_model(model_id: str) -> str:
    """What the model is, in one line (its registry description)."""
    spec = model_zoo.get_spec(model_id)
    text = spec.description or spec.title
    return f"{spec.title}: {text}" if spec.description else text


def viewer() -> str:
    """This browser session's token: the owner of the models it uploads (model_zoo.uploads),
    which no other session lists."""
    if "studio_viewer" not in st.session_state:
        st.session_state["studio_viewer"] = secrets.token_hex(12)
    return st.session_state["studio_viewer"]


def available_models(task: str = "classification") -> tuple[list[str], list[str]]:
    """(ids whose weights are here, ids whose weights are missing), of models for ``task``
    (the explaining pages work on classifiers; Captioning and VQA on their own models): the
    shared ones and this session's uploads."""
    ready, missing = [], []
    for model_id in model_zoo.list_models(viewer=viewer()):
        if model_zoo.get_spec(model_id).task != task:
            continue
        (ready if model_zoo.weights_available(model_id) else missing).append(model_id)
    return ready, missing


def digest(image_rgb: np.ndarray) -> str:
    return hashlib.sha256(image_rgb.tobytes() + str(image_rgb.shape).encode()).hexdigest()[:20]


class CaptureStore:
    """Kept forward passes, least recently used first out, bounded by the bytes they hold
    (``Capture.nbytes``: a ResNet-50 capture with the pixel graph keeps ~82 MB, a shapes model's
    ~2 MB), not by a count. The newest capture always stays, even when alone over budget."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self._items: OrderedDict[tuple, explainers.Capture] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, make) -> explainers.Capture:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        made = make()  # outside the store's lock: other sessions' hits are not held up
        with self._lock:
            kept = self._items.setdefault(key, made)
            self._items.move_to_end(key)
            while len(self._items) > 1 and self.nbytes > self.budget:
                self._items.popitem(last=False)
            return kept

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._items.values())

    def __len__(self) -> int:
        return len(self._items)


@st.cache_resource(show_spinner=False)
def capture_store() -> CaptureStore:
    """One store per process; ``STUDIO_CAPTURE_MB`` sets its budget (default 1024 MB)."""
    return CaptureStore(int(float(os.environ.get("STUDIO_CAPTURE_MB", "1024")) * 2**20))


def model_input(model_id: str, image: np.ndarray) -> torch.Tensor:
    """1 x 3 x H x W: the model's input made from ``image``, the view the sidebar keeps (the
    image resized and cropped once, the picture under every map). Every page's pass starts here:
    the view is normalised, never resized or cropped again (``Preprocess.tensor`` refuses a view
    of another size)."""
    return load_model(model_id).preprocess.tensor(image).unsqueeze(0)


def capture(model_id: str, image_digest: str, layer: str, image: np.ndarray,
            inputs: tuple = ()) -> explainers.Capture:
    """One forward pass (with the guided hooks, so every method is available) for this model,
    image and layer; ``image_digest`` identifies ``image``. ``inputs``: token inputs beside the
    image (a caption under teacher forcing, a question), as tuples of ids."""
    def make():
        loaded = load_model(model_id)
        x = model_input(model_id, image)
        with st.spinner("Running the model..."), torch_threads(model_id):
            return explainers.Capture(loaded.model, x, layer=layer, pixels=True, inputs=inputs)
    return capture_store().get((model_id, image_digest, layer, inputs), make)


@st.cache_resource(show_spinner=False)
def language_gallery() -> list:
    """Described scenes of the language world (captions and questions known): pairs and singles,
    generated once per process (the pages ask for them several times a run)."""
    from model_zoo.shapes import language
    items = []
    for i in range(6):
        s = language.make_described(2024, i, "pair")
        items.append((s.caption, s))
    for i in range(2):
        s = language.make_described(2024, i, "single")
        items.append((s.caption, s))
    return items


@st.cache_data(max_entries=64, show_spinner="Writing a caption...")
def generate_caption(model_id: str, image_digest: str, _image: np.ndarray, beam: int) -> tuple[int, ...]:
    """The captioner's own caption (token ids after <start>, up to <end>), greedy or by beam search."""
    loaded = load_model(model_id)
    x = model_input(model_id, _image)
    with explainers.model_lock(loaded.model), torch_threads(model_id):
        return tuple(loaded.model.generate(x, beam=beam)[0])


@st.cache_data(max_entries=128, show_spinner=False)
def token_maps(model_id: str, image_digest: str, layer: str, method: str, inputs: tuple, targets: tuple,
               _image: np.ndarray) -> list[dict]:
    """The arrays of several maps that share one forward pass with these token inputs."""
    kept = capture(model_id, image_digest, layer, _image, inputs)
    with torch_threads(model_id):
        got = kept.explain(method, list(targets))
    return [_arrays(e) for e in got]


def probabilities(model_id: str, image_digest: str, layer: str, image: np.ndarray) -> np.ndarray:
    """Softmax of the captured forward pass's output (no new forward)."""
    return torch.softmax(capture(model_id, image_digest, layer, image).output[0], 0).numpy()


def logits(model_id: str, image_digest: str, layer: str, image: np.ndarray) -> np.ndarray:
    return capture(model_id, image_digest, layer, image).output[0].numpy().copy()


@st.cache_data(max_entries=32, show_spinner=False)
def activations(model_id: str, image_digest: str, layer: str, _image: np.ndarray) -> np.ndarray:
    """A^k of the captured layer: C x h x w."""
    return capture(model_id, image_digest, layer, _image).activation[0].numpy().copy()


@st.cache_data(max_entries=32, show_spinner="Masking and re-running the model...")
def masked_logits(model_id: str, image_digest: str, _image: np.ndarray, _masks: tuple,
                  masks_key: str, baseline: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """(logits with each mask's region replaced, one batched forward; the pictures of those
    masked inputs, denormalised: what the model saw, blur included). ``masks_key`` identifies
    the masks."""
    loaded = load_model(model_id)
    x = model_input(model_id, _image)
    with torch_threads(model_id):
        logits = masking.masked_outputs(loaded.model, x, list(_masks), baseline)
    batch = masking.masked_inputs(x, list(_masks), baseline)
    return logits, [loaded.preprocess.picture(row) for row in batch]


@st.cache_resource(show_spinner=False)
def _layer_infos(model_id: str) -> tuple[explainers.LayerInfo, ...]:
    """The model's spatial layers, traced once (one forward pass) per model."""
    loaded = load_model(model_id)
    crop = loaded.preprocess.crop
    return tuple(explainers.list_layers(loaded.model, torch.zeros(1, 3, crop, crop)))


def layers(model_id: str) -> list[tuple[str, str]]:
    """(name, description) of the model's spatial layers; a layer of a single position (a global
    pool's 1 x 1 output) is not offered: its map is one value painted flat over the image."""
    default = load_model(model_id).default_layer
    return [(info.name, str(info)) for info in _layer_infos(model_id)
            if info.shape[1] * info.shape[2] > 1 or info.name == default]


def layer_channels(model_id: str) -> list[tuple[str, int]]:
    """(name, channels) of the model's spatial layers."""
    return [(info.name, int(info.shape[0])) for info in _layer_infos(model_id)]


@st.cache_data(max_entries=128, show_spinner=False)
def explanation(model_id: str, image_digest: str, layer: str, method: str, class_index: int,
                _image: np.ndarray, versus: int | None = None) -> dict:
    """The arrays of one map (cached: revisiting a class or method is free). ``versus``: explain
    y^class - y^versus ("why this class rather than that one") instead of y^class."""
    target = class_index if versus is None else explainers.Contrast(class_index, versus)
    kept = capture(model_id, image_digest, layer, _image)
    with torch_threads(model_id):
        return _arrays(kept.explain(method, target))


# Pictures are encoded once per (map, settings) and kept as PNG bytes, so that a rerun which shows
# a picture again neither re-encodes it nor sends new bytes (Streamlit names a media file by its
# bytes: the same bytes keep the same URL, which the browser has already decoded). The maps
# themselves stay in the capture and ``explanation``; these are their encodings only.
PNG_LEVEL = 1  # zlib level for pictures sent to the browser (see render.png_bytes)


@st.cache_data(max_entries=64, show_spinner=False)
def image_png(image_digest: str, _image: np.ndarray) -> bytes:
    """The image (as the model sees it) as PNG."""
    return render.png_bytes(_image, PNG_LEVEL)


def map_png(model_id: str, image_digest: str, layer: str, method: str, class_index: int, alpha: float,
            cmap: str, image: np.ndarray, versus: int | None = None) -> bytes:
    """The picture of one map as the pages show it (``render.picture``: an overlay normalised per
    map, or a pixel map's own image, which opacity and colour map do not change), as PNG; the map
    comes from :func:`explanation`."""
    if explainers.get_method(method).per_channel:
        alpha, cmap = None, None
    return _map_png(model_id, image_digest, layer, method, class_index, alpha, cmap, image, versus)


@st.cache_data(max_entries=512, show_spinner=False)
def _map_png(model_id, image_digest, layer, method, class_index, alpha, cmap, _image, versus) -> bytes:
    arrays = explanation(model_id, image_digest, layer, method, class_index, _image, versus)
    return render.png_bytes(render.picture(_image, arrays["attribution"], alpha, cmap), PNG_LEVEL)


def _arrays(e) -> dict:
    return {"attribution": e.attribution, "layer_map": e.layer_map, "weights": e.weights, "score": e.score}


class MapStore:
    """Maps of forward-heavy methods (Score-CAM, Ablation-CAM, occlusion, Integrated Gradients,
    SmoothGrad): computed only when the user asks (they cost many passes), with a progress
    callback, then kept for every session; least recently used out beyond ``size`` maps."""

    def __init__(self, size: int = 256):
        self.size = size
        self._items: OrderedDict[tuple, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key)

    def put(self, key: tuple, value: dict) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def map_store() -> MapStore:
    return MapStore()


def method_cost(model_id: str, image_digest: str, layer: str, method: str, image: np.ndarray) -> explainers.Cost:
    """What ``method`` costs beyond the kept forward pass for this model and layer."""
    cap = capture(model_id, image_digest, layer, image)
    return explainers.get_method(method).cost(cap.channels or 0, cap.size)


def stored_explanation(model_id: str, image_digest: str, layer: str, method: str, class_index: int) -> dict | None:
    return map_store().get((model_id, image_digest, layer, method, class_index))


def heavy_explanation(model_id: str, image_digest: str, layer: str, method: str, class_index: int,
                      image: np.ndarray, progress=None) -> dict:
    """A forward-heavy map, computed once (``progress(done, total)`` while it runs), then kept."""
    key = (model_id, image_digest, layer, method, class_index)
    kept = map_store().get(key)
    if kept is None:
        forward = capture(model_id, image_digest, layer, image)
        with torch_threads(model_id):
            e = forward.explain(method, class_index, progress=progress)
        kept = _arrays(e)
        map_store().put(key, kept)
    return kept


@st.cache_resource(show_spinner="Timing one forward and one backward pass of the model...")
def pass_seconds(model_id: str) -> tuple[float, float]:
    """(seconds of one image's forward pass in a batch of 8 without autograd, seconds of one
    image's forward and backward to the input), measured here, best of 3 after a warm-up:
    what the cost estimates of forward-heavy methods multiply."""
    loaded = load_model(model_id)
    crop = loaded.preprocess.crop
    x = torch.zeros(8, 3, crop, crop)
    model = loaded.model

    def forward():
        with torch.no_grad():
            model(x)

    def backward():
        one = x[:1].clone().requires_grad_(True)
        out = model(one)
        torch.autograd.grad(out[0].max(), one)

    times = []
    with torch_threads(model_id):  # as the methods it estimates will run
        for fn, count in ((forward, 8), (backward, 1)):
            fn()
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t)
            times.append(best / count)
    return times[0], max(times[1] - times[0], 0.0)


def compatible_models(model_id: str) -> list[str]:
    """Models whose weights are here and that share ``model_id``'s classes (same names, same
    order), so that one class index means the same thing in each."""
    categories = list(load_model(model_id).categories)
    ready, _ = available_models()
    return [m for m in ready if list(model_zoo.get_spec(m).categories) == categories]


def stage_layers(model_id: str, count: int = 4) -> list[str]:
    """A few layers from early to the default one, for a layer grid: the last ``count``
    shallowest-named layers up to and including the default layer."""
    loaded = load_model(model_id)
    names = [name for name, _ in layers(model_id)]
    upto = names[:names.index(loaded.default_layer) + 1]
    depth = min(n.count(".") for n in upto)
    shallow = [n for n in upto if n.count(".") == depth]
    if loaded.default_layer not in shallow:
        shallow.append(loaded.default_layer)
    return shallow[-count:]
