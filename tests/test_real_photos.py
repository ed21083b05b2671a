"""The ImageNet path with real weights, end to end: efficientnet-lite0 on scikit-image's photos
and the cat beside the espresso, through the library and the pages the app opens on. Ground
truth: the hand-drawn boxes of model_zoo/photos/boxes.json."""
import json

import numpy as np
import pytest
from PIL import Image

import explainers
import model_zoo
from evaluation import photos as photo_eval
from explainers import agreement, masking
from model_zoo import photos
from tests.conftest import open_dashboard

MODEL = "efficientnet-lite0"


@pytest.fixture(scope="module")
def lite():
    return model_zoo.load(MODEL, download=False)


@pytest.fixture(scope="module")
def rows(lite):
    return photo_eval.pointing_rows(lite)


def test_the_top_class_grad_cam_peaks_in_its_box_on_every_photo(rows):
    """The paper's pointing (15 px at 224 px) on each photo whose top class names a boxed object."""
    singles = [r for r in rows if r["photo"] != photos.COMPOSITE]
    assert {r["photo"] for r in singles} == {"chelsea", "coffee", "astronaut", "rocket"}
    for r in singles:
        assert r["hit"]["gradcam"] and r["hit"]["guided_gradcam"], r


def test_the_composite_discriminates_the_cat_from_the_espresso(rows, lite):
    """Grad-CAM and Guided Grad-CAM of the cat classes sit on the cat, of espresso on the cup:
    each peaks in its own object's box, and more of each map lies on its own tile than on the
    other's."""
    comp = {r["object"]: r for r in rows if r["photo"] == photos.COMPOSITE}
    assert comp["cat"]["class_name"] in ("tabby", "tiger cat", "Egyptian cat")
    assert comp["cup"]["class_name"] == "espresso"
    for obj in ("cat", "cup"):
        for method in ("gradcam", "guided_gradcam"):
            assert comp[obj]["hit"][method], (obj, method, comp[obj]["peak"][method], comp[obj]["box"])
    p = photos.photo(photos.COMPOSITE)
    view, x = lite.preprocess.prepare(Image.fromarray(p.image))
    cap = explainers.Capture(lite.model, x[None], layer=lite.default_layer, pixels=True)
    half = view.shape[1] // 2  # the cat's tile on the left, the cup's on the right
    for obj, own in (("cat", slice(0, half)), ("cup", slice(half, None))):
        other = slice(half, None) if obj == "cat" else slice(0, half)
        for method in ("gradcam", "guided_gradcam"):
            a = cap.explain(method, comp[obj]["class"]).attribution
            a = np.abs(a).sum(0) if a.ndim == 3 else a
            assert a[:, own].sum() > 1.5 * a[:, other].sum(), (obj, method)


def test_the_readme_table_is_what_the_command_prints(rows):
    """README.md's real-photo table is `python -m cli.evaluate photos` as it prints today."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert photo_eval.markdown(rows) in readme


@pytest.fixture(scope="module")
def app():
    """The app as a new user opens it: no model or image chosen."""
    at = open_dashboard(180, model=None)
    assert not at.exception
    return at


@pytest.mark.slow
def test_the_app_opens_on_the_composite_with_the_real_model(app, lite):
    assert app.selectbox(key="model").value == MODEL
    assert app.selectbox(key="photo").value == photos.COMPOSITE
    assert any("CC0" in c.value for c in app.sidebar.caption)  # the photos' credits and licences
    p = photos.photo(photos.COMPOSITE)
    view, x = lite.preprocess.prepare(Image.fromarray(p.image))
    top = int(explainers.Capture(lite.model, x[None], layer=lite.default_layer).output.argmax())
    assert any(f"Explaining **{lite.categories[top]}**" in c.value for c in app.caption)
    captions = [c.value for c in app.caption]
    for start in ("Where the evidence for", "What speaks against", "The fine edges", "Guided Backprop's detail"):
        assert any(c.startswith(start) for c in captions), start
    assert any(c.startswith(f"Where the evidence for *{lite.categories[top]}*") for c in captions)
    assert len(app.get("image")) >= 5  # the image and the paper's four maps
    (picker,) = [s for s in app.selectbox if s.label == "Class to explain"]
    assert picker.value == top


@pytest.mark.slow
def test_counterfactual_page_checks_its_claims_by_masking_on_the_composite(app, lite):
    """As on the shapes world: masking the Grad-CAM region lowers the class's logit, masking the
    counterfactual region raises it; the page shows the library's numbers."""
    app.switch_page("pages/counterfactual.py").run()
    assert not app.exception
    p = photos.photo(photos.COMPOSITE)
    view, x = lite.preprocess.prepare(Image.fromarray(p.image))
    x = x[None]
    cap = explainers.Capture(lite.model, x, layer=lite.default_layer)
    cls = int(cap.output.argmax())
    y = float(cap.output[0, cls])
    masks = [agreement.top_region(cap.explain(m, cls).attribution) for m in ("gradcam", "counterfactual")]
    baseline = app.radio(key="cf_baseline").value
    out = masking.masked_outputs(lite.model, x, masks, baseline)
    text = next(m.value for m in app.markdown if "claims that masking" in m.value)
    assert f"moved {out[0, cls] - y:+.3f} (logit {y:.3f}" in text
    assert f"moved {out[1, cls] - y:+.3f}" in text
    assert out[0, cls] < y - 1.0 and out[1, cls] > y
    assert text.count("the claim held") == 2


@pytest.mark.slow
def test_how_it_works_recomputes_the_map_of_the_real_model(app, lite):
    app.switch_page("pages/how_it_works.py").run()
    assert not app.exception
    text = next(m.value for m in app.markdown if "largest difference" in m.value)
    assert float(text.split("largest difference of **")[1].split("**")[0]) < 1e-4
    p = photos.photo(photos.COMPOSITE)
    _, x = lite.preprocess.prepare(Image.fromarray(p.image))
    cap = explainers.Capture(lite.model, x[None], layer=lite.default_layer)
    e = cap.explain("gradcam", int(cap.output.argmax()))
    order = np.argsort(-np.abs(e.weights))[:8]
    assert json.loads(app.get("plotly_chart")[0].proto.spec)["data"][0]["x"] == [f"k={k}" for k in order]


@pytest.mark.slow
@pytest.mark.parametrize("page", ["pages/explore.py", "pages/compare.py", "pages/counterfactual.py",
                                  "pages/how_it_works.py", "pages/evaluate.py", "pages/mistakes.py",
                                  "pages/adversarial.py", "pages/neurons.py"])
def test_every_page_that_takes_a_classifier_runs_on_the_real_model(app, page):
    app.switch_page(page).run()
    assert not app.exception, app.exception
    assert app.selectbox(key="model").value == MODEL
    if page == "pages/evaluate.py":  # ground truth lives in the shapes world: one click away
        assert any("shapes world" in i.value for i in app.info)
        assert any(b.label.startswith("Use shapes-resnet") for b in app.button)


@pytest.mark.slow
def test_the_shapes_world_is_one_click_away(app):
    """(Last: it changes the shared app's model.) Where ground truth is needed, one click."""
    app.switch_page("pages/evaluate.py").run()
    next(b for b in app.button if b.label.startswith("Use shapes-resnet")).click().run()
    assert not app.exception
    assert app.selectbox(key="model").value == "shapes-resnet"
    assert app.selectbox(key="gallery").value == "circle"
    assert not any("shapes world" in i.value for i in app.info)  # the page itself now runs
