"""timm:<name> ids (timm is an optional extra the dev requirements install): built with
pretrained=False and a weights file this test writes; preprocessing equal to timm's own eval
transform; the default layer found from the network; the library, the CLI and the app."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import explainers
import model_zoo

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("timm") / "resnet18_timm.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    return path


def test_timm_model_explains_with_a_weights_file(checkpoint):
    loaded = model_zoo.load("timm:resnet18", weights=checkpoint)
    assert loaded.spec.family == "timm" and len(loaded.categories) == 1000 and loaded.categories[1] == "goldfish"
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    x = loaded.preprocess(image).unsqueeze(0)
    e = explainers.explain(loaded.model, x, target=5)
    assert e.layer == "layer4" and e.attribution.shape == (224, 224)  # found from the network
    reference = timm.create_model("resnet18", pretrained=False)
    reference.load_state_dict(torch.load(checkpoint, weights_only=True))
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), reference(x))  # the same network and weights


def test_preprocessing_is_timms_eval_transform():
    for name in ("resnet18", "efficientnet_b0", "convnext_tiny"):
        spec = model_zoo.get_spec(f"timm:{name}")
        cfg = timm.data.resolve_data_config({}, model=timm.create_model(name, pretrained=False))
        transform = timm.data.create_transform(**cfg)
        image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (333, 250, 3), dtype=np.uint8))
        torch.testing.assert_close(spec.preprocess(image), transform(image), atol=1e-6, rtol=0)


def test_timm_errors_are_specific():
    with pytest.raises(model_zoo.ZooError, match=r"timm has no model 'resnet_nope'; close names: "):
        model_zoo.get_spec("timm:resnet_nope")
    with pytest.raises(model_zoo.WeightsUnavailable, match=r"not in timm's cache yet"):
        model_zoo.load("timm:resnet18", download=False)


def test_timm_in_the_cli(checkpoint, tmp_path, capsys):
    from cli.explain import main
    Image.new("RGB", (256, 256), (200, 100, 0)).save(tmp_path / "a.png")
    assert main([str(tmp_path / "a.png"), "--model", "timm:resnet18", "--weights", str(checkpoint),
                 "--out", str(tmp_path / "o")]) == 0
    (npy,) = (tmp_path / "o").glob("a_gradcam_*.npy")
    assert np.load(npy).shape == (224, 224)


def test_timm_in_the_app():
    from streamlit.testing.v1 import AppTest
    root = Path(__file__).resolve().parents[2]
    at = AppTest.from_file(str(root / "dashboard.py"), default_timeout=120).run()
    at.switch_page("pages/model_zoo.py").run()
    at.text_input(key="zoo_timm_name").set_value("resnet18")
    next(b for b in at.button if b.label == "Add the timm model").click()
    at.run()
    assert not at.exception
    assert any("Added timm:resnet18" in s.value.replace("\\", "") for s in at.success)
    at.switch_page("pages/explore.py").run()
    assert "timm:resnet18 (weights not here yet)" in at.selectbox(key="model").options
