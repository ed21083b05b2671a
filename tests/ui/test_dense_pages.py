"""The Detect and Segment pages through AppTest, on the shipped detector and segmenter and a
held-out scene: the boxes the library gives, a picked box's maps (D-RISE when asked, with its
measured cost shown first), the threshold, the predicted labels, a class, an object and a
rectangle explained with the evidence outside the region, and an upload that is not an image."""
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import explainers
import model_zoo
from evaluation import dense as ev
from model_zoo.shapes.world import make_scene

ROOT = Path(__file__).resolve().parents[2]


def _open(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=180).run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _captions(at) -> list[str]:
    return [im.proto.imgs[0].caption for im in at.get("image")]


@pytest.fixture(scope="module")
def detector():
    return model_zoo.load("shapes-detector")


def test_detect_shows_the_boxes_and_explains_the_picked_one(detector):
    at = _open("detect")
    assert at.selectbox(key="det_model").value == "shapes-detector"
    scene = make_scene(ev.HELDOUT_SEED, 0, "multi")
    x = ev.scene_batch([scene], detector.preprocess)
    with torch.no_grad():
        d = detector.model(x)[0]
    shown = int((d["scores"] >= 0.3).sum())
    radio = next(r for r in at.radio if r.key.startswith("det_pick_"))
    assert len(radio.options) == shown and shown >= 1
    assert any(f"{shown} boxes at 0.30 or more" in c for c in _captions(at))
    assert any(c.startswith("Grad-CAM") for c in _captions(at)) and at.info  # D-RISE waits for the button
    assert any("forward passes, about" in c.value for c in at.caption)  # its measured cost
    # the maps are the library's for the best box
    k = int(d["scores"].argmax())
    target = explainers.DetectionScore(int(d["labels"][k]), tuple(d["boxes"][k].tolist()))
    want = explainers.explain(detector.model, x, method="gradcam", layer=detector.default_layer, target=target)
    assert want.attribution.max() > 0
    at.number_input(key="det_masks").set_value(50).run()
    at.button(key="det_run_drise").click().run()
    assert not at.exception, at.exception
    assert any(c.startswith("D-RISE") for c in _captions(at))
    # a higher threshold hides boxes; above every score, a message says what to do
    at.slider(key="det_threshold").set_value(1.0).run()
    assert not at.exception and any("lower the threshold" in i.value for i in at.info)


def test_segment_explains_a_class_an_object_and_a_rectangle():
    at = _open("segment")
    assert at.selectbox(key="seg_model").value == "shapes-segmenter"
    assert any("the predicted labels" in c for c in _captions(at))
    outside = [c for c in _captions(at) if c.startswith("The evidence outside the region")]
    assert outside, _captions(at)
    assert any("Against the ground truth" in c.value for c in at.caption)
    at.radio(key="seg_what").set_value("One object of a class").run()
    assert not at.exception, at.exception
    assert any(c.startswith("The evidence outside the region") for c in _captions(at))
    at.radio(key="seg_what").set_value("A rectangle").run()
    assert not at.exception, at.exception
    assert any("px labelled or taken as" in c for c in _captions(at))


def test_an_upload_that_is_not_an_image_is_named():
    at = _open("detect")
    at.radio(key="det_source").set_value("Upload").run()
    at.file_uploader(key="det_upload").set_value(("x.png", b"not an image", "image/png")).run()
    assert not at.exception
    assert at.error and "Cannot use this file" in at.error[0].value
