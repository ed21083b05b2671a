"""The Explore page through AppTest: ground truth on the gallery, maps that follow the class,
no repeated forward pass, bad uploads answered with a message."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_zoo.shapes import gallery
from tests.conftest import open_dashboard
from ui import cache

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app():
    at = open_dashboard(90)
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
    labels = [b.label for b in app.get("download_button")]
    assert labels == ["Grad-CAM of circle with the image (PNG, 512 px)",
                      "Grad-CAM of circle: values, unnormalised (.npy, 64x64)",
                      "Settings to make it again (JSON)",
                      "Layer map, 16x16 cells (PNG, 512 px, nearest)"]
    app.select_slider(key="dl_size").set_value(1024).run()
    assert app.get("download_button")[0].label == "Grad-CAM of circle with the image (PNG, 1024 px)"


def test_slide_figures_for_downloads():
    """PNGs for slides: each panel scaled to the chosen size; a layer map by nearest neighbour,
    so each of its cells is a square block of one colour."""
    from ui import views
    layer = np.arange(16 * 16, dtype=float).reshape(16, 16)
    pic = views.layer_map_picture(layer)
    assert pic.size == (16, 16)
    fig = np.asarray(views.slide([("layer map", pic, "nearest")], 512))
    pad = 512 // 40
    block = fig[pad:pad + 512, pad:pad + 512]
    assert block.shape == (512, 512, 3)
    cells = block.reshape(16, 32, 16, 32, 3)
    assert (cells == cells[:, :1, :, :1]).all()  # 32 x 32 px of one colour per cell
    np.testing.assert_array_equal(cells[:, 0, :, 0], np.asarray(pic))
    two = views.slide([("image", Image.new("RGB", (64, 64), "red"), "smooth"), ("map", pic, "nearest")], 256)
    assert two.width == 2 * 256 + 3 * (256 // 40) and two.height > 256  # side by side, labels below


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
    # a 1 x 1 layer (the global pool) paints one value flat over the image: not offered
    import explainers
    import model_zoo
    import torch
    flat = [i.name for i in explainers.list_layers(model_zoo.load("shapes-resnet").model, torch.zeros(1, 3, 64, 64))
            if i.shape[1:] == (1, 1)]
    assert flat == ["pool"] and "pool" not in _by_label(app, "Layer").options
    # the detail heatmap follows the chosen colour map (it was always Jet)
    import json
    from explainers import render
    _by_label(app, "Colour map").set_value("viridis").run()
    spec = json.loads(_layer_map_spec(app))
    assert spec["data"][0]["colorscale"] == render.colorscale("viridis")
    assert render.colorscale("viridis")[0] == [0.0, "rgb(68,1,84)"]
    assert render.colorscale("gray")[-1] == [1.0, "rgb(255,255,255)"]


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads(app):
    app.radio(key="image_source").set_value("Upload").run()
    assert any("Choose a sample scene or upload an image in the sidebar" in i.value for i in app.info)
    app.file_uploader(key="upload").set_value(("notes.png", b"not an image", "image/png")).run()
    assert not app.exception
    # shown as written: Markdown characters of the file name are escaped
    assert any("notes.png: not an image file" in e.value.replace("\\", "") for e in app.error)
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
    cls = _by_label(app, "Class to explain")
    name = cache.load_model("shapes-resnet").categories[cls.value]
    assert labels == [f"Guided Backprop of {name} with the image (PNG, 512 px)",
                      f"Guided Backprop of {name}: values, unnormalised (.npy, 3x64x64)",
                      "Settings to make it again (JSON)"]
    app.selectbox(key="explore_method").set_value("counterfactual").run()
    assert "Counterfactual at layer resolution (16x16" in _layer_map_spec(app)


def test_every_method_is_offered_in_detail(app):
    """Every method that applies to the model: a CNN is not offered LeGrad, which reads attention."""
    import explainers
    import model_zoo
    model = model_zoo.load(app.selectbox(key="model").value).model
    offered = app.selectbox(key="explore_method").options
    assert offered == [explainers.get_method(m).title for m in explainers.method_names(model=model)]
    assert "LeGrad" not in offered and "Attention rollout" not in offered
    assert len(offered) == len(explainers.method_names()) - 2


def test_forward_heavy_method_shows_its_cost_then_runs_with_a_progress_bar(app):
    """Score-CAM on shapes-resnet's layer3 costs 128 masked forwards: said before running, run
    when asked, and its map equals the library's."""
    import explainers
    import model_zoo
    app.selectbox(key="explore_method").set_value("scorecam").run()
    assert not app.exception
    info = " ".join(i.value for i in app.info)
    assert "Score-CAM**: 128 forwards of masked images, in batches of 32" in info
    assert "about" in info and "(measured)" in info
    assert len(app.get("plotly_chart")) == 1  # no map yet: only the predictions
    app.button(key="explore_heavy_run").click().run()
    assert not app.exception
    assert any(c.value.startswith("Ran in ") for c in app.caption)
    spec = _layer_map_spec(app)
    assert "Score-CAM at layer resolution (16x16, unnormalised)" in spec
    first_name, scene = gallery()[0]
    loaded = model_zoo.load("shapes-resnet")
    x = loaded.preprocess(Image.fromarray(scene.image)).unsqueeze(0)
    cls = _by_label(app, "Class to explain").value
    ref = explainers.explain(loaded.model, x, method="scorecam", layer="layer3", target=cls)
    stored = cache.stored_explanation("shapes-resnet", cache.digest(scene.image), "layer3", "scorecam", cls)
    np.testing.assert_allclose(stored["layer_map"], ref.layer_map, rtol=1e-4, atol=1e-6)
    # kept: coming back to the method shows it at once, with no button
    app.selectbox(key="explore_method").set_value("gradcam").run()
    app.selectbox(key="explore_method").set_value("scorecam").run()
    assert not [b for b in app.button if b.key == "explore_heavy_run"]
    assert "Score-CAM at layer resolution" in _layer_map_spec(app)


