"""efficientnet-lite0: the ImageNet model that works offline. Its weights (EfficientNet-PyTorch's
naming) load into the network (timm's ``efficientnet_lite0``, written in plain PyTorch; checked here
against timm's own) through a key map checked tensor by tensor; on real photos it gives the known
answers."""
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="module")
def timms(lite):
    """timm's efficientnet_lite0 (timm: a dev requirement) with the same weights as ours."""
    timm = pytest.importorskip("timm")
    ref = timm.create_model("efficientnet_lite0", pretrained=False)
    ref.load_state_dict(lite.model.state_dict())
    return ref.eval()


def test_the_network_is_timms_module_for_module(lite, timms):
    """The same layers, by name, type and order (the app's layer pickers and hooks), and the same
    tensors, in order and shape (the key map)."""
    ours = [(n, type(m).__name__) for n, m in lite.model.named_modules()][1:]
    assert ours == [(n, type(m).__name__) for n, m in timms.named_modules()][1:]
    assert len(ours) == 272 and ("bn2.act", "ReLU6") in ours and ("blocks.5.3.conv_dw", "Conv2d") in ours
    assert [(k, tuple(v.shape)) for k, v in lite.model.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in timms.state_dict().items()]
    assert [str(m) for m in lite.model.modules() if isinstance(m, torch.nn.Conv2d)] == \
        [str(m) for m in timms.modules() if isinstance(m, torch.nn.Conv2d)]  # kernels, strides, padding, groups


def _run(model, x, layers):
    """Logits, the named layers' outputs and the input's gradient of the top logit."""
    seen = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.detach().clone()))
             for n in layers]
    x = x.clone().requires_grad_(True)
    try:
        logits = model(x)
        logits[:, logits[0].argmax()].sum().backward()
    finally:
        for h in hooks:
            h.remove()
    return logits.detach(), seen, x.grad


def test_the_network_computes_what_timms_does(lite, timms):
    """On a real photo and on noise: the same logits, the same maps at the layers the app
    explains (conv_head, bn2 after its ReLU6, a block with a residual) and the same gradients to
    the input, through the in-place ReLU6s."""
    photo = lite.preprocess(Image.fromarray(photos.photo("chelsea").image))[None]
    x = torch.cat([photo, torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))])
    layers = ("conv_head", "bn2", "blocks.5.2", "blocks.0.0.bn1")
    ours, theirs = _run(lite.model, x, layers), _run(timms, x, layers)
    torch.testing.assert_close(ours[0], theirs[0], rtol=0, atol=1e-5)
    for name in layers:
        torch.testing.assert_close(ours[1][name], theirs[1][name], rtol=0, atol=1e-5, msg=name)
    assert float(ours[1]["bn2"].min()) >= 0 and float(ours[1]["bn2"].max()) <= 6  # after ReLU6
    torch.testing.assert_close(ours[2], theirs[2], rtol=1e-4, atol=1e-7)


def test_training_mode_as_timms(lite):
    """While training: batch norm on the batch's statistics, and no dropout before the classifier
    (timm's default for efficientnet_lite0; dropout would draw differently in the two networks):
    the same logits and running statistics."""
    timm = pytest.importorskip("timm")
    ours = efficientnet_lite.EfficientNetLite0()
    ours.load_state_dict(lite.model.state_dict())
    theirs = timm.create_model("efficientnet_lite0", pretrained=False)
    theirs.load_state_dict(lite.model.state_dict())
    x = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    outs = [model.train()(x) for model in (ours, theirs)]
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.bn1.running_mean, theirs.bn1.running_mean)
    assert not torch.equal(ours.bn1.running_mean, lite.model.bn1.running_mean)  # the batch's statistics did act


def test_loading_it_imports_neither_timm_nor_torchvision():
    """The first page opens on this model: with timm's network (timm imports torchvision) its cold
    start took 6.5 to 7.3 s, without it 4.3 to 5.5 s (bench/README.md)."""
    code = ("import sys, torch, model_zoo\n"
            "m = model_zoo.load('efficientnet-lite0', download=False)\n"
            "m.model(torch.zeros(1, 3, 224, 224))\n"
            "print(sorted(n for n in ('timm', 'torchvision') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=str(Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
