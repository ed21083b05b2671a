"""One protocol for ground-truth-known localisation and the multi-instance pointing game
(``metrics.localise_and_point``), shared by the streaming engine (``run.evaluate``) and the
batched engine (``scale.loc_pointing``), pinned by hand and on a multi-instance VOC fixture."""
from dataclasses import replace

import numpy as np
import pytest

import model_zoo
from evaluation import data, metrics, run, scale
from model_zoo.shapes.voc import scene_to_xml
from model_zoo.shapes.world import ShapeObject, make_scene


def _peak_map(box, shape=(64, 64)):
    """A map that is 1 on ``box`` and 0 elsewhere: its box is ``box``, its maximum inside it."""
    m = np.zeros(shape)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 1.0
    return m


def test_the_rules_by_hand():
    """Two instances of "a" (left, right) and one of "b". The map of "a" covers the *second*
    instance of "a": ground-truth-known localisation is a hit (any box of the true class, the
    ILSVRC rule), and pointing counts one trial per class, not per instance."""
    left, right, low = (2, 20, 14, 32), (44, 20, 60, 36), (20, 48, 36, 60)
    instances = [metrics.Instance("a", left), metrics.Instance("a", right), metrics.Instance("b", low)]
    maps = {"a": _peak_map(right), "b": _peak_map((0, 0, 4, 4))}  # b's peak far from its object
    gt, hits = metrics.localise_and_point(maps, instances, threshold=0.15, tolerance=0)
    assert gt is True and hits == {"a": True, "b": False}
    # the true class is the first annotated object's: "b" first makes b's map the one boxed
    gt_b, _ = metrics.localise_and_point(maps, [instances[2], *instances[:2]], 0.15, 0)
    assert gt_b is False
    # tolerance: b's peak (the first maximum in raster order, pixel (0, 0)) is 20 px left of and
    # 48 px above its box's corner (20, 48)
    dist = np.hypot(20, 48)
    assert metrics.localise_and_point(maps, instances, 0.15, dist - 0.01)[1]["b"] is False
    assert metrics.localise_and_point(maps, instances, 0.15, dist + 0.01)[1]["b"] is True
    # a mask, where known, is the region pointed at; the box still gives localisation
    mask = np.zeros((64, 64), bool)
    mask[50:52, 30:32] = True
    with_mask = [*instances[:2], metrics.Instance("b", low, mask)]
    maps["b"] = _peak_map((22, 50, 23, 51))  # inside b's box, 8 px from its mask
    assert metrics.localise_and_point(maps, with_mask, 0.15, 0)[1]["b"] is False
    assert metrics.localise_and_point(maps, instances, 0.15, 0)[1]["b"] is True
    assert metrics.localise_and_point(maps, [], 0.15, 0) == (None, {})


DECOY = (0, 0, 12, 12)  # the corner the shapes world keeps clear of objects


def _pair_folder(root, n, decoy=True):
    """Pair scenes annotated VOC-style; with ``decoy``, a second, empty instance of the first
    object's class is listed first (the corner no object enters): a multi-instance image whose
    first instance is not the object the model sees."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(n):
        s = make_scene(20000, i, "pair")
        if decoy:
            first = s.objects[0]
            s = replace(s, objects=(ShapeObject(first.label, DECOY, np.zeros_like(first.mask)), *s.objects))
        s.pil().save(root / "images" / f"pair{i:02d}.png")
        (root / "annotations" / f"pair{i:02d}.xml").write_text(scene_to_xml(s, f"pair{i:02d}.png"))


@pytest.mark.slow
def test_both_engines_apply_one_rule_on_a_multi_instance_voc_folder(tmp_path):
    loaded = model_zoo.load("shapes-resnet")
    n = 12
    _pair_folder(tmp_path, n)
    streaming = run.evaluate(loaded, data.voc_folder(tmp_path), ["gradcam"])
    batched = scale.loc_pointing(loaded, scale.FileItems(data.voc_folder(tmp_path), loaded.preprocess), batch=5)
    g = streaming["methods"]["gradcam"]
    assert streaming["images"] == batched["images"] == n
    assert batched["pointing_trials"] == 2 * n  # two classes an image, three instances
    for key in ("gt_known_localisation_accuracy", "pointing", "localisation_error_top1"):
        assert g[key] == pytest.approx(batched[key], abs=1e-12), key
    # an instance more can only add hits: the same images without the decoy score no higher
    _pair_folder(tmp_path / "clean", n, decoy=False)
    plain = scale.loc_pointing(loaded, scale.FileItems(data.voc_folder(tmp_path / "clean"), loaded.preprocess),
                               batch=5)
    assert plain["gt_known_localisation_accuracy"] <= batched["gt_known_localisation_accuracy"]
    assert 0.9 <= plain["pointing"] <= batched["pointing"] and plain["pointing_trials"] == 2 * n
    # the fixture tells the rules apart: the streaming engine's old rule scored against the
    # first instance alone, the empty corner
    assert batched["gt_known_localisation_accuracy"] > 0


def _write_voc(root, stem, image, objects):
    """images/<stem>.png and annotations/<stem>.xml with (name, box) objects, VOC's 1-based
    inclusive coordinates."""
    import xml.etree.ElementTree as ET
    from PIL import Image
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{stem}.png")
    ann = ET.Element("annotation")
    ET.SubElement(ann, "filename").text = f"{stem}.png"
    size = ET.SubElement(ann, "size")
    for tag, v in (("width", image.shape[1]), ("height", image.shape[0]), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    for name, (x0, y0, x1, y1) in objects:
        o = ET.SubElement(ann, "object")
        ET.SubElement(o, "name").text = name
        b = ET.SubElement(o, "bndbox")
        for tag, v in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(b, tag).text = str(v)
    (root / "annotations" / f"{stem}.xml").write_text(ET.tostring(ann, encoding="unicode"))


@pytest.mark.slow
def test_both_engines_agree_on_real_photos_through_a_real_models_resize_and_crop(tmp_path):
    """The real path: efficientnet-lite0 (real ImageNet weights; resize to 256, crop 224) on the
    non-square photos with their hand-drawn boxes, each photo's first object named by its first
    ImageNet class. Both engines move the boxes like the pixels and score them by one rule."""
    from model_zoo import photos
    loaded = model_zoo.load("efficientnet-lite0")
    names = list(loaded.categories)
    singles = [p for p in photos.photos() if p.name != photos.COMPOSITE and p.objects][:3]
    assert any(p.image.shape[0] != p.image.shape[1] for p in singles)
    for p in singles:
        _write_voc(tmp_path, p.name, p.image, [(names[o.classes[0]], o.box) for o in p.objects])
    streaming = run.evaluate(loaded, data.voc_folder(tmp_path), ["gradcam"], steps=8, patch=32, stride=32)
    batched = scale.loc_pointing(loaded, scale.FileItems(data.voc_folder(tmp_path), loaded.preprocess), batch=2)
    g = streaming["methods"]["gradcam"]
    assert streaming["images"] == batched["images"] == len(singles)
    assert batched["pointing_trials"] == sum(len({o.classes[0] for o in p.objects}) for p in singles)
    for key in ("gt_known_localisation_accuracy", "pointing", "localisation_error_top1"):
        assert g[key] == pytest.approx(batched[key], abs=1e-12), key
