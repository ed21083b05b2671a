"""The Text prompt page (issue 29) through AppTest: a scene's own phrase and its map, a typed
phrase (unknown words named), each word's contribution, two phrases side by side, zero-shot
prompts of the user's own, and a real photo."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import model_zoo
from explainers import text as T
from model_zoo.shapes import phrases
from ui import cache
from ui.text import plain

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not model_zoo.weights_available("shapes-clip"), reason="shapes-clip not trained")


def _open() -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120).run()
    at.switch_page("pages/text_prompt.py").run()
    assert not at.exception, at.exception
    return at


def _scene(at):
    return dict(cache.language_gallery())[at.selectbox(key="text_scene").value]


def _x(scene):
    loaded = model_zoo.load("shapes-clip")
    return loaded.model, loaded.preprocess(Image.fromarray(scene.image)).unsqueeze(0)


def test_a_scenes_phrase_is_mapped_and_scored_beside_its_other_phrases():
    at = _open()
    scene = _scene(at)
    own = phrases.scene_phrases(scene)
    assert at.selectbox(key=f"text_pick_{cache.digest(scene.image)}").options == own
    model, x = _x(scene)
    sims = T.similarities(model, x, own)[0]
    chart = at.get("plotly_chart")[0].proto.spec
    assert "Image-text similarity" in chart
    caption = [img.caption for el in at.get("image") for img in el.proto.imgs][0]
    assert caption == f"Grad-CAM: {own[0]} (similarity {sims[0]:.3f})"
    assert any("the phrase is **true**" in c.value for c in at.caption)


def test_a_typed_phrase_replaces_the_picked_one_and_unknown_words_are_named():
    at = _open()
    scene = _scene(at)
    obj = scene.objects[0]
    at.text_input(key="text_typed").set_value(f"the {obj.size} {obj.colour} {obj.name}").run()
    assert not at.exception and not at.error
    assert at.selectbox(key=f"text_pick_{cache.digest(scene.image)}").disabled
    assert any("Explaining your phrase" in c.value for c in at.caption)
    words = [img.caption for el in at.get("image") for img in el.proto.imgs if img.caption.startswith("'")]
    model, x = _x(scene)
    want = T.word_contributions(model, x, f"the {obj.size} {obj.colour} {obj.name}")
    assert words == [f"'{w.word}': {w.contribution:+.3f}" for w in want]
    at.text_input(key="text_typed").set_value("a purple unicorn").run()
    assert not at.exception
    assert any(plain("unknown word(s) 'unicorn'") in e.value for e in at.error)


def test_two_phrases_side_by_side_with_their_contrast():
    at = _open()
    scene = _scene(at)
    own = phrases.scene_phrases(scene)
    other = own[2] if len(own) > 2 else "a circle"
    at.text_input(key="text_second").set_value(other).run()
    assert not at.exception
    model, x = _x(scene)
    s = T.similarities(model, x, [own[0], other])[0]
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert f"why '{own[0]}' rather than '{other}' ({s[0] - s[1]:+.3f})" in captions


def test_zero_shot_with_the_users_prompts_and_a_real_photo():
    at = _open()
    scene = _scene(at)
    prompts = "a circle\na square\na triangle"
    at.text_area(key="text_prompts_shapes-clip").set_value(prompts).run()
    assert not at.exception
    model, x = _x(scene)
    p = T.zero_shot(model, x, prompts.splitlines())[0]
    best = int(np.argmax(p))
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert f"Grad-CAM: {prompts.splitlines()[best]} ({p[best]:.0%})" in captions
    at.text_area(key="text_prompts_shapes-clip").set_value("a circle").run()
    assert any("at least two prompts" in i.value for i in at.info)
    at.radio(key="text_source").set_value("Real photo").run()
    assert not at.exception and not at.error
    assert any("has only seen the shapes world" in c.value for c in at.caption)


def test_the_typed_phrases_outlive_a_page_switch():
    at = _open()
    at.text_input(key="text_typed").set_value("red circle").run()
    at.text_input(key="text_second").set_value("blue square").run()
    at.switch_page("pages/vqa.py").run()
    at.switch_page("pages/text_prompt.py").run()
    assert not at.exception
    assert at.text_input(key="text_typed").value == "red circle"
    assert at.text_input(key="text_second").value == "blue square"
