"""Compare, Counterfactual and How it works through AppTest: widgets set, numbers on screen
checked against the library computed independently."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import explainers
import model_zoo
from explainers import agreement, masking
from model_zoo.shapes import gallery
from tests.conftest import open_dashboard

ROOT = Path(__file__).resolve().parents[2]


def _open(page: str, scene: str | None = None, model: str | None = None) -> AppTest:
    at = open_dashboard(120, model or "shapes-resnet")
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
    assert "Joint scaling applies across one method's maps" in caption
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert captions[0] == "The image, as the model sees it"  # the on-screen grid has the image panel
    grid = _images(at)[1:5]
    assert len(set(grid)) == 4  # Grad-CAM, counterfactual, Guided Backprop, Guided Grad-CAM
    # across methods each CAM keeps its own scale (Grad-CAM went dark beside Score-CAM): joint and
    # per-map paint Grad-CAM and the counterfactual alike
    at.radio(key="compare_norm").set_value("per_map").run()
    assert _images(at)[1:3] == grid[:2]
    at.radio(key="compare_norm").set_value("joint").run()

    at.radio(key="compare_mode").set_value("Classes").run()
    box = _labelled(at.multiselect, "Classes")
    assert len(box.value) == 4  # the top-4 classes by default
    box.set_value([1, 5]).run()  # square, hexagon
    box = _labelled(at.multiselect, "Classes")
    classes = _images(at)[1:3]
    assert classes[0] != classes[1]  # the overlay for class c differs from class d
    at.radio(key="compare_norm").set_value("per_map").run()
    assert not at.exception
    assert any(c.value.startswith("Classes:") and "per map" in c.value for c in at.caption)
    assert _images(at)[1:3] != classes  # per map rescales the weaker class's map

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
    scene = "pair: triangle + ellipse"  # the other object is the evidence against the top class
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
    # the masked pictures are the inputs the model saw (the blur of explainers.masking, not another)
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert sum("region masked (what the model saw)" in c for c in captions) == 2
    from ui import cache
    masks = (agreement.top_region(gc), agreement.top_region(cf))
    logits, pictures = cache.masked_logits("shapes-resnet", "test", loaded.preprocess.picture(x), masks,
                                           f"test/{baseline}", baseline)
    batch = masking.masked_inputs(x, list(masks), baseline)
    np.testing.assert_allclose(logits, out, rtol=1e-5)
    for picture, row in zip(pictures, batch):
        np.testing.assert_array_equal(picture, loaded.preprocess.picture(row))
    if baseline == "blur":  # the old picture (a PIL down-and-up resize) was another blur than the model's
        region = masks[0]
        assert np.abs(pictures[0][region].astype(int) - loaded.preprocess.picture(x)[region].astype(int)).max() > 0


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
    assert len(at.get("download_button")) == 4  # the figure, alpha_k, the settings, the layer map


def test_every_explaining_page_offers_downloads_and_names_its_normalisation():
    for page in ("pages/explore.py", "pages/compare.py", "pages/counterfactual.py", "pages/how_it_works.py"):
        at = _open(page)
        assert len(at.get("download_button")) >= 3, page
        text = " ".join(c.value for c in at.caption) + " ".join(m.value for m in at.markdown)
        assert "per map" in text or "joint" in text, page


def test_pages_without_an_image_ask_for_one():
    at = open_dashboard(120)
    at.radio(key="image_source").set_value("Upload").run()
    for page in ("pages/compare.py", "pages/counterfactual.py", "pages/how_it_works.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert any("upload an image in the sidebar" in i.value for i in at.info), page


def test_evaluate_page_runs_with_a_progress_bar_and_offers_the_report():
    from ui import evaluation as runner
    runner._timings.clear()
    calls = []
    real = runner.evaluation.evaluate
    runner.evaluation.evaluate = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        at = _open("pages/evaluate.py")
        # no evaluation runs before the button (it timed one image with 17 methods: 48.8 s): the
        # estimate comes from the methods' pass counts and two timed passes
        assert calls == []
        (estimate,) = [c.value for c in at.caption if c.value.startswith("Estimated")]
        assert "forward and" in estimate and "a run replaces this with its own time" in estimate
        assert not at.dataframe
    finally:
        runner.evaluation.evaluate = real
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



def test_evaluate_compares_the_metrics_when_asked_and_the_panel_is_the_librarys():
    """Issue 31: the metric-agreement panel runs on its own button; its ranks, heat map and
    sentence are concordance.panel's on the same scenes; the evaluation report then carries it."""
    import evaluation
    from evaluation import concordance
    at = _open("pages/evaluate.py")
    at.number_input(key="eval_n").set_value(2).run()
    methods = ["gradcam", "finercam", "centre"]
    at.multiselect(key="eval_methods").set_value(methods).run()
    assert not at.dataframe and not at.get("plotly_chart")  # nothing runs before a button
    assert any("explanations for 2 images and 3 methods" in c.value for c in at.caption)
    at.button(key="agree_run").click().run()
    assert not at.exception and not at.error
    loaded = model_zoo.load("shapes-resnet")
    expected = concordance.panel(concordance.score_images(loaded, evaluation.shapes(2, 20000), methods, tolerance=4))
    shown = at.dataframe[0].value
    assert list(shown["method"]) == methods
    for name in expected["metrics"]:
        title = concordance.METRICS[name].title
        for m in methods:
            r = expected["rankings"][name][m]
            assert shown[shown["method"] == m].iloc[0][title] == f"{r['rank']:g} ({r['low']:g}-{r['high']:g})"
    said = [w.value for w in (*at.warning, *at.success)]
    assert expected["sentence"] in said
    assert len(at.get("plotly_chart")) == 1  # the tau heat map
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Agreement (JSON)", "Agreement (Markdown)"]
    # the evaluation of the same scenes and methods carries the panel in its report, and says so
    from ui import evaluation as runner
    carried = "The JSON report includes the metric-agreement panel of these scenes and methods (below)."
    at.select_slider(key="eval_steps").set_value(8).run()
    at.button(key="eval_run").click().run()
    assert not at.exception and carried in [c.value for c in at.caption]
    at.number_input(key="eval_seed").set_value(20001).run()  # other scenes: not the same panel
    at.button(key="eval_run").click().run()
    assert not at.exception and carried not in [c.value for c in at.caption]
    report = {"model": "shapes-resnet", "data": "shapes:single", "methods": dict.fromkeys(methods), "images": 2,
              "world_seed": 20000, "settings": {"tolerance_px": 4}}
    state = {runner._agreement_key("shapes-resnet", "shapes:single", tuple(methods), 2, 20000, 4.0): "kept"}
    assert runner.agreement_for(report, state) == "kept"
    assert runner.agreement_for({**report, "world_seed": 20001}, state) is None


