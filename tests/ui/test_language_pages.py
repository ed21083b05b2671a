"""The Captioning and VQA pages through AppTest: the model's caption and a map per word, a typed
caption (unknown words named), the top answers and the map of any answer, the contrast."""
from pathlib import Path

from PIL import Image
from streamlit.testing.v1 import AppTest

import explainers
import model_zoo
from model_zoo.shapes import language as L
from ui import cache
from ui.text import plain

ROOT = Path(__file__).resolve().parents[2]


def _open(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _scene(at, key):
    name = at.selectbox(key=key).value
    return dict(cache.language_gallery())[name]


def test_captioning_page_writes_a_caption_and_a_map_per_word():
    at = _open("pages/captioning.py")
    scene = _scene(at, "caption_scene")
    loaded = model_zoo.load("shapes-captioner")
    x = loaded.preprocess(Image.fromarray(scene.image)).unsqueeze(0)
    generated = L.decode_caption(loaded.model.generate(x)[0])
    assert any(f"**The model's caption:** {generated}" in m.value for m in at.markdown)
    words = L.split(generated)
    strip = [img for el in at.get("image") for img in el.proto.imgs]
    assert len(strip) == len(words) + 1  # a map per word, and the enlarged one
    at.radio(key=f"caption_enlarge_{cache.digest(scene.image)}_{generated}").set_value(f"2. {words[1]}").run()
    assert not at.exception
    spec = at.get("plotly_chart")[0].proto.spec
    tokens = L.encode_caption(generated)
    ref = explainers.explain(loaded.model, x, layer="layer3", target=explainers.WordLogProb(tokens, 1))
    assert "(16x16, unnormalised)" in spec
    labels = [b.label for b in at.get("download_button")]
    assert labels[0].startswith(f"Grad-CAM of 2. {words[1]}")
    assert ref.layer_map.shape == (16, 16)


def test_a_typed_caption_is_explained_and_unknown_words_are_named():
    at = _open("pages/captioning.py")
    scene = _scene(at, "caption_scene")
    at.text_input(key="caption_typed").set_value(scene.caption).run()
    assert not at.exception and not at.error
    assert any("log p(caption | image) =" in c.value for c in at.caption)
    at.text_input(key="caption_typed").set_value("a gigantic red circle").run()
    assert not at.exception
    assert any(plain("unknown word(s) 'gigantic'") in e.value for e in at.error)  # shown as written
    # a typed caption echoed in the error is shown as written: no live link or image
    at.text_input(key="caption_typed").set_value("a ![x](http://127.0.0.1:9/t.png) [here](http://example.org)").run()
    assert not at.exception
    (error,) = at.error
    assert "](http" not in error.value and r"\]\(http" in error.value
    at.text_input(key="caption_typed").set_value("a red circle " * 9).run()
    assert any(f"at most {L.MAX_CAPTION_WORDS} words" in e.value for e in at.error)
    at.text_input(key="caption_typed").set_value("").run()
    at.radio(key="caption_method").set_value("guided_gradcam").run()
    assert not at.exception and not at.error


def test_vqa_page_answers_and_explains_any_answer_and_a_contrast():
    at = _open("pages/vqa.py")
    scene = _scene(at, "vqa_scene")
    digest = cache.digest(scene.image)
    question = [q for q in L.questions(scene) if q.kind == "colour_of_shape"][0]
    at.selectbox(key=f"vqa_q_{digest}").set_value(question.text).run()
    assert not at.exception
    assert any(f"True answer: **{question.answer}**" in c.value for c in at.caption)
    loaded = model_zoo.load("shapes-vqa")
    x = loaded.preprocess(Image.fromarray(scene.image)).unsqueeze(0)
    tokens = L.encode_question(question.text)
    box = at.selectbox(key=f"vqa_answer_{digest}_{question.text}")
    box.set_value(L.ANSWERS.index("yes")).run()
    versus = at.selectbox(key=f"vqa_versus_{digest}_{question.text}")
    versus.set_value(L.ANSWERS.index("no")).run()
    assert not at.exception
    ref = explainers.explain(loaded.model, x, layer="layer3",
                             target=explainers.Answer(tokens, L.ANSWERS.index("yes"), versus=L.ANSWERS.index("no")))
    assert any(f"logit difference {ref.score:.3f}" in c.value for c in at.caption)
    at.text_input(key="vqa_typed").set_value("why is it red").run()
    assert any(plain("unknown word(s) 'why'") in e.value for e in at.error)
    # a typed question visibly replaces the picked one: the picker greys out, the page says so,
    # and the chart's title is the question as the model reads it ("??" was shown before)
    at.text_input(key="vqa_typed").set_value("What colour is the square?").run()
    assert not at.exception and not at.error
    assert at.selectbox(key=f"vqa_q_{digest}").disabled
    assert any("Asking your question, not the picked one" in c.value for c in at.caption)
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert any('"Q: what colour is the square?"' in c for c in charts) and not any("??" in c for c in charts)
    at.text_input(key="vqa_typed").set_value("").run()
    assert not at.selectbox(key=f"vqa_q_{digest}").disabled


def test_an_upload_to_the_captioner_or_the_vqa_model_is_said_to_be_out_of_its_world():
    for page, key, words in (("pages/captioning.py", "caption", "its captions"), ("pages/vqa.py", "vqa", "its answers")):
        at = _open(page)
        at.radio(key=f"{key}_source").set_value("Upload").run()
        assert not at.exception
        assert any("has only seen the shapes world's described scenes" in c.value and words in c.value
                   for c in at.caption), page