def test_a_method_that_ignores_the_class_says_so(app):
    app.selectbox(key="explore_method").set_value("eigencam").run()
    assert not app.exception
    assert any("Eigen-CAM is not class-discriminative" in w.value for w in app.warning)
    assert "Eigen-CAM at layer resolution (16x16" in _layer_map_spec(app)
    app.selectbox(key="explore_method").set_value("occlusion").run()
    app.button(key="explore_heavy_run").click().run()
    assert not app.exception and "Occlusion at input resolution (64x64" in _layer_map_spec(app)


def test_pictures_are_encoded_once_per_setting():
    """cache.map_png: the PNG of what render.picture draws; a pixel map's picture does not depend
    on opacity or colour map (the same bytes, so the browser keeps it); an overlay's does."""
    import explainers
    from explainers import render
    scene = gallery()[0][1]
    loaded = cache.load_model("shapes-resnet")
    view = np.asarray(loaded.preprocess.display(Image.fromarray(scene.image)))
    d = cache.digest(view)
    gb = [cache.map_png("shapes-resnet", d, "layer3", "guided_backprop", 0, a, c, view)
          for a, c in ((0.2, "jet"), (0.8, "viridis"))]
    assert gb[0] == gb[1]
    cams = [cache.map_png("shapes-resnet", d, "layer3", "gradcam", 0, a, "jet", view) for a in (0.2, 0.8)]
    assert cams[0] != cams[1]
    want = render.picture(view, cache.explanation("shapes-resnet", d, "layer3", "gradcam", 0, view)["attribution"], 0.8)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(cams[1]))), np.asarray(want))
    assert explainers.get_method("guided_backprop").per_channel and not explainers.get_method("gradcam").per_channel


def test_small_models_run_on_one_thread(monkeypatch):
    import torch
    before = torch.get_num_threads()
    with cache.torch_threads("shapes-resnet"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == cache.ALL_THREADS == before
    monkeypatch.setattr(cache, "_parameters", lambda model_id: 25_000_000)  # a resnet50-sized model
    with cache.torch_threads("shapes-resnet"):
        assert torch.get_num_threads() == cache.ALL_THREADS


def test_the_sidebar_choice_outlives_a_page_without_the_sidebar():
    """Captioning and VQA draw their own pickers, not the sidebar's: coming back, the model and
    the scene are still the ones chosen (Streamlit forgets a widget a run does not draw; the
    choice lives in ui.prefs)."""
    at = open_dashboard(120, "shapes-fc")
    at.selectbox(key="gallery").set_value("hexagon").run()
    at.switch_page("pages/captioning.py").run()
    at.switch_page("pages/explore.py").run()
    assert not at.exception
    assert at.selectbox(key="model").value == "shapes-fc"
    assert at.selectbox(key="gallery").value == "hexagon"
    assert any("Explaining **hexagon**" in c.value for c in at.caption)
