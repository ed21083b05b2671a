"""The detector's and segmenter's training: CenterNet's targets by hand on a scene, the label
image against the masks, a tiny run of each recipe end to end (weights, card, sha256, the
registry's checked load), and the CLI's route."""
from dataclasses import replace

import numpy as np
import pytest
import torch

import model_zoo
from model_zoo.shapes.dense import STRIDE, ShapesDetector, decode
from model_zoo.shapes.recipes import DENSE_RECIPES
from model_zoo.shapes.world import make_scene
from model_zoo.weights import sha256_of
from training.dense import detector_targets, label_image, train_dense


def _scene_with(n: int):
    i = 0
    while len(make_scene(8, i, "multi").objects) != n:
        i += 1
    return make_scene(8, i, "multi")


def test_centernet_targets_by_hand():
    scene = _scene_with(3)
    heat, size, offset, centre = detector_targets(scene)
    assert centre.sum() == 3
    for o in scene.objects:
        x0, y0, x1, y1 = o.box
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        i, j = int(cy), int(cx)
        assert heat[o.label, i, j] == 1.0 and centre[i, j]
        assert size[:, i, j] == pytest.approx(((x1 - x0) / 64, (y1 - y0) / 64))
        assert offset[:, i, j] == pytest.approx((cx - j, cy - i)) and 0 <= offset[:, i, j].min() < 1
    # decoding the targets themselves gives the boxes back (sizes and offsets are exact at the peaks)
    d = decode(torch.from_numpy(heat)[None], torch.from_numpy(size)[None], torch.from_numpy(offset)[None],
               min_score=0.99)[0]
    got = sorted((int(lab), tuple(round(v) for v in b.tolist())) for lab, b in zip(d["labels"], d["boxes"]))
    assert got == sorted((o.label, o.box) for o in scene.objects)


def test_the_label_image_is_the_masks():
    scene = _scene_with(4)
    labels = label_image(scene)
    for o in scene.objects:
        assert (labels[o.mask] == 1 + o.label).all()
    assert (labels[~np.any([o.mask for o in scene.objects], axis=0)] == 0).all()


def test_decoded_scores_carry_gradients_to_the_input():
    model = ShapesDetector().eval()
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    d = model(x)[0]
    assert len(d["scores"]) > 0
    (g,) = torch.autograd.grad(d["scores"][0], x)
    assert g.abs().sum() > 0


@pytest.mark.parametrize("model_id", ["shapes-detector", "shapes-segmenter"])
def test_a_tiny_run_writes_weights_and_a_card(model_id, tmp_path):
    recipe = replace(DENSE_RECIPES[model_id], scenes=48, epochs=1, batch=16)
    card = train_dense(recipe, tmp_path, heldout=12, show_progress=False)
    path = tmp_path / f"{model_id}.pt"
    assert card["sha256"] == sha256_of(path) and card["heldout"]["scenes"] == 12
    key = "map50" if recipe.task == "detection" else "miou"
    assert 0 <= card["heldout"][key] <= 1
    loaded = model_zoo.load(model_id, path)  # the registry's checked path takes it
    assert loaded.sha256 == card["sha256"]


def test_the_cli_trains_a_dense_model(tmp_path, capsys):
    from cli.shapes import main
    assert main(["train", "--model", "shapes-segmenter", "--n-single", "32", "--epochs", "1", "--heldout", "8",
                 "--groundtruth", "3", "--out", str(tmp_path)]) == 0
    assert "shapes-segmenter: held-out mean IoU" in capsys.readouterr().out
    import json
    card = json.loads((tmp_path / "shapes-segmenter.json").read_text())
    assert card["maps"]["scenes"] == 3 and set(card["maps"]["mass"]) >= {"gradcam", "centre"}
