"""Detection and segmentation figures by hand: VOC's all-point AP on small cases, the matching
of detections to objects, mean IoU, the pointing game and where a class's map falls; the
multi-object scenes the shipped detector and segmenter learn from."""
import numpy as np
import pytest
import torch

from evaluation import dense as ev
from model_zoo.shapes.world import make_scene


def _det(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels)}


def test_average_precision_by_hand():
    truths = [[(0, (0, 0, 10, 10)), (0, (20, 20, 30, 30))], [(0, (5, 5, 15, 15))]]
    # ranked: a hit (0.9), a miss (0.8), a hit (0.7), a duplicate of the first hit (0.6): 3 objects
    dets = [_det([[0, 0, 10, 10], [40, 40, 50, 50], [0, 0, 10, 10]], [0.9, 0.8, 0.6], [0, 0, 0]),
            _det([[5, 5, 15, 15]], [0.7], [0])]
    # precision 1, 1/2, 2/3, 2/4 at recall 1/3, 1/3, 2/3, 2/3; made monotone: 1 up to 1/3, 2/3 up to 2/3
    assert ev.average_precision(dets, truths, 0) == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    assert ev.average_precision(dets, truths, 1) is None  # no ground truth of class 1
    assert ev.average_precision([_det([], [], []), _det([], [], [])], truths, 0) == 0.0
    perfect = [_det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 0]), _det([[5, 5, 15, 15]], [0.7], [0])]
    m = ev.mean_average_precision(perfect, truths, classes=3)
    assert m["map"] == 1.0 and m["per_class"] == [1.0, None, None]
    # a box shifted by 5 px: IoU 1/3, a hit at 0.3 and a miss at 0.5
    shifted = [_det([[5, 0, 15, 10]], [0.9], [0])]
    assert ev.average_precision(shifted, [[(0, (0, 0, 10, 10))]], 0, iou=0.3) == 1.0
    assert ev.average_precision(shifted, [[(0, (0, 0, 10, 10))]], 0, iou=0.5) == 0.0


def test_objects_are_matched_to_their_best_scoring_detection_once():
    d = _det([[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 30, 30]], [0.6, 0.9, 0.8], [0, 0, 1])
    truth = [(0, (0, 0, 10, 10)), (0, (0, 1, 10, 10)), (1, (40, 40, 50, 50))]
    assert ev.match_objects(d, truth) == [1, 0, None]


