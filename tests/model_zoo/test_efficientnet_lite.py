"""efficientnet-lite0: the ImageNet model that works offline. Its weights (EfficientNet-PyTorch's
naming) load into timm's network through a key map checked tensor by tensor; on real photos it
gives the known answers."""
import numpy as np
import pytest
import torch
from PIL import Image

import model_zoo
from model_zoo import efficientnet_lite, photos


@pytest.fixture(scope="module")
def lite():
    return model_zoo.load("efficientnet-lite0", download=False)


def test_ready_on_a_fresh_machine_without_network():
    assert "efficientnet-lite0" in model_zoo.list_models("imagenet")
    assert model_zoo.weights_available("efficientnet-lite0")
    assert efficientnet_lite.weights_path().is_file()


def test_the_reference_preprocessing():
    p = model_zoo.get_spec("efficientnet-lite0").preprocess
    assert (p.resize, p.crop, p.interpolation) == (256, 224, "bicubic")  # 224 / (224 + 32), bicubic
    # (x - 127) / 128 on 0..255: 0 -> -127/128, 255 -> 1
    x = p(Image.new("RGB", (300, 300), (0, 127, 255)))
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [-127 / 128, 0, 128 / 128], atol=1e-6)


def test_weights_load_by_the_checked_key_map(lite):
    raw, _ = model_zoo.read_state_dict(efficientnet_lite.weights_path())
    assert len(raw) == 296 and len([k for k in raw if not k.endswith("num_batches_tracked")]) == 247
    assert next(iter(raw)) == "_conv_stem.weight"
    own = lite.model.state_dict()
    mapped = efficientnet_lite.timm_state(lite.model, raw)
    assert list(mapped) == list(own)
    for (k, v), (_, w) in zip(raw.items(), own.items()):
        assert torch.equal(v, w), k
    assert mapped["blocks.1.0.conv_pwl.weight"] is raw["_blocks.1._project_conv.weight"]
    assert mapped["blocks.0.0.conv_pw.weight"] is raw["_blocks.0._project_conv.weight"]  # no expansion


def test_a_mismatch_names_the_tensor(lite):
    raw, _ = model_zoo.read_state_dict(efficientnet_lite.weights_path())
    bad = dict(raw)
    bad["_blocks.3._depthwise_conv.weight"] = torch.zeros(3, 1, 3, 3)
    with pytest.raises(model_zoo.WeightsError, match=r"'_blocks.3._depthwise_conv.weight' \(blocks.2.0.conv_dw.weight\) has shape"):
        efficientnet_lite.timm_state(lite.model, bad)
    short = {k: v for k, v in raw.items() if k != "_fc.bias"}
    with pytest.raises(model_zoo.WeightsError, match="295 tensors, the network 296"):
        efficientnet_lite.timm_state(lite.model, short)
    odd = {("_head" if k == "_conv_head.weight" else k): v for k, v in raw.items()}
    with pytest.raises(model_zoo.WeightsError, match="'_head': no rule"):
        efficientnet_lite.timm_state(lite.model, odd)
    swapped = dict(raw)
    keys = list(swapped)
    i, j = keys.index("_fc.weight"), keys.index("_fc.bias")
    keys[i], keys[j] = keys[j], keys[i]
    with pytest.raises(model_zoo.WeightsError, match="'_fc.bias' maps to 'classifier.bias', but the network's tensor"):
        efficientnet_lite.timm_state(lite.model, {k: raw[k] for k in keys})


def _top(lite, name, k=3):
    image = Image.fromarray(photos.photo(name).image)
    with torch.no_grad():
        p = torch.softmax(lite.model(lite.preprocess(image)[None]), 1)[0]
    top = p.topk(k)
    return [(lite.categories[int(i)], float(v)) for v, i in zip(*top)]


def test_known_answers_on_real_photos(lite):
    """Measured with the reference preprocessing: chelsea tiger cat 0.40, tabby 0.26, Egyptian
    cat 0.25; coffee espresso 0.91; rocket missile 0.44, projectile 0.30."""
    chelsea = _top(lite, "chelsea")
    assert {n for n, _ in chelsea} == {"tiger cat", "tabby", "Egyptian cat"}
    assert chelsea[0] == ("tiger cat", pytest.approx(0.40, abs=0.02))
    coffee = _top(lite, "coffee", 1)
    assert coffee[0] == ("espresso", pytest.approx(0.91, abs=0.02))
    rocket = _top(lite, "rocket", 2)
    assert [n for n, _ in rocket] == ["missile", "projectile"]