def test_evaluate_keeps_its_settings_and_result_when_you_come_back():
    at = _open("pages/evaluate.py")
    at.number_input(key="eval_n").set_value(2).run()
    at.multiselect(key="eval_methods").set_value(["gradcam", "centre"]).run()
    at.select_slider(key="eval_steps").set_value(8).run()
    at.button(key="eval_run").click().run()
    table = at.dataframe[0].value
    at.switch_page("pages/explore.py").run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    assert at.number_input(key="eval_n").value == 2 and at.multiselect(key="eval_methods").value == ["gradcam", "centre"]
    assert at.dataframe and at.dataframe[0].value.equals(table)  # the result, without a second run
    at.number_input(key="eval_n").set_value(5).run()  # new settings: the estimate comes from that run
    (estimate,) = [c.value for c in at.caption if c.value.startswith("Estimated")]
    assert "the last run of these settings here" in estimate and "for 2 images" in estimate
    assert any("Showing your last result" in i.value for i in at.info)


def test_choices_carry_across_pages():
    at = _open("pages/explore.py", scene="pair: ellipse + square")
    names = model_zoo.load("shapes-resnet").categories
    at.selectbox(key="explore_layer_shapes-resnet").set_value("layer2").run()
    other = names.index("square")
    (cls,) = [w for w in at.selectbox if w.key.startswith("explore_class_")]
    cls.set_value(other).run()
    at.selectbox(key="explore_cmap").set_value("viridis").run()
    at.slider(key="explore_alpha").set_value(0.8).run()
    for page, layer_key, class_prefix in (("pages/counterfactual.py", "cf_layer_shapes-resnet", "cf_class_"),
                                          ("pages/how_it_works.py", "how_layer_shapes-resnet", "how_class_")):
        at.switch_page(page).run()
        assert not at.exception
        assert at.selectbox(key=layer_key).value == "layer2", page
        (cls,) = [w for w in at.selectbox if w.key.startswith(class_prefix) and w.label != "B" and w.label != "A"]
        assert cls.value == other, page
    assert at.slider(key="how_channels")  # the page drew
    at.switch_page("pages/counterfactual.py").run()
    assert at.slider(key="cf_alpha").value == 0.8
    at.switch_page("pages/explore.py").run()
    assert at.selectbox(key="explore_cmap").value == "viridis" and at.slider(key="explore_alpha").value == 0.8
    assert "at layer `layer2`" in " ".join(c.value for c in at.caption)


def test_faint_map_is_flagged_under_per_map_normalisation():
    """On the confident semicircle the counterfactual map peaks at under 1% of Grad-CAM's:
    per-map normalisation would paint it in full colour, so the page says so."""
    at = _open("pages/explore.py", scene="semicircle")
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("Counterfactual peaks at") and "of the largest map beside it" in warning
    loaded, x, cap = _capture("shapes-resnet", "semicircle")
    c = int(cap.output.argmax())
    ratio = cap.explain("counterfactual", c).layer_map.max() / cap.explain("gradcam", c).layer_map.max()
    assert f"{ratio:.1%} of the largest" in warning
    at = _open("pages/explore.py", scene="circle")
    assert not at.warning  # a map with evidence is not flagged