def test_mean_iou_by_hand():
    truth = np.array([[[0, 0, 1, 1]]])
    pred = np.array([[[0, 1, 1, 1]]])
    m = ev.mean_iou(pred, truth, classes=3)
    assert m["per_class"] == [0.5, pytest.approx(2 / 3), None]
    assert m["miou"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_pointing_and_mass_on_a_scene():
    scene = make_scene(5, 0, "multi")
    while len(scene.objects) < 2:
        scene = make_scene(5, scene.index + 1, "multi")
    truth_dets = _det([list(o.box) for o in scene.objects], [0.9] * len(scene.objects),
                      [o.label for o in scene.objects])

    def on_object(s, j, d):  # a map that is the detected object's mask
        return s.objects[j].mask.astype(float)

    def corner(s, j, d):
        m = np.zeros((64, 64))
        m[0, 0] = 1
        return m

    got = ev.detection_pointing({"mask": on_object, "corner": corner}, [scene], lambda s: truth_dets)
    assert got["detections"] == len(scene.objects)
    assert got["hit_rate"] == {"mask": 1.0, "corner": 0.0}
    o = scene.objects[0]
    others = [p for p in scene.objects if p.label != o.label]
    m = o.mask.astype(float) + (others[0].mask if others else 0) * 1.0
    share = ev.segmentation_mass(m, scene, o.label)
    own = sum(p.mask.sum() for p in scene.objects if p.label == o.label)
    assert share["inside"] == pytest.approx(o.mask.sum() / m.sum()) and share["inside"] <= own / m.sum() + 1e-9
    assert share["other_objects"] == pytest.approx((others[0].mask.sum() if others else 0) / m.sum())
    assert share["background"] == pytest.approx(0.0, abs=1e-12)
    assert ev.segmentation_mass(np.zeros((64, 64)), scene, 0) == {"inside": 0.0, "other_objects": 0.0,
                                                                  "background": 0.0}


def test_multi_object_scenes():
    counts = set()
    for i in range(60):
        s = make_scene(3, i, "multi")
        counts.add(len(s.objects))
        masks = np.stack([o.mask for o in s.objects])
        assert masks.sum(0).max() <= 1  # no overlaps: a pixel has one label
        for o in s.objects:
            ys, xs = np.nonzero(o.mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == o.box
    assert counts == {1, 2, 3, 4}
    a, b = make_scene(3, 7, "multi"), make_scene(3, 7, "multi")
    assert np.array_equal(a.image, b.image)
    with pytest.raises(ValueError, match="a multi scene can hold several objects"):
        make_scene(3, 0, "multi", cue="match")


# -- the shipped detector and segmenter: their cards' claims, and (slow) the figures recomputed --

def _flat(d, prefix=""):
    """A nested card as {dotted key: value}, for pytest.approx."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _card(model_id):
    from model_zoo.shapes import card
    return card(model_id)


def test_the_shipped_cards_are_what_they_claim():
    from pathlib import Path
    det, seg = _card("shapes-detector"), _card("shapes-segmenter")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert det["heldout_seed"] == ev.HELDOUT_SEED != det["recipe"]["seed"]
    pointing = det["maps"]
    assert pointing["detections"] >= 200
    assert pointing["hit_rate"]["gradcam"] >= 0.85
    assert pointing["hit_rate"]["gradcam"] > pointing["hit_rate"]["centre"]
    assert f"mAP@0.5 {det['heldout']['map50']:.3f}" in readme
    assert f"mean IoU {seg['heldout']['miou']:.3f}" in readme
    for method, share in seg["maps"]["mass"].items():
        assert share["inside"] + share["other_objects"] + share["background"] == pytest.approx(1.0, abs=1e-6), method


@pytest.mark.slow
def test_the_detector_card_is_reproduced():
    import model_zoo
    from model_zoo.shapes.world import make_scene
    from training.dense import heldout_figures
    c = _card("shapes-detector")
    loaded = model_zoo.load("shapes-detector")
    scenes = [make_scene(ev.HELDOUT_SEED, i, "multi") for i in range(c["heldout"]["scenes"])]
    assert _flat(heldout_figures(loaded.model, "detection", scenes)) == pytest.approx(_flat(c["heldout"]))
    n = c["maps"]["scenes"]
    got = ev.detection_card(loaded.model, loaded.default_layer, loaded.spec.preprocess, scenes[:n],
                            methods=("gradcam", "eigencam", "centre"))
    for method in ("gradcam", "eigencam", "centre"):
        assert got["hit_rate"][method] == pytest.approx(c["maps"]["hit_rate"][method], abs=1e-9)
    assert got["detections"] == c["maps"]["detections"]


@pytest.mark.slow
def test_the_segmenter_card_is_reproduced():
    import model_zoo
    from model_zoo.shapes.world import make_scene
    from training.dense import heldout_figures
    c = _card("shapes-segmenter")
    loaded = model_zoo.load("shapes-segmenter")
    scenes = [make_scene(ev.HELDOUT_SEED, i, "multi") for i in range(c["heldout"]["scenes"])]
    assert _flat(heldout_figures(loaded.model, "segmentation", scenes)) == pytest.approx(_flat(c["heldout"]))
    n = c["maps"]["scenes"]
    got = ev.segmentation_card(loaded.model, loaded.default_layer, loaded.spec.preprocess, scenes[:n])
    assert _flat(got) == pytest.approx(_flat(c["maps"]), abs=1e-6)
