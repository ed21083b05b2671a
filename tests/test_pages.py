"""Compare, Counterfactual and How it works through AppTest: widgets set, numbers on screen
checked against the library computed independently."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import explainers
import model_zoo
from explainers import agreement, masking
from model_zoo.shapes import gallery

ROOT = Path(__file__).resolve().parents[1]


def _open(page: str, scene: str | None = None, model: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120).run()
    if model:
        at.selectbox(key="model").set_value(model).run()
    if scene:
        at.selectbox(key="gallery").set_value(scene).run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def _scene(name: str):
    return dict(gallery())[name]


def _capture(model_id: str, scene_name: str, layer=None):
    loaded = model_zoo.load(model_id)
    image = _scene(scene_name).image
    x = loaded.preprocess(Image.fromarray(image)).unsqueeze(0)
    return loaded, x, explainers.Capture(loaded.model, x, layer=layer)


def _images(at) -> list[str]:
    """The media URLs of the page's images (a URL names the image's bytes)."""
    return [img.url for el in at.get("image") for img in el.proto.imgs]


def _labelled(widgets, label: str):
    (w,) = [w for w in widgets if w.label == label]
    return w


def _metric(at, label_start: str) -> str:
    (m,) = [m for m in at.metric if m.label.startswith(label_start)]
    return m.value


# ----------------------------------------------------------------------------- Compare


def test_compare_grids_state_normalisation_and_follow_the_choice():
    at = _open("pages/compare.py")
    caption = next(c.value for c in at.caption if c.value.startswith("Methods:"))
    assert "joint" in caption and "one scale" in caption
    grid = _images(at)[:4]
    assert len(set(grid)) == 4  # Grad-CAM, counterfactual, Guided Backprop, Guided Grad-CAM

    at.radio(key="compare_mode").set_value("Classes").run()
    box = _labelled(at.multiselect, "Classes")
    assert len(box.value) == 4  # the top-4 classes by default
    box.set_value([1, 5]).run()  # square, hexagon
    box = _labelled(at.multiselect, "Classes")
    classes = _images(at)[:2]
    assert classes[0] != classes[1]  # the overlay for class c differs from class d
    at.radio(key="compare_norm").set_value("per_map").run()
    assert not at.exception
    assert any(c.value.startswith("Classes:") and "per map" in c.value for c in at.caption)
    assert _images(at)[:2] != classes  # per map rescales the weaker class's map

    at.radio(key="compare_mode").set_value("Layers").run()
    assert not at.exception
    assert any(c.value.startswith("Layers:") for c in at.caption)
    at.radio(key="compare_mode").set_value("Models").run()
    assert not at.exception
    model_box = at.multiselect(key="compare_models_shapes-resnet")
    assert set(model_box.value) == {"shapes-resnet", "shapes-fc", "shapes-weak", "shapes-biased"}
    assert len(at.get("download_button")) == 6  # grid and pair: PNG, arrays, settings


@pytest.mark.parametrize("scene", ["pair: square + hexagon", "triangle"])
def test_two_models_agreement_figures_match_the_library(scene):
    at = _open("pages/compare.py", scene=scene)
    at.selectbox(key="compare_pair_model_shapes-resnet").set_value("shapes-weak").run()
    assert not at.exception
    _, _, cap_a = _capture("shapes-resnet", scene)
    _, _, cap_b = _capture("shapes-weak", scene)
    cls = int(cap_a.output.argmax())
    a = cap_a.explain("gradcam", cls).attribution
    b = cap_b.explain("gradcam", cls).attribution
    assert _metric(at, "Rank correlation") == f"{agreement.rank_correlation(a, b):.3f}"
    assert _metric(at, "IoU of top-15%") == f"{agreement.top_region_iou(a, b, 0.15):.3f}"
    assert _metric(at, "Same top-1") == ("yes" if int(cap_b.output.argmax()) == cls else "no")
    at.slider(key="compare_pair_fraction").set_value(30).run()
    assert _metric(at, "IoU of top-30%") == f"{agreement.top_region_iou(a, b, 0.30):.3f}"


# ----------------------------------------------------------------------------- Counterfactual


def _claims(at) -> str:
    return next(m.value for m in at.markdown if "claims that masking" in m.value)


@pytest.mark.parametrize("baseline", ["mean", "blur"])
def test_counterfactual_masking_moves_the_score_the_claimed_way(baseline):
    scene = "triangle, matching corner mark"
    at = _open("pages/counterfactual.py", scene=scene)
    at.radio(key="cf_baseline").set_value(baseline).run()
    assert not at.exception
    loaded, x, cap = _capture("shapes-resnet", scene)
    cls = int(cap.output.argmax())
    y = float(cap.output[0, cls])
    gc = cap.explain("gradcam", cls).attribution
    cf = cap.explain("counterfactual", cls).attribution
    out = masking.masked_outputs(loaded.model, x, [agreement.top_region(gc), agreement.top_region(cf)], baseline)
    text = _claims(at)
    # the page shows the library's numbers, and on this scene both claims hold
    assert f"moved {out[0, cls] - y:+.3f} (logit {y:.3f}" in text
    assert f"moved {out[1, cls] - y:+.3f}" in text
    assert out[0, cls] < y - 1.0 and out[1, cls] > y
    assert text.count("the claim held") == 2
    spec = at.get("plotly_chart")[0].proto.spec
    assert '"Grad-CAM region masked"' in spec


def test_counterfactual_region_of_a_confident_class_is_smaller_evidence_than_gradcam():
    """Across the gallery, masking the Grad-CAM region lowers the top class's logit far more than
    masking the counterfactual region (the ground truth of what each map claims)."""
    loaded = model_zoo.load("shapes-resnet")
    drops = []
    for _, scene in gallery():
        x = loaded.preprocess(scene.pil()).unsqueeze(0)
        cap = explainers.Capture(loaded.model, x)
        c = int(cap.output.argmax())
        masks = [agreement.top_region(cap.explain(m, c).attribution) for m in ("gradcam", "counterfactual")]
        out = masking.masked_outputs(loaded.model, x, masks)
        drops.append((float(cap.output[0, c]) - out[0, c], float(cap.output[0, c]) - out[1, c]))
    drops = np.array(drops)
    assert (drops[:, 0] > drops[:, 1]).mean() >= 0.9
    assert np.median(drops[:, 0]) > 2.0 and np.median(drops[:, 1]) < 0.2


def test_contrast_why_a_rather_than_b():
    scene = "pair: square + hexagon"
    at = _open("pages/counterfactual.py", scene=scene)
    _labelled(at.selectbox, "A").set_value(1).run()  # square
    _labelled(at.selectbox, "B").set_value(5).run()  # hexagon
    assert not at.exception
    _, _, cap = _capture("shapes-resnet", scene)
    margin = float(cap.output[0, 1] - cap.output[0, 5])
    assert any(f"(margin {margin:+.3f})" in c.value for c in at.caption)
    ab = cap.explain("gradcam", explainers.Contrast(1, 5)).attribution
    ba = cap.explain("gradcam", explainers.Contrast(5, 1)).attribution
    scene_objects = {o.name: o.mask for o in _scene(scene).objects}
    # "square rather than hexagon" peaks on the square, the reverse on the hexagon
    assert scene_objects["square"].ravel()[ab.argmax()] and scene_objects["hexagon"].ravel()[ba.argmax()]
    pictures = _images(at)
    assert len(set(pictures[-2:])) == 2
    _labelled(at.selectbox, "B").set_value(1).run()
    assert any("Pick two different classes" in i.value for i in at.info)


# ----------------------------------------------------------------------------- How it works


def test_how_it_works_shows_the_live_weights_and_the_sum():
    at = _open("pages/how_it_works.py", scene="hexagon")
    _, _, cap = _capture("shapes-resnet", "hexagon")
    cls = int(cap.output.argmax())
    e = cap.explain("gradcam", cls)
    spec = at.get("plotly_chart")[0].proto.spec
    order = np.argsort(-np.abs(e.weights))[:8]
    import json
    fig = json.loads(spec)
    shown = fig["data"][0]["x"]
    assert shown == [f"k={k}" for k in order]
    text = next(m.value for m in at.markdown if "largest difference" in m.value)
    diff = float(text.split("largest difference of **")[1].split("**")[0])
    assert diff < 1e-5
    # the sum of alpha_k A^k, recomputed here from the activation, is the library's map
    acts = cap.activation[0].numpy()
    assert np.allclose(np.maximum((e.weights[:, None, None] * acts).sum(0), 0), e.layer_map, atol=1e-5)
    at.slider(key="how_channels").set_value(16).run()
    assert not at.exception
    assert len(json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["x"]) == 16
    assert len(at.get("download_button")) == 3


def test_every_explaining_page_offers_downloads_and_names_its_normalisation():
    for page in ("pages/explore.py", "pages/compare.py", "pages/counterfactual.py", "pages/how_it_works.py"):
        at = _open(page)
        assert len(at.get("download_button")) >= 3, page
        text = " ".join(c.value for c in at.caption) + " ".join(m.value for m in at.markdown)
        assert "per map" in text or "joint" in text, page


def test_pages_without_an_image_ask_for_one():
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120).run()
    at.radio(key="image_source").set_value("Upload").run()
    for page in ("pages/compare.py", "pages/counterfactual.py", "pages/how_it_works.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert any("upload an image in the sidebar" in i.value for i in at.info), page


def test_evaluate_page_runs_with_a_progress_bar_and_offers_the_report():
    at = _open("pages/evaluate.py")
    assert any("About 1 s per image" in c.value for c in at.caption)  # nothing runs before the button
    at.number_input(key="eval_n").set_value(3).run()
    at.multiselect(key="eval_methods").set_value(["gradcam", "counterfactual", "random"]).run()
    at.select_slider(key="eval_steps").set_value(8).run()
    at.button(key="eval_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["method"]) == ["gradcam", "counterfactual", "random"]
    import evaluation
    loaded = model_zoo.load("shapes-resnet")
    expected = evaluation.evaluate(loaded, evaluation.shapes(3, 20000), ["gradcam", "counterfactual", "random"],
                                   tolerance=4, steps=8)
    for m in ("gradcam", "counterfactual"):  # the random baseline's noise is seeded the same way too
        row = table[table["method"] == m].iloc[0]
        for k, v in expected["methods"][m].items():
            assert row[k] == pytest.approx(round(v, 3), abs=1e-9), (m, k)
    assert len(at.get("plotly_chart")) == 3
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Report (JSON)", "Report (CSV)"]
    at.selectbox(key="eval_metric").set_value("pointing").run()  # no second run: the report is kept
    assert not at.exception and at.dataframe[0].value.equals(table)

