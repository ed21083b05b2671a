"""The scene generator: determinism, ground truth consistent with pixels, VOC export, the
training command on a tiny setting."""
import hashlib
import json

import numpy as np
import pytest
import torch

import model_zoo
from model_zoo.shapes import gallery
from cli.shapes import main as shapes_main
from model_zoo.shapes.recipes import accuracy
from model_zoo.shapes.voc import read_voc
from model_zoo.shapes.world import CLASSES, CUE_BOX, CUE_COLOURS, make_scene, make_scenes

# sha256 of the pixels of a few scenes: the same seed gives the same bytes on any machine
# (numpy's PCG64 and Pillow's rasteriser). A change here changes every shipped model's data.
GOLDEN = {
    (0, 0, "single", "none"): "faa0468d9f1f0639",
    (7, 3, "pair", "none"): "d4def2fe7af0cdf5",
    (1, 5, "single", "match"): "f46d5dc9b8f67630",
}


def _digest(scene) -> str:
    return hashlib.sha256(scene.image.tobytes()).hexdigest()[:16]


def test_same_seed_same_bytes_different_seed_different_bytes():
    a, b = make_scene(3, 11), make_scene(3, 11)
    assert a.image.tobytes() == b.image.tobytes()
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.objects, b.objects))
    assert make_scene(4, 11).image.tobytes() != a.image.tobytes()
    assert make_scene(3, 12).image.tobytes() != a.image.tobytes()


@pytest.mark.parametrize("key", list(GOLDEN))
def test_golden_pixels(key):
    seed, index, kind, cue = key
    assert _digest(make_scene(seed, index, kind, cue)) == GOLDEN[key]


def test_every_class_appears_and_forced_labels():
    labels = {s.label for s in make_scenes(200, seed=5)}
    assert labels == set(range(len(CLASSES))) and len(CLASSES) >= 8
    for c in range(len(CLASSES)):
        assert make_scene(5, 0, label=c).label == c


@pytest.mark.parametrize("kind", ["single", "pair"])
def test_masks_and_boxes_match_pixels(kind):
    for scene in make_scenes(60, seed=9, kind=kind):
        assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
        assert len(scene.objects) == (1 if kind == "single" else 2)
        for obj in scene.objects:
            ys, xs = np.nonzero(obj.mask)
            assert obj.mask.sum() >= 40
            assert obj.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            inside = scene.image[obj.mask].astype(float)
            assert inside.std(axis=0).max() < 12  # one flat colour plus mild noise
            x0, y0, x1, y1 = CUE_BOX
            assert not obj.mask[y0:y1, x0:x1].any()  # clear of the cue corner
        if kind == "pair":
            a, b = scene.objects
            assert a.label != b.label and not (a.mask & b.mask).any()


def test_cue_policies_change_only_the_mark():
    x0, y0, x1, y1 = CUE_BOX
    for i in range(20):
        scenes = [make_scene(6, i, "single", c) for c in ("none", "match", "flip", "random")]
        outside = np.ones((64, 64), bool)
        outside[y0:y1, x0:x1] = False
        for s in scenes[1:]:
            assert np.array_equal(s.image[outside], scenes[0].image[outside])
            assert np.array_equal(s.objects[0].mask, scenes[0].objects[0].mask)


def test_cues():
    for i in range(30):
        match = make_scene(2, i, "single", "match")
        flip = make_scene(2, i, "single", "flip")
        none = make_scene(2, i, "single", "none")
        assert match.cue.label == match.label and flip.cue.label != flip.label and none.cue is None
        x0, y0, x1, y1 = CUE_BOX
        assert (match.image[y0:y1, x0:x1] == CUE_COLOURS[match.label]).all()
        assert (flip.image[y0:y1, x0:x1] == CUE_COLOURS[flip.cue.label]).all()
    assert len(set(CUE_COLOURS)) == len(CLASSES)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown scene kind 'triple'"):
        make_scene(0, 0, "triple")
    with pytest.raises(ValueError, match="unknown cue policy 'loud'"):
        make_scene(0, 0, "single", "loud")
    with pytest.raises(ValueError, match="pair scene.*'none' or 'random'"):
        make_scene(0, 0, "pair", "match")


