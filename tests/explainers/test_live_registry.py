"""The method registry is read at call time: a method registered after start-up (a plugin's)
appears in every front end: the pickers of Explore, Compare, Evaluate and the study designer, the
command line, the evaluation and the study designs. Baselines are entries of their own kind."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import explainers
from explainers import cams, methods

SECRET = "s3cret-admin"


def _abs_gradcam(job):
    """Grad-CAM with |alpha| (a made-up method whose map is hand-checkable from Grad-CAM's)."""
    alpha, cam = cams.gradcam(job.layer_grads(), job.acts)
    alpha = alpha.abs()
    cam = torch.relu((alpha[..., None, None] * job.acts.unsqueeze(0)).sum(2))
    return alpha, cam, None


LATE = explainers.Method("abs_gradcam", "Abs Grad-CAM", "layer map", True, "the kept forward + 1 backward (head)",
                         "a test", _abs_gradcam, lambda c, s, o: explainers.Cost(0, 1))
LATE_BASELINE = explainers.Method("corner", "Corner", "baseline", False, "none", "a test",
                                  lambda job: (None, None, torch.zeros(job.k, job.cap._n, *job.cap.size)),
                                  lambda c, s, o: explainers.Cost(0, 0), needs_layer=False)


@pytest.fixture
def late():
    """Registers the two entries for one test and removes them after (the registry is the process's)."""
    explainers.register_method(LATE)
    explainers.register_method(LATE_BASELINE)
    yield LATE
    methods._REGISTRY.pop(LATE.name, None)
    methods._REGISTRY.pop(LATE_BASELINE.name, None)


def test_a_late_method_is_listed_and_computed_by_the_library(late):
    assert "abs_gradcam" in explainers.method_names() and "corner" not in explainers.method_names()
    assert explainers.method_names("baseline")[-1] == "corner"
    import model_zoo
    loaded = model_zoo.load("shapes-resnet")
    x = torch.randn(1, 3, 64, 64)
    got = explainers.explain(loaded.model, x, method="abs_gradcam", target=0)
    ref = explainers.explain(loaded.model, x, method="gradcam", target=0)
    np.testing.assert_allclose(got.weights, np.abs(ref.weights), rtol=1e-5)


def test_a_late_method_reaches_the_cli_and_the_evaluation(late, tmp_path, capsys):
    from cli.explain import main
    import evaluation
    import model_zoo
    from model_zoo.shapes import make_scene

    assert main(["--list-methods"]) == 0
    assert "abs_gradcam" in capsys.readouterr().out
    scene = make_scene(3, 0)
    Image.fromarray(scene.image).save(tmp_path / "s.png")
    out = tmp_path / "out"
    assert main([str(tmp_path / "s.png"), "--model", "shapes-resnet", "--method", "abs_gradcam",
                 "--out", str(out)]) == 0
    assert any("abs_gradcam" in p.name for p in out.rglob("*"))
    assert evaluation.all_methods()[-3:] == ["random", "centre", "corner"]
    report = evaluation.evaluate(model_zoo.load("shapes-resnet"), evaluation.shapes(2, 20000),
                                 ["abs_gradcam", "corner"], steps=4)
    assert list(report["methods"]) == ["abs_gradcam", "corner"]
    json.dumps(report["methods"])  # plain numbers


def test_a_late_method_reaches_every_picker_and_the_study_designs(late, tmp_path, monkeypatch):
    from studies.design import DesignError, StudyDesign
    from tests.conftest import open_dashboard

    StudyDesign("discrimination", "t", ("shapes-resnet",), methods=("abs_gradcam",)).check()  # a design may use it
    with pytest.raises(DesignError, match="unknown: corner"):
        StudyDesign("discrimination", "t", ("shapes-resnet",), methods=("corner",)).check()
    at = open_dashboard()
    assert "Abs Grad-CAM" in at.selectbox(key="explore_method").options
    at.switch_page("pages/compare.py").run()
    assert "Abs Grad-CAM" in at.multiselect(key="compare_m_methods").options
    at.switch_page("pages/evaluate.py").run()
    options = at.multiselect(key="eval_methods").options
    assert "abs_gradcam" in options and "corner" in options  # baselines are scored here, not offered elsewhere
    monkeypatch.setenv("STUDIO_ADMIN_SECRET", SECRET)
    monkeypatch.setenv("STUDIO_DB_URL", f"sqlite:///{tmp_path / 'studies.sqlite'}")
    at.switch_page("pages/study_designer.py").run()
    at.text_input(key="admin_secret_input").set_value(SECRET).run()
    box = at.multiselect(key="design_methods")
    assert "Abs Grad-CAM" in box.options and "Corner" not in box.options


def test_baselines_are_entries_of_their_own_kind():
    random, centre = explainers.get_method("random"), explainers.get_method("centre")
    assert random.kind == centre.kind == "baseline" and not random.class_discriminative
    assert explainers.method_names("baseline") == ["random", "centre"]
    x = torch.zeros(1, 3, 8, 12)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    c = explainers.explain(net, x, method="centre", target=0).attribution
    assert c.shape == (8, 12) and c.argmax() in (3 * 12 + 5, 3 * 12 + 6, 4 * 12 + 5, 4 * 12 + 6)
    np.testing.assert_allclose(c[0, 0], np.exp(-((3.5 ** 2 + 5.5 ** 2) / (2 * 2.0 ** 2))), rtol=1e-6)
    r1 = explainers.explain(net, x, method="random", target=[0, 1], seed=4)
    r2 = explainers.explain(net, x, method="random", target=[0, 1], seed=4)
    np.testing.assert_array_equal(r1[1].attribution, r2[1].attribution)
    assert not np.array_equal(r1[0].attribution, r1[1].attribution)


def test_the_paper_tag_names_the_four_maps_in_order():
    assert explainers.method_names(tag=explainers.PAPER) == ["gradcam", "counterfactual", "guided_backprop",
                                                             "guided_gradcam"]


def test_the_wrapping_field_replaces_the_name_test():
    """A second wrapping method (any name) is refused as SmoothGrad's base, and its base's layer
    need is honoured: the rule follows the field, not the name "smoothgrad"."""
    smooth = explainers.get_method("smoothgrad")
    twin = explainers.Method("smooth_twin", "Twin", "pixel map", True, "", "a test", smooth.compute, smooth.cost_of,
                             needs_layer=False, per_channel=True, options=dict(smooth.options), wraps="base")
    explainers.register_method(twin)
    try:
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                  torch.nn.Flatten()).eval()
        x = torch.randn(1, 3, 8, 8)
        with pytest.raises(ValueError, match="smoothgrad cannot wrap smooth_twin"):
            explainers.explain(net, x, method="smoothgrad", base="smooth_twin")
        e = explainers.explain(net, x, method="smooth_twin", base="gradcam", samples=2, target=0)
        assert e.attribution.shape == (8, 8)  # the base's layer was found, as for smoothgrad
        with pytest.raises(ValueError, match="wraps the method named by its option 'inner'"):
            explainers.Method("bad", "Bad", "pixel map", True, "", "", smooth.compute, smooth.cost_of, wraps="inner")
    finally:
        methods._REGISTRY.pop("smooth_twin", None)
