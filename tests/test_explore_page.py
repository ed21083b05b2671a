"""The Explore page through AppTest: ground truth on the gallery, maps that follow the class,
no repeated forward pass, bad uploads answered with a message."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from model_zoo.shapes import gallery
from ui import cache

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app():
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=90).run()
    assert not at.exception
    return at


def _by_label(at, label):
    (box,) = [s for s in at.selectbox if s.label == label]
    return box


def _layer_map_spec(at) -> str:
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # predictions, layer map
    return charts[1].proto.spec


def test_default_view_explains_the_predicted_class(app):
    assert app.selectbox(key="model").value == "shapes-resnet"
    first_name, first_scene = gallery()[0]
    assert app.selectbox(key="gallery").value == first_name
    # the model gets the gallery's first scene right, and the default class is its top-1
    assert _by_label(app, "Class to explain").value == first_scene.label
    assert any(f"Explaining **{first_scene.objects[0].name}**" in c.value for c in app.caption)
    spec = _layer_map_spec(app)
    assert '"type":"heatmap"' in spec and "(16x16, unnormalised)" in spec  # layer3 of shapes-resnet
    assert len(app.get("download_button")) == 3


def test_switching_class_changes_the_map_without_a_new_forward(app):
    before = _layer_map_spec(app)
    model = cache.load_model("shapes-resnet").model  # the page's cached model object
    calls = []
    handle = model.stem.register_forward_hook(lambda *a: calls.append(1))
    try:
        _by_label(app, "Class to explain").set_value(4).run()
        app.slider(key="explore_alpha").set_value(0.8).run()
        app.selectbox(key="explore_cmap").set_value("viridis").run()
    finally:
        handle.remove()
    assert not app.exception
    assert calls == []
    assert _layer_map_spec(app) != before
    assert any("Explaining **bar**" in c.value for c in app.caption)


def test_another_gallery_scene_and_layer(app):
    names = [n for n, _ in gallery()]
    pair = next(n for n in names if n.startswith("pair:"))
    app.selectbox(key="gallery").set_value(pair).run()
    _by_label(app, "Layer").set_value("layer1").run()
    assert not app.exception
    assert "(32x32, unnormalised)" in _layer_map_spec(app)
    assert any("at layer `layer1`" in c.value for c in app.caption)


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads(app):
    app.radio(key="image_source").set_value("Upload").run()
    assert any("Choose a sample scene or upload an image in the sidebar" in i.value for i in app.info)
    app.file_uploader(key="upload").set_value(("notes.png", b"not an image", "image/png")).run()
    assert not app.exception
    assert any("notes.png: not an image file" in e.value for e in app.error)
    scene = gallery()[2][1]
    grey = np.asarray(scene.pil().convert("L"))
    app.file_uploader(key="upload").set_value(("grey.png", _png(grey), "image/png")).run()
    assert not app.exception and not app.error
    assert len(app.get("plotly_chart")) == 2
    # a new image starts at its own top-1 class, not the previous image's choice
    import torch
    loaded = cache.load_model("shapes-resnet")
    with torch.no_grad():
        top1 = int(loaded.model(loaded.preprocess(Image.fromarray(grey).convert("RGB")).unsqueeze(0)).argmax())
    assert top1 != gallery()[0][1].label
    assert _by_label(app, "Class to explain").value == top1


def test_method_in_detail_sets_the_heatmap_and_downloads(app):
    app.selectbox(key="explore_method").set_value("guided_backprop").run()
    assert not app.exception
    spec = _layer_map_spec(app)
    assert "Guided Backprop |attribution| summed over channels (64x64" in spec
    labels = [b.label for b in app.get("download_button")]
    assert labels[:2] == ["Guided Backprop (PNG)", "Guided Backprop (.npy)"]
    app.selectbox(key="explore_method").set_value("counterfactual").run()
    assert "Counterfactual at layer resolution (16x16" in _layer_map_spec(app)
