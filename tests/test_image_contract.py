"""One image contract, on the real path: a real photo (scikit-image's chelsea, 451 x 300, written to
a file) and models whose resize differs from their crop (efficientnet-lite0 with its real weights
at 256 / 224 bicubic, an untrained resnet18 at 256 / 224 bilinear). The file is decoded once, the
model's preprocessing runs once, and the picture under every map is the model's input
denormalised; every front end (the pages, the CLI) gives the model the library's input for the
file, so its maps are the library's ``explain`` maps.

Before the contract the dashboard resized and cropped the already cropped view again: for
256 / 224 the model saw the centre 196 px of the 224 shown, enlarged 8/7, and a frame painted on
the shown picture's border changed none of the model's input."""
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import explainers
import model_zoo
from explainers import adversarial, masking
from explainers.images import open_image
from model_zoo import photos
from tests.conftest import open_dashboard

pytestmark = pytest.mark.slow

UNTRAINED = "resnet18-untrained-256-224"
MODELS = ["efficientnet-lite0", UNTRAINED]
FRAME = 13  # px painted on the shown picture's border


def _untrained_resnet18(num_classes):
    import torchvision
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=num_classes)


model_zoo.register_model(UNTRAINED, _untrained_resnet18, categories=[f"class {i}" for i in range(1000)],
                         preprocess=model_zoo.Preprocess(resize=256, crop=224), weights=model_zoo.UNTRAINED,
                         default_layer="layer4", title="resnet18, untrained (a 256 / 224 test model)")


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "chelsea.png"
    Image.fromarray(photos.photo("chelsea").image).save(path)
    return path


def _library(model_id, path):
    """What the library does with the file: decode, preprocess once, the input."""
    from ui import cache
    loaded = cache.load_model(model_id)  # the app's own instance (one per process)
    return loaded, loaded.preprocess(open_image(path)).unsqueeze(0)


@pytest.mark.parametrize("model_id", MODELS)
def test_the_picture_is_the_input_denormalised(model_id, photo_file):
    pre = model_zoo.get_spec(model_id).preprocess
    assert pre.resize != pre.crop
    image = open_image(photo_file)
    view, x = pre.prepare(image)
    assert view.shape == (224, 224, 3)
    np.testing.assert_array_equal(pre.picture(x), view)
    assert torch.equal(pre.tensor(view), x) and torch.equal(pre(image), x)
    with pytest.raises(ValueError, match="a view is the 224 x 224 crop the network sees, got 451 x 300"):
        pre.tensor(np.asarray(image))


def _forget(seen: list) -> None:
    """Empty the pages' caches of maps and forward passes, and the record."""
    import streamlit as st
    from ui import cache
    st.cache_data.clear()
    cache.capture_store.clear()
    seen.clear()


@pytest.fixture
def recorded(monkeypatch):
    """Every input the model stack is given while the pages run (captures, the Counterfactual
    page's masked passes, the Adversarial page's attack): (model, x) pairs. The pages' caches start empty."""
    seen = []
    _forget(seen)
    original = explainers.Capture

    class Recording(original):
        def __init__(self, model, x, *args, **kwargs):
            seen.append(("capture", model, x.detach().clone()))
            super().__init__(model, x, *args, **kwargs)

    def spy(name, fn):
        def wrapped(model, x, *args, **kwargs):
            seen.append((name, model, x.detach().clone()))
            return fn(model, x, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(explainers, "Capture", Recording)
    monkeypatch.setattr(masking, "masked_outputs", spy("masked", masking.masked_outputs))
    for name in ("fgsm", "pgd"):
        monkeypatch.setattr(adversarial, name, spy("attack", getattr(adversarial, name)))
    return seen


PAGES = ["pages/explore.py", "pages/compare.py", "pages/counterfactual.py", "pages/how_it_works.py",
         "pages/neurons.py", "pages/adversarial.py"]


@pytest.mark.parametrize("model_id", MODELS)
def test_every_page_gives_the_model_the_librarys_input(model_id, photo_file, recorded):
    at = open_dashboard(model=model_id)
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("chelsea.png", photo_file.read_bytes(), "image/png")).run()
    assert not at.exception
    loaded, x = _library(model_id, photo_file)
    sel = at.session_state["studio_selection"]
    np.testing.assert_array_equal(sel.image, loaded.preprocess.picture(x))  # the picture is the input
    _forget(recorded)  # what ran before the upload (the app opens on the composite photo)
    kinds, start = set(), 0
    for page in PAGES:
        at.switch_page(page).run()
        for button in [b for b in at.button if str(b.key).startswith("run_")]:  # heavy work waits for it
            button.click().run()
        assert not at.exception, (page, at.exception)
        for kind, model, seen in recorded[start:]:
            if model is not loaded.model or (page == "pages/adversarial.py" and kind == "capture"):
                continue  # another model (Compare's), or the attacked image's own capture
            kinds.add(kind)
            if not torch.equal(seen, x):
                raise AssertionError(f"{page} gave {model_id} another input than the library's for the file "
                                     f"({kind}; max difference {float((seen - x).abs().max()):.3f})")
        start = len(recorded)
    assert kinds == {"capture", "masked", "attack"}, kinds

    # the map the Explore page draws is the library's explain on the file
    from ui import cache
    layer = loaded.default_layer
    cls = int(cache.probabilities(model_id, sel.digest, layer, sel.image).argmax())
    page_map = cache.explanation(model_id, sel.digest, layer, "gradcam", cls, sel.image)["attribution"]
    lib_map = explainers.explain(loaded.model, x, method="gradcam", layer=layer, target=cls).attribution
    np.testing.assert_allclose(page_map, lib_map, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("model_id", MODELS)
def test_a_frame_on_the_shown_picture_changes_the_models_input(model_id, photo_file):
    from ui import cache
    loaded = cache.load_model(model_id)
    view, _ = loaded.preprocess.prepare(open_image(photo_file))
    framed = view.copy()
    framed[:FRAME], framed[-FRAME:], framed[:, :FRAME], framed[:, -FRAME:] = 255, 255, 255, 255
    before, after = cache.model_input(model_id, view), cache.model_input(model_id, framed)
    changed = (before != after).any(1)[0]
    border = np.zeros((224, 224), bool)
    border[:FRAME], border[-FRAME:], border[:, :FRAME], border[:, -FRAME:] = True, True, True, True
    was_white = (view == 255).all(-1)
    np.testing.assert_array_equal(changed.numpy(), border & ~was_white)  # the frame and nothing else


@pytest.mark.parametrize("model_id", MODELS)
def test_the_cli_map_is_the_librarys(model_id, photo_file, tmp_path):
    from cli import explain as cli
    args = [str(photo_file), "--model", model_id, "--method", "gradcam", "--target", "3", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    (npy,) = tmp_path.glob("chelsea_gradcam_3-*.npy")
    loaded, x = _library(model_id, photo_file)
    if model_id == UNTRAINED:  # the CLI built its own random model: the same seed gives the same one
        loaded = model_zoo.load(model_id)
    lib = explainers.explain(loaded.model, x, method="gradcam", layer=loaded.default_layer, target=3)
    np.testing.assert_allclose(np.load(npy), lib.attribution, rtol=1e-5, atol=1e-7)
    png = Image.open(io.BytesIO(npy.with_suffix(".png").read_bytes()))
    assert png.size == (224, 224)