def test_how_it_works_explains_a_share_above_100_percent():
    at = _open("pages/how_it_works.py", scene="triangle")
    at.selectbox(key="how_layer_shapes-resnet").set_value("layer1").run()
    at.slider(key="how_channels").set_value(16).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    share = int(text.split("The 16 channels shown carry **")[1].split("%")[0])
    assert share > 100
    (why,) = [c.value for c in at.caption if c.value.startswith("Why more than 100%")]
    loaded, x, cap = _capture("shapes-resnet", "triangle", layer="layer1")
    e = cap.explain("gradcam", int(cap.output.argmax()))
    contrib = (e.weights[:, None, None] * cap.activation[0].numpy()).sum((1, 2))
    assert f"take {contrib[contrib < 0].sum():+.3f} away" in why


def test_layer_names_show_no_private_class_names():
    at = _open("pages/explore.py")
    options = at.selectbox(key="explore_layer_shapes-resnet").options
    assert options and not [o for o in options if "(_" in o], options
    assert any("ResidualBlock" in o for o in options)


def test_sidebar_says_what_the_model_is_and_what_it_sees():
    at = _open("pages/explore.py")
    captions = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("Shapes ResNet (GAP): residual CNN with global average pooling") for c in captions)
    assert "What shapes-resnet sees: 64 x 64, used as is." in captions
    at.radio(key="image_source").set_value("Upload").run()
    assert any("knows eight synthetic shapes" in c.value for c in at.sidebar.caption)
    big = Image.fromarray(_scene("circle").image).resize((128, 96))
    import io
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    at.file_uploader(key="upload").set_value(("wide [x](http://evil.example).png", buf.getvalue(), "image/png")).run()
    assert not at.exception
    captions = [c.value for c in at.sidebar.caption]
    assert "What shapes-resnet sees: 128 x 96 -> resized to 85 x 64 (shorter side 64 px) -> centre-cropped " \
           "to 64 x 64 (cuts 21 px of the width)." in captions
    rendered = [e.value for kind in ("caption", "markdown", "info", "error", "warning") for e in getattr(at, kind)]
    assert not [v for v in rendered if "](http://evil.example)" in v]  # a file name is never a live link


def test_serving_config_watches_no_files():
    import tomllib
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none" and config["server"]["runOnSave"] is False


def test_two_widgets_bound_to_one_choice_follow_the_one_changed():
    """Compare draws two download-size sliders (grid and pair) bound to one preference: changing
    the second must not be undone by the first, and the choice carries to Explore."""
    at = _open("pages/compare.py")
    at.select_slider(key="compare_pair_dl_size").set_value(1024).run()
    assert at.select_slider(key="compare_pair_dl_size").value == 1024
    assert at.select_slider(key="compare_dl_size").value == 1024
    at.select_slider(key="compare_dl_size").set_value(256).run()
    assert at.select_slider(key="compare_pair_dl_size").value == 256
    at.switch_page("pages/explore.py").run()
    assert at.select_slider(key="dl_size").value == 256


def test_compare_methods_grid_covers_every_method():
    at = _open("pages/compare.py")
    box = at.multiselect(key="compare_m_methods")
    cnn = [m for m in explainers.method_names() if not explainers.get_method(m).transformers_only]  # not LeGrad
    assert box.options == [explainers.get_method(m).title for m in cnn]
    before = len(_images(at))
    box.set_value(["gradcam", "gradcam_pp", "layercam", "eigencam", "integrated_gradients", "ablationcam"]).run()
    assert not at.exception
    info = " ".join(i.value for i in at.info)
    assert "Integrated Gradients**: 32 forwards and backwards" in info and "Ablation-CAM**" in info
    assert any("Not class-discriminative: Eigen-CAM" in c.value for c in at.caption)
    shown = len(_images(at))
    at.button(key="compare_heavy_run").click().run()
    assert not at.exception
    assert len(_images(at)) == shown + 2 and shown >= before
    assert any("Methods:" in c.value for c in at.caption)
    # the maps replace the box that asked for them (it stayed on screen after the run)
    assert not any("not run yet" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "compare_heavy_run"]


def test_measured_times_keep_their_digits():
    """Compare's cost line read "a backward 0.0 ms" for a shapes model's 0.04 ms backward."""
    from ui.views import duration
    assert [duration(s) for s in (0.00004, 0.0015, 2.345, 0.0)] == ["0.04 ms", "1.5 ms", "2.3 s", "under 0.01 ms"]
