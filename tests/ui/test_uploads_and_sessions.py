"""Bad uploads in the running app, the capture store's memory bound, and two sessions sharing
one cached model at once."""
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import explainers
import model_zoo
from model_zoo.shapes import gallery
from tests.conftest import open_dashboard
from ui import cache

ROOT = Path(__file__).resolve().parents[2]


def _save(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _bomb_png(side: int = 20000) -> bytes:
    """A real side x side 1-bit PNG (every row present, all zeros): ~50 KB on disk, 400 MP once
    decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


SCENE = gallery()[5][1]  # hexagon
RGB = SCENE.pil()
GOOD = _save(RGB)

UPLOADS = {
    # name: (bytes, expected error text or None when it must work)
    "notes.png": (b"just some text, not an image", "notes.png: not an image file"),
    "truncated.png": (GOOD[: len(GOOD) // 2], "truncated.png"),
    "bomb.png": (_bomb_png(), "400 MP is above the 40 MP limit"),
    "grey.png": (_save(RGB.convert("L")), None),
    "rgba.png": (_save(RGB.convert("RGBA")), None),
    "cmyk.jpg": (_save(RGB.convert("CMYK"), "JPEG"), None),
    "sixteen.png": (_save(Image.fromarray((np.asarray(RGB.convert("L")).astype(np.uint16) * 257))), None),
    "tiny.png": (_save(RGB.resize((8, 8))), None),
}


def test_bad_uploads_get_a_message_and_the_app_keeps_serving():
    at = open_dashboard(120)
    at.radio(key="image_source").set_value("Upload").run()
    for name, (data, error) in UPLOADS.items():
        at.file_uploader(key="upload").set_value((name, data, "application/octet-stream")).run()
        assert not at.exception, name
        errors = [e.value.replace("\\", "") for e in at.error]  # Markdown escapes removed
        if error is None:
            assert not errors, (name, errors)
            assert len(at.get("plotly_chart")) == 2, name  # predictions and the layer map
        else:  # said in the sidebar and where the user is looking: the main area (not "choose a scene")
            assert len(at.sidebar.error) == 1 and error in at.sidebar.error[0].value.replace("\\", ""), (name, errors)
            (main,) = [e.value.replace("\\", "") for e in at.main.error]
            assert main.startswith("This image cannot be used: ") and error in main, (name, main)
            assert not any("upload an image in the sidebar" in i.value for i in at.info), name
    # after every bad file, a good one is explained as before
    at.file_uploader(key="upload").set_value(("scene.png", GOOD, "image/png")).run()
    assert not at.exception and not at.error
    assert any("Explaining **hexagon**" in c.value for c in at.caption)
    for page in ("pages/compare.py", "pages/counterfactual.py", "pages/how_it_works.py"):
        at.switch_page(page).run()
        assert not at.exception and not at.error, page


def test_the_capture_store_is_bounded_by_bytes():
    loaded = model_zoo.load("shapes-resnet")
    scenes = [s for _, s in gallery()[:6]]
    one = explainers.Capture(loaded.model, loaded.preprocess(scenes[0].pil()).unsqueeze(0), pixels=True)
    assert one.nbytes > 100_000  # the pixel graph of a shapes model: on the order of MB
    store = cache.CaptureStore(budget_bytes=int(2.5 * one.nbytes))
    made = []

    def make(scene):
        def go():
            made.append(scene.index)
            return explainers.Capture(loaded.model, loaded.preprocess(scene.pil()).unsqueeze(0), pixels=True)
        return go

    for s in scenes:
        store.get(("m", s.index), make(s))
        assert store.nbytes <= store.budget
    assert len(store) == 2  # each capture the same size: two fit in 2.5 of them
    store.get(("m", scenes[-1].index), make(scenes[-1]))  # a hit: nothing made
    assert len(made) == len(scenes)
    store.get(("m", scenes[0].index), make(scenes[0]))  # evicted long ago: made again
    assert len(made) == len(scenes) + 1
    tiny = cache.CaptureStore(budget_bytes=1)  # the newest capture stays even when over budget
    tiny.get("a", make(scenes[0]))
    assert len(tiny) == 1


def test_capture_nbytes_counts_the_graph():
    """A capture with the pixel graph keeps more than one without; dropping it frees the memory."""
    model = model_zoo.load("shapes-resnet").model
    x = torch.randn(1, 3, 64, 64)
    head_only = explainers.Capture(model, x)
    full = explainers.Capture(model, x, pixels=True)
    assert full.nbytes > 3 * head_only.nbytes
    acts = full.activation
    assert head_only.nbytes >= acts.numel() * acts.element_size()
