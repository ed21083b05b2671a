"""Identities from the Grad-CAM paper, on real architectures and on a VGG-like net."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explainers
from explainers import ClassLogit, Negated
from tests.conftest import assert_maps_close

# the methods for CNNs: LeGrad reads attention (tests/explainers/test_legrad.py has it on ViTs)
CNN_METHODS = [m.name for m in explainers.list_methods() if not m.transformers_only]


def _activations(model, layer, x):
    store = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda m, i, o: store.__setitem__("a", o.detach().clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return store["a"]


def test_gradcam_equals_cam_on_gap_linear_head(resnet18):
    """ResNet: layer4 -> global average pooling -> fc. y^c = sum_k w_ck (1/Z) sum_ij A^k_ij, so
    alpha_k = w_ck / Z and Grad-CAM = ReLU(CAM) / Z with CAM = sum_k w_ck A^k (Zhou et al.)."""
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    acts = _activations(resnet18, "layer4", x)[0]
    z = acts.shape[-1] * acts.shape[-2]
    for c in (0, 7, 19):
        cam = torch.relu(torch.einsum("k,khw->hw", resnet18.fc.weight[c].detach(), acts))
        e = explainers.explain(resnet18, x, layer="layer4", target=c)
        assert cam.max() > 0
        np.testing.assert_allclose(e.layer_map * z, cam.numpy(), rtol=1e-4, atol=1e-6 * float(cam.max()))
        np.testing.assert_allclose(e.weights * z, resnet18.fc.weight[c].detach().numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("model_name", ["resnet18", "tiny_vgg"])
def test_counterfactual_is_gradcam_of_negated_score(model_name, request):
    model = request.getfixturevalue(model_name)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    for c in (0, 3):
        cf = explainers.explain(model, x, method="counterfactual", target=c)
        neg = explainers.explain(model, x, method="gradcam", target=Negated(ClassLogit(c)))
        # equal up to float rounding (exactly equal on the hand-computed net)
        assert_maps_close(cf.layer_map, neg.layer_map)
        assert_maps_close(cf.attribution, neg.attribution)
        assert_maps_close(cf.weights, neg.weights)
    assert cf.layer_map.max() > 0


@pytest.mark.parametrize("model_name", ["resnet18", "tiny_vgg"])
def test_guided_gradcam_is_guided_backprop_times_upsampled_gradcam(model_name, request):
    model = request.getfixturevalue(model_name)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    non_zero = 0
    for c in range(5):
        gc = explainers.explain(model, x, method="gradcam", target=c)
        gb = explainers.explain(model, x, method="guided_backprop", target=c)
        ggc = explainers.explain(model, x, method="guided_gradcam", target=c)
        # the Grad-CAM half of Guided Grad-CAM uses exact gradients, though its forward is guided
        assert_maps_close(ggc.layer_map, gc.layer_map)
        up = F.interpolate(torch.from_numpy(gc.layer_map)[None, None], size=(32, 32),
                           mode="bilinear", align_corners=False)[0, 0].numpy()
        assert_maps_close(gc.attribution, up)
        assert_maps_close(ggc.attribution, gb.attribution * up[None])
        non_zero += bool(gc.layer_map.max() > 0 and np.abs(gb.attribution).max() > 0)
    assert non_zero >= 2


def _guided_by_module_hooks(model, x, cls):
    """Guided Backprop written another way (Springenberg et al.): an out-of-place copy whose
    every nn.ReLU clamps its input gradient at zero (the ReLU's own mask already applied), by a
    full backward hook; an independent reference for the TorchFunctionMode implementation."""
    twin = _out_of_place(model)
    handles = [m.register_full_backward_hook(lambda mod, gin, gout: (gin[0].clamp(min=0),))
               for m in twin.modules() if isinstance(m, nn.ReLU)]
    try:
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(twin(xi)[0, cls], xi)
    finally:
        for h in handles:
            h.remove()
    return g[0].numpy()


def test_guided_backprop_equals_the_module_hook_reference(tiny_vgg):
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    gb = explainers.explain(tiny_vgg, x, method="guided_backprop", target=1).attribution
    assert_maps_close(gb, _guided_by_module_hooks(tiny_vgg, x, 1))
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(tiny_vgg(xi)[0, 1], xi)
    assert not np.allclose(gb, g[0].numpy())  # and it is not the plain gradient


def _out_of_place(model):
    twin = copy.deepcopy(model)
    for m in twin.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return twin


@pytest.mark.parametrize("method", CNN_METHODS)
@pytest.mark.parametrize("model_name", ["resnet18", "tiny_vgg"])
def test_inplace_and_out_of_place_relu_agree(model_name, method, request):
    model = request.getfixturevalue(model_name)
    assert any(isinstance(m, nn.ReLU) and m.inplace for m in model.modules())
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    a = explainers.explain(model, x, method=method, target=2)
    b = explainers.explain(_out_of_place(model), x, method=method, target=2)
    assert_maps_close(a.attribution, b.attribution)  # bit-identical on the hand-computed net


@pytest.mark.parametrize("method", CNN_METHODS)
def test_k_classes_from_one_forward_equal_k_calls(resnet18, method):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    classes = [0, 5, 11, 19]
    together = explainers.explain(resnet18, x, method=method, target=classes)
    assert isinstance(together, list) and len(together) == 4
    assert sum(np.abs(e.attribution).max() > 0 for e in together) >= 2
    for c, e in zip(classes, together):
        alone = explainers.explain(resnet18, x, method=method, target=c)
        assert e.target == ClassLogit(c)
        assert_maps_close(e.attribution, alone.attribution)
        assert e.score == pytest.approx(alone.score, rel=1e-6)


def test_k_classes_use_one_forward(resnet18):
    explainers.default_layer(resnet18)  # found once per model (one forward), then cached
    calls = []
    handle = resnet18.conv1.register_forward_hook(lambda *a: calls.append(1))
    explainers.explain(resnet18, torch.randn(1, 3, 64, 64), target=[1, 2, 3, 4, 5])
    explainers.explain(resnet18, torch.randn(1, 3, 64, 64), method="guided_gradcam", target=[1, 2, 3])
    explainers.explain(resnet18, torch.randn(1, 3, 64, 64), target=explainers.TopK(5))
    handle.remove()
    assert len(calls) == 3


def test_top_k_picks_the_highest_logits(resnet18):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        top = resnet18(x)[0].topk(3).indices.tolist()
    got = explainers.explain(resnet18, x, target=explainers.TopK(3))
    assert [e.target.index for e in got] == top
    assert explainers.explain(resnet18, x).target == ClassLogit(top[0])


@pytest.mark.parametrize("method", CNN_METHODS)
def test_batch_equals_single_images(resnet18, image_batch, method):
    batch = explainers.explain(resnet18, image_batch, method=method, target=3)
    assert batch.attribution.shape[0] == 2 and batch.score.shape == (2,)
    # Ablation-CAM's weights are (y - y_k) / y, differences of two nearly equal float32 logits
    # from forwards of other batch sizes (other kernels): their rounding is amplified by y / (y - y_k).
    # On torch 2.15.0+cu132's CPU kernels batch and single images differed by 1.04e-4 of the peak.
    rel = 1e-3 if method == "ablationcam" else 1e-4
    for i in range(2):
        one = explainers.explain(resnet18, image_batch[i:i + 1], method=method, target=3)
        assert_maps_close(batch.attribution[i], one.attribution, rel=rel)


def test_batch_top1_is_per_sample(resnet18, image_batch):
    with torch.no_grad():
        top = resnet18(image_batch).argmax(1)
    batch = explainers.explain(resnet18, image_batch)
    for i in range(2):
        one = explainers.explain(resnet18, image_batch[i:i + 1], target=int(top[i]))
        assert_maps_close(batch.layer_map[i], one.layer_map)


def test_shapes(resnet18):
    x = torch.randn(1, 3, 64, 48)
    e = explainers.explain(resnet18, x, target=1)
    assert e.attribution.shape == (64, 48) and e.attribution.dtype == np.float32
    assert e.layer_map.shape == (2, 2) and e.weights.shape == (512,)
    g = explainers.explain(resnet18, x, method="guided_backprop", target=1)
    assert g.attribution.shape == (3, 64, 48) and g.attribution.dtype == np.float32


def test_middle_layer_and_default_layer(resnet18):
    x = torch.randn(1, 3, 64, 64)
    e = explainers.explain(resnet18, x, layer="layer2", target=1)
    assert e.layer == "layer2" and e.layer_map.shape == (8, 8)
    assert explainers.explain(resnet18, x, target=1).layer == "layer4"


class _DictOutput(nn.Module):
    """A model whose output is not a tensor (as captioning or VQA models' often are)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return {"logits": self.inner(x)}


def test_custom_target_on_a_non_tensor_output(resnet18):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(13))
    wrapped = _DictOutput(resnet18).eval()
    word = explainers.Custom(lambda out: out["logits"][:, 3], "answer 3")
    e = explainers.explain(wrapped, x, layer="inner.layer4", target=word)
    ref = explainers.explain(resnet18, x, layer="layer4", target=3)
    assert repr(e.target) == "Custom('answer 3')"
    assert_maps_close(e.attribution, ref.attribution, rel=1e-6)
    with pytest.raises(ValueError, match="picking the top classes needs an N x classes output"):
        explainers.explain(wrapped, x, layer="inner.layer4")