def test_gallery():
    items = gallery()
    names = [n for n, _ in items]
    assert set(CLASSES) <= set(names)
    assert any(n.startswith("pair:") for n in names) and any("misleading" in n for n in names)
    again = gallery()
    assert all(a.image.tobytes() == b.image.tobytes() for (_, a), (_, b) in zip(items, again))


def test_export_voc(tmp_path, capsys):
    out = tmp_path / "split"
    assert shapes_main(["export", "--kind", "pair", "--n", "4", "--seed", "8", "--out", str(out)]) == 0
    xmls = sorted((out / "annotations").glob("*.xml"))
    assert len(xmls) == 4
    from PIL import Image
    for i, xml in enumerate(xmls):
        scene = make_scene(8, i, "pair")
        ann = read_voc(xml)
        assert (ann.width, ann.height) == (64, 64)
        assert [(o.name, o.box) for o in ann.objects] == [(o.name, o.box) for o in scene.objects]
        assert np.array_equal(np.asarray(Image.open(out / "images" / ann.filename)), scene.image)
        masks = np.asarray(Image.open(out / "masks" / ann.filename))
        for k, obj in enumerate(scene.objects):
            assert np.array_equal(masks == k + 1, obj.mask)
    text = xmls[0].read_text()
    assert "<xmin>" in text and "<name>" in text


def test_training_command_tiny(tmp_path, capsys):
    out = tmp_path / "w"
    rc = shapes_main(["train", "--model", "shapes-weak", "--n-single", "200", "--n-pair", "64",
                      "--epochs", "1", "--heldout", "100", "--groundtruth", "40", "--out", str(out)])
    assert rc == 0
    card = json.loads((out / "shapes-weak.json").read_text())
    assert card["config"]["n_single"] == 200 and card["config"]["epochs"] == 1
    assert card["heldout"]["n"] == 100 and card["heldout"]["seed"] == 10000
    loaded_weights = model_zoo.load("shapes-weak", out / "shapes-weak.pt")
    # the card's accuracy is what the written weights score on its held-out scenes
    assert accuracy(loaded_weights.model, 100, 10000) == pytest.approx(card["heldout"]["accuracy"], abs=1e-4)
    assert card["sha256"] == model_zoo.weights.sha256_of(out / "shapes-weak.pt")
    assert set(card["gradcam"]) == {"layer", "pointing_single", "pair_own_object", "cue_energy"}
    loaded = model_zoo.load("shapes-weak", out / "shapes-weak.pt")
    assert loaded.categories == CLASSES
    assert loaded.model(torch.zeros(1, 3, 64, 64)).shape == (1, 8)


@pytest.mark.parametrize("model_id", ["shapes-captioner", "shapes-vqa"])
def test_training_command_tiny_for_captions_and_questions(tmp_path, capsys, model_id):
    out = tmp_path / "w"
    rc = shapes_main(["train", "--model", model_id, "--n-single", "32", "--n-pair", "96", "--epochs", "1",
                      "--heldout", "40", "--groundtruth", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    card = json.loads((out / f"{model_id}.json").read_text())
    assert card["recipe"]["n_pair"] == 96 and card["recipe"]["epochs"] == 1 and card["heldout_seed"] == 10000
    assert card["sha256"] == model_zoo.weights.sha256_of(out / f"{model_id}.pt")
    key = "word_pointing" if model_id == "shapes-captioner" else "vqa"
    assert card["gradcam"][key]["scenes"] == 2 and card["gradcam"]["layer"] == "layer3"
    loaded = model_zoo.load(model_id, out / f"{model_id}.pt")
    assert loaded.spec.task == card["task"]
