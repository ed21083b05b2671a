"""The evaluation on the shapes world with the shipped models: Grad-CAM beats the random and
centre baselines on pointing and localisation; the counterfactual map points away from the
evidence; the sanity check separates Guided Backprop from Grad-CAM; the CLI writes its files;
model-dependent metrics on hand-checkable cases."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import model_zoo
from evaluation import data, perturb, run, sanity
from cli.evaluate import main

pytestmark = pytest.mark.slow  # full evaluation runs on the shipped models


@pytest.fixture(scope="module")
def report():
    loaded = model_zoo.load("shapes-resnet")
    return run.evaluate(loaded, data.shapes(16, seed=20000), tolerance=4, steps=16, stride=8)


def test_gradcam_beats_both_baselines(report):
    m = report["methods"]
    for baseline in ("random", "centre"):
        assert m["gradcam"]["pointing"] > m[baseline]["pointing"] + 0.2
        assert m["gradcam"]["localisation_error_top1"] < m[baseline]["localisation_error_top1"]
        assert m["gradcam"]["gt_known_localisation_accuracy"] > m[baseline]["gt_known_localisation_accuracy"]
        assert m["gradcam"]["pointing_recall_aware"] > m[baseline]["pointing_recall_aware"]
    assert m["gradcam"]["pointing"] >= 0.9
    assert m["gradcam"]["deletion_auc"] < m["random"]["deletion_auc"]
    assert m["gradcam"]["insertion_auc"] > m["random"]["insertion_auc"]
    assert m["gradcam"]["faithfulness_spearman"] > m["random"]["faithfulness_spearman"] + 0.2


def test_counterfactual_points_away_from_the_evidence(report):
    m = report["methods"]
    assert m["counterfactual"]["pointing"] <= 0.25 < m["gradcam"]["pointing"]
    assert m["counterfactual"]["faithfulness_spearman"] < 0  # anti-correlated with occlusion
    assert m["counterfactual"]["deletion_auc"] > m["gradcam"]["deletion_auc"]


def test_the_variants_claims_in_the_readme(report):
    m = report["methods"]
    for variant in ("xgradcam", "hirescam"):  # GAP + linear head: the same maps as Grad-CAM
        for k, v in m[variant].items():
            assert v == pytest.approx(m["gradcam"][k], rel=1e-3, abs=1e-3), (variant, k)
    assert m["eigencam"]["pointing_recall_aware"] < m["gradcam"]["pointing_recall_aware"] - 0.3
    assert m["eigencam"]["gt_known_localisation_accuracy"] > m["random"]["gt_known_localisation_accuracy"]
    assert m["occlusion"]["faithfulness_spearman"] == pytest.approx(1.0, abs=1e-6)


def test_every_registered_method_is_evaluated_and_timed(report):
    """Every method that applies to the model (a CNN: not LeGrad, which reads attention)."""
    import explainers
    cnn = [m for m in explainers.method_names() if not explainers.get_method(m).transformers_only]
    assert list(report["methods"]) == [*cnn, "random", "centre"]
    assert set(report["map_seconds_per_image"]) == set(report["methods"])
    assert all(v > 0 for v in report["map_seconds_per_image"].values())
    assert report["images_per_method"] == {m: 16 for m in report["methods"]}


def test_report_says_which_score_each_metric_uses(report):
    assert set(report["scores"]) == set(report["methods"]["gradcam"])
    assert "probability" in report["scores"]["deletion_auc"] and "logit" in report["scores"]["pointing"]
    assert report["images"] == 16 and report["top1_accuracy"] > 0.85
    curve = np.array(report["curves"]["gradcam"]["deletion"])
    assert curve.shape == (17,) and curve[0] > curve[-1]


class _Linear(nn.Module):
    """score = sum of the left half's pixels: its occlusion map is known by hand."""
    def forward(self, x):
        left = x[:, 0, :, : x.shape[-1] // 2].sum((1, 2))
        return torch.stack([left, -left], 1)


def test_occlusion_and_deletion_by_hand():
    x = torch.ones(1, 3, 8, 8)
    occ = perturb.occlusion_map(_Linear().eval(), x, 0, patch=2, stride=2)
    assert np.allclose(occ[:, :4], 4.0) and np.allclose(occ[:, 4:], 0.0)  # a 2x2 patch removes 4
    left_first = np.zeros((8, 8)); left_first[:, :4] = 1
    deletion, insertion = perturb.deletion_insertion(_Linear(), x, left_first, 0, steps=2)
    # after half the pixels (the left half) are gone, the two logits are equal: p = 0.5
    assert deletion[0] == pytest.approx(1.0) and deletion[1] == pytest.approx(0.5)
    drop, increase = perturb.average_drop_increase(_Linear(), x, left_first, 0)
    assert drop == pytest.approx(0.0, abs=1e-6) and not increase


def test_sanity_check_separates_guided_backprop(report):
    loaded = model_zoo.load("shapes-resnet")
    out = sanity.cascading(loaded, data.shapes(2, seed=20000), ["gradcam", "guided_backprop"])
    top = {m: v[0] for m, v in out.items()}
    assert top["gradcam"]["randomised_down_to"] == "fc"
    # randomising only the classifier changes Grad-CAM, but hardly Guided Backprop (Adebayo et al.)
    assert top["guided_backprop"]["spearman_abs"] > 0.8 > 0.5 > top["gradcam"]["spearman_abs"]
    assert out["guided_backprop"][-1]["spearman_abs"] < top["guided_backprop"]["spearman_abs"]


def test_cli_writes_json_and_csv(tmp_path, capsys):
    out = tmp_path / "r" / "report.json"
    assert main(["--model", "shapes-resnet", "--data", "shapes:pair", "--methods", "gradcam,centre",
                 "--n", "2", "--steps", "4", "--stride", "16", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["methods"]) == {"gradcam", "centre"} and report["data"] == "shapes:pair"
    assert out.with_suffix(".csv").read_text().startswith("method,metric,value,score used")
    assert "| gradcam |" in capsys.readouterr().out


def test_cli_bad_input(tmp_path, capsys):
    assert main(["--model", "shapes-resnet", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r.json")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["--model", "shapes-resnet", "--methods", "gradcam,magic", "--n", "1", "--out", str(tmp_path / "r.json")]) == 1
    assert "unknown method(s) magic" in capsys.readouterr().err


def test_voc_folder_is_read_lazily(tmp_path):
    from model_zoo.shapes import voc, world
    for i in range(3):
        voc.export_scene(world.make_scene(5, i, "single"), tmp_path, f"scene{i}")
    samples = list(data.voc_folder(tmp_path))
    assert len(samples) == 3
    assert samples[0].objects and samples[0].objects[0].name in model_zoo.load("shapes-resnet").categories
    loaded = model_zoo.load("shapes-resnet")
    r = run.evaluate(loaded, data.voc_folder(tmp_path), ["gradcam"], tolerance=4, steps=4, stride=16)
    assert r["images"] == 3 and r["methods"]["gradcam"]["pointing"] >= 2 / 3


def test_boxes_follow_the_models_resize_and_crop():
    """ImageNet-style preprocessing (shorter side 256, centre crop 224): a box on a 512 x 384
    image lands where the same pixels land in the crop (checked against the display image)."""
    from PIL import Image
    from model_zoo.preprocess import Preprocess
    pre = Preprocess(resize=256, crop=224)
    img = np.zeros((384, 512, 3), np.uint8)
    img[100:200, 300:400] = 255  # a white block: x 300..400, y 100..200
    view = np.asarray(pre.display(Image.fromarray(img)))
    ys, xs = np.nonzero(view[..., 0] > 127)
    expected = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    got = pre.view_box((300, 100, 400, 200), (512, 384))
    assert all(abs(a - b) <= 1 for a, b in zip(got, expected)), (got, expected)
    assert pre.view_box((0, 0, 10, 10), (512, 384)) is None  # cut away by the crop


def test_voc_folder_counts_and_names_what_it_skips(tmp_path):
    from model_zoo.shapes import voc, world
    for i in range(3):
        voc.export_scene(world.make_scene(5, i, "single"), tmp_path, f"scene{i}")
    (tmp_path / "annotations" / "scene1.xml").unlink()  # an image without its annotation
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "annotations" / "broken.xml").write_text((tmp_path / "annotations" / "scene0.xml").read_text())
    folder = data.voc_folder(tmp_path)
    assert [s.name for s in folder] == ["scene0.png", "scene2.png"]
    assert dict(folder.skipped) == {"broken.png": "not an image file (format not recognised)",
                                    "scene1.png": "no annotation scene1.xml"}
    loaded = model_zoo.load("shapes-resnet")
    r = run.evaluate(loaded, data.voc_folder(tmp_path), ["gradcam"], tolerance=4, steps=4, stride=16)
    assert r["images"] == 2 and {f["file"] for f in r["skipped_files"]} == {"broken.png", "scene1.png"}


def test_voc_file_without_size_is_read(tmp_path):
    from model_zoo.shapes import voc
    xml = tmp_path / "a.xml"
    xml.write_text("<annotation><filename>a.jpg</filename><object><name>circle</name><bndbox>"
                   "<xmin>3</xmin><ymin>4</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object></annotation>")
    ann = voc.read_voc(xml)
    assert (ann.width, ann.height) == (None, None)
    assert ann.objects[0].box == (2, 3, 10, 12)


def test_maps_with_nan_are_counted_not_dropped(monkeypatch):
    loaded = model_zoo.load("shapes-resnet")
    real = run.method_map
    calls = {"n": 0}

    def sometimes_nan(capture, method, classes, size, rng, options=None):
        maps = real(capture, method, classes, size, rng, options)
        if method == "gradcam":
            calls["n"] += 1
            if calls["n"] % 2:
                maps[0] = maps[0].copy()
                maps[0][0, 0] = np.nan
        return maps
    monkeypatch.setattr(run, "method_map", sometimes_nan)
    r = run.evaluate(loaded, data.shapes(4, seed=20000), ["gradcam", "centre"], tolerance=4, steps=4, stride=16)
    assert r["maps_not_finite"] == {"gradcam": 2, "centre": 0}
    assert r["images_per_method"] == {"gradcam": 2, "centre": 4}
    assert np.isfinite(r["methods"]["gradcam"]["pointing"])


def test_library_leaves_the_global_random_state_and_the_model_alone():
    """randomised_copies and training used to call torch.manual_seed; accuracy() set the
    caller's model to eval mode."""
    from model_zoo.shapes.recipes import RECIPES, accuracy, with_overrides
    from training.shapes import train
    loaded = model_zoo.load("shapes-weak")
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    for _ in perturb.randomised_copies(loaded.model, seed=0):
        pass
    assert torch.equal(torch.get_rng_state(), before)
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        train(with_overrides(RECIPES["shapes-weak"], n_single=16, n_pair=0, epochs=1), Path(d), heldout=8,
              show_progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    model = loaded.model
    model.train()
    model.layer1.eval()  # a mixed state comes back exactly
    accuracy(model, 8, 10000)
    assert model.training and not model.layer1.training and model.layer2.training
    model.eval()


def test_randomised_copies_copy_the_model_under_its_lock():
    import threading
    import explainers
    loaded = model_zoo.load("shapes-weak")
    started, copied = threading.Event(), threading.Event()

    def copy_it():
        started.set()
        next(perturb.randomised_copies(loaded.model))
        copied.set()

    with explainers.model_lock(loaded.model):  # another thread's hooked forward holds the lock
        t = threading.Thread(target=copy_it)
        t.start()
        started.wait(5)
        assert not copied.wait(0.3)  # the copy waits for the lock
    t.join(10)
    assert copied.is_set()
