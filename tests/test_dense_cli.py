"""./studio dense: every box of the shipped detector and every class of the shipped segmenter on
a held-out scene, the maps the library gives; a real-photo path through a detector whose view is
not the photo's size; bad input named with status 1."""
import json

import numpy as np
import pytest
import torch

import explainers
import model_zoo
from cli.dense import main
from evaluation import dense as ev
from model_zoo.shapes.world import make_scene


def test_every_box_of_a_scene(tmp_path, capsys):
    assert main(["--scene", "0", "--model", "shapes-detector", "--method", "gradcam", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "scene_0" / "detections.json").read_text())["boxes"]
    loaded = model_zoo.load("shapes-detector")
    x = ev.scene_batch([make_scene(ev.HELDOUT_SEED, 0, "multi")], loaded.preprocess)
    with torch.no_grad():
        d = loaded.model(x)[0]
    assert len(rows) == int((d["scores"] >= 0.3).sum()) >= 1
    first = rows[0]
    target = explainers.DetectionScore(loaded.categories.index(first["label"]), tuple(first["xyxy"]))
    want = explainers.explain(loaded.model, x, method="gradcam", layer=loaded.default_layer, target=target)
    np.testing.assert_allclose(np.load(tmp_path / "scene_0" / "box01_gradcam.npy"), want.attribution, atol=1e-6)
    assert (tmp_path / "scene_0" / "box01_gradcam.png").is_file()
    assert f"{len(rows)} map(s)" in capsys.readouterr().out


def test_every_class_of_a_scene(tmp_path):
    assert main(["--scene", "1", "--model", "shapes-segmenter", "--method", "gradcam", "--out", str(tmp_path)]) == 0
    classes = json.loads((tmp_path / "scene_1" / "classes.json").read_text())["classes"]
    assert classes and all((tmp_path / "scene_1" / f"{c['class']}_gradcam.npy").is_file() for c in classes)
    assert (tmp_path / "scene_1" / "labels.png").is_file()


def test_a_photo_through_a_detector_with_its_own_view(tmp_path):
    from PIL import Image
    from skimage import data
    photo = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(photo)  # 451 x 300: resized and cropped to the 64-px view
    assert main([str(photo), "--model", "shapes-detector", "--threshold", "0.0", "--out", str(tmp_path / "o")]) == 0
    rows = json.loads((tmp_path / "o" / "chelsea" / "detections.json").read_text())["boxes"]
    assert rows and np.load(tmp_path / "o" / "chelsea" / "box01_gradcam.npy").shape == (64, 64)


@pytest.mark.parametrize("argv, message", [
    (["--scene", "0", "--model", "shapes-resnet"], "shapes-resnet is a classification model"),
    (["--model", "shapes-detector"], "give image files or --scene N"),
    (["missing.png", "--model", "shapes-detector"], "cannot read missing.png"),
    (["--scene", "0", "--model", "shapes-detector", "--method", "nope"], "unknown method 'nope'"),
])
def test_bad_input_is_named(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
