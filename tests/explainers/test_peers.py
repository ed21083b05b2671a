"""Agreement with the peer libraries' implementations of the same definitions, on ResNet-50 and
VGG-16 with random weights (and ViT-B/16, Swin-T): relative L2 <= 1e-4 at layer resolution,
before any normalisation the peers add for display. Where a peer computes another variant,
the test pins the difference (see the docstrings of explainers.cams and explainers.perturbation).
"""
import copy

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import explainers

pytestmark = pytest.mark.slow

TOL = 1e-4


def rel_l2(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert np.linalg.norm(theirs) > 0, "the peer's map is all zero: nothing compared"
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return torchvision.models.resnet50().eval()


@pytest.fixture(scope="module")
def vgg16():
    torch.manual_seed(0)
    return torchvision.models.vgg16().eval()


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16().eval()
    with torch.no_grad():  # torchvision starts the head at zero: every gradient would be zero
        nn.init.normal_(model.heads.head.weight, std=0.02)
    return model


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    return torchvision.models.swin_t().eval()


MODELS = {"resnet50": ("layer4", 128), "vgg16": ("features.29", 128)}


def _input(size, seed=1):
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _top(model, x) -> int:
    with torch.no_grad():
        return int(model(x).argmax())


def _peer_layer_map(cls, model, layer, x, cls_index, reshape=None, **kw):
    """pytorch-grad-cam's own forward, backward and get_cam_image, then its ReLU; without its
    min-max scaling and resize (display steps). On a copy: the peer's backward() fills .grad."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model = copy.deepcopy(model)
    module = dict(model.named_modules())[layer]
    cam = cls(model=model, target_layers=[module], reshape_transform=reshape, **kw)
    try:
        targets = [ClassifierOutputTarget(cls_index)]
        outputs = cam.activations_and_grads(x)
        grads = None
        if cam.uses_gradients:
            model.zero_grad()
            sum(t(o) for t, o in zip(targets, outputs)).backward(retain_graph=True)
            grads = cam.activations_and_grads.gradients[0].cpu().numpy()
        acts = cam.activations_and_grads.activations[0].cpu().numpy()
        m = cam.get_cam_image(x, module, targets, acts, grads, eigen_smooth=False)
    finally:
        cam.activations_and_grads.release()
    return m[0]


def _peer_class(method):
    import pytorch_grad_cam as pgc
    return {"gradcam": pgc.GradCAM, "gradcam_pp": pgc.GradCAMPlusPlus, "xgradcam": pgc.XGradCAM,
            "hirescam": pgc.HiResCAM, "layercam": pgc.LayerCAM, "eigencam": pgc.EigenCAM}[method]


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("method", ["gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam"])
def test_gradient_cams_equal_pytorch_grad_cam(model_name, method, request):
    model = request.getfixturevalue(model_name)
    layer, size = MODELS[model_name]
    x = _input(size)
    c = _top(model, x)
    ours = explainers.explain(model, x, method=method, layer=layer, target=c).layer_map
    theirs = np.maximum(_peer_layer_map(_peer_class(method), model, layer, x, c), 0)
    assert ours.max() > 0 and rel_l2(ours, theirs) <= TOL


@pytest.mark.parametrize("model_name", list(MODELS))
def test_eigencam_equals_pytorch_grad_cam_up_to_the_sign_we_fix(model_name, request):
    """The peer's projection has LAPACK's arbitrary sign; ours makes the singular vector's loadings
    sum positive. Either the peer's projection or its negation equals ours before the ReLU."""
    model = request.getfixturevalue(model_name)
    layer, size = MODELS[model_name]
    x = _input(size)
    theirs = _peer_layer_map(_peer_class("eigencam"), model, layer, x, 0)
    ours = explainers.explain(model, x, method="eigencam", layer=layer).layer_map
    best = min(rel_l2(ours, np.maximum(s * theirs, 0)) for s in (1, -1) if np.maximum(s * theirs, 0).any())
    assert best <= TOL


@pytest.mark.parametrize("model_name,layer", [("resnet50", "layer2"), ("vgg16", "features.15")])
def test_scorecam_equals_torchcam(model_name, layer, request):
    from torchcam.methods import ScoreCAM
    model = request.getfixturevalue(model_name)
    x = _input(64, seed=2)
    c = _top(model, x)
    ours = explainers.explain(model, x, method="scorecam", layer=layer, target=c, batch_size=64).layer_map
    peer_model = copy.deepcopy(model)
    with ScoreCAM(peer_model, target_layer=layer, batch_size=64, input_shape=tuple(x.shape[1:])) as extractor:
        with torch.no_grad():
            scores = peer_model(x)
        (theirs,) = extractor(class_idx=c, scores=scores, normalized=False)
    assert rel_l2(ours, theirs[0].numpy()) <= TOL


@pytest.mark.parametrize("model_name", list(MODELS))
def test_ablationcam_equals_pytorch_grad_cam(model_name, request):
    import pytorch_grad_cam as pgc
    model = request.getfixturevalue(model_name)
    layer, _ = MODELS[model_name]
    x = _input(64, seed=3)
    c = _top(model, x)
    ours = explainers.explain(model, x, method="ablationcam", layer=layer, target=c, batch_size=64).layer_map
    theirs = np.maximum(_peer_layer_map(pgc.AblationCAM, model, layer, x, c, batch_size=64), 0)
    assert rel_l2(ours, theirs) <= TOL


@pytest.mark.parametrize("model_name", list(MODELS))
def test_integrated_gradients_equal_captum_and_are_complete(model_name, request):
    from captum.attr import IntegratedGradients
    model = request.getfixturevalue(model_name)
    x = _input(64, seed=4)
    c = _top(model, x)
    steps = 16
    ours = explainers.explain(model, x, method="integrated_gradients", target=c, steps=steps, batch_size=16)
    theirs = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=c, n_steps=steps,
                                                  method="gausslegendre", internal_batch_size=16)
    assert rel_l2(ours.attribution, theirs[0].detach().numpy()) <= TOL
    trapezoid = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=c, n_steps=steps,
                                                     method="riemann_trapezoid", internal_batch_size=16)
    ours_t = explainers.explain(model, x, method="integrated_gradients", target=c, steps=steps,
                                quadrature="riemann_trapezoid")
    # captum's trapezoid weights are 1/n (halved at both ends), which sum to (n - 1)/n; ours are
    # the trapezoid rule's 1/(n - 1), which sum to 1: the documented difference is that factor
    assert rel_l2(ours_t.attribution, trapezoid[0].detach().numpy() * steps / (steps - 1)) <= TOL
    # completeness: the attributions sum to the score difference to the baseline
    with torch.no_grad():
        diff = float(model(x)[0, c] - model(torch.zeros_like(x))[0, c])
    many = explainers.explain(model, x, method="integrated_gradients", target=c, steps=64, batch_size=32)
    assert many.attribution.sum() == pytest.approx(diff, rel=0.01)


@pytest.mark.parametrize("model_name", list(MODELS))
def test_occlusion_equals_captum(model_name, request):
    from captum.attr import Occlusion
    model = request.getfixturevalue(model_name)
    x = _input(64, seed=5)
    c = _top(model, x)
    ours = explainers.explain(model, x, method="occlusion", target=c, patch=8, stride=4).attribution
    theirs = Occlusion(model).attribute(x, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), baselines=0.0,
                                        target=c, perturbations_per_eval=64)
    channels = theirs[0].detach().numpy()
    np.testing.assert_allclose(channels[0], channels[1])  # captum's window covers every colour
    assert rel_l2(ours, channels[0]) <= TOL


def _vit_reshape(tensor, height=14, width=14):
    """pytorch-grad-cam's documented ViT reshape transform (tutorials/vision_transformers.md)."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def _swin_reshape(tensor):
    """Its Swin transform, for torchvision's channels-last N x h x w x C blocks."""
    return tensor.permute(0, 3, 1, 2)


@pytest.mark.parametrize("method", ["gradcam", "gradcam_pp", "layercam"])
def test_vit_gradcam_equals_pytorch_grad_cam_with_its_reshape(vit, method):
    layer = explainers.default_layer(vit)
    assert layer == "encoder.layers.encoder_layer_11.ln_1"
    x = _input(224, seed=6)
    c = _top(vit, x)
    capture = explainers.Capture(vit, x, layer=layer)
    assert capture.layout == "tokens after the class token as a 14x14 grid"
    ours = capture.explain(method, c).layer_map
    theirs = np.maximum(_peer_layer_map(_peer_class(method), vit, layer, x, c, reshape=_vit_reshape), 0)
    assert ours.shape == (14, 14) and ours.max() > 0 and ours.std() > 0
    assert rel_l2(ours, theirs) <= TOL
    # the caller's reshape= overrides the rule; the peer's own transform gives the same map
    mine = explainers.explain(vit, x, method=method, layer=layer, target=c, reshape=_vit_reshape).layer_map
    assert rel_l2(mine, ours) <= 1e-6


def test_vit_last_block_output_has_zero_patch_gradients(vit):
    """Why the default is the last block's first norm: after the last block only the class token
    reaches the head, so Grad-CAM at the encoder's output is empty."""
    x = _input(224, seed=7)
    late = explainers.explain(vit, x, layer="encoder.layers.encoder_layer_11", target=3)
    assert late.layer_map.max() == 0


def test_swin_gradcam_equals_pytorch_grad_cam_with_a_channels_last_reshape(swin):
    layer = explainers.default_layer(swin)
    assert layer == "features.7.1.norm1"
    x = _input(224, seed=8)
    c = _top(swin, x)
    capture = explainers.Capture(swin, x, layer=layer)
    assert capture.layout == "channels-last grid, permuted" and capture.activation.shape == (1, 768, 7, 7)
    ours = capture.explain("gradcam", c).layer_map
    theirs = np.maximum(_peer_layer_map(_peer_class("gradcam"), swin, layer, x, c, reshape=_swin_reshape), 0)
    assert ours.max() > 0 and rel_l2(ours, theirs) <= TOL


def test_forward_heavy_cams_on_a_vit():
    """Ablation-CAM changes tokens: channel k of every token (the class token's included) is
    zeroed, as the paper zeroes a channel. pytorch-grad-cam's AblationLayerVit substitutes
    min - 1e7 where the minimum is not 0 (a LayerNorm's output), another variant, so the weights
    are checked against a full forward per channel instead: the broadcast of the part before
    the layer (one image) gives the same drops as repeating the image."""
    torch.manual_seed(0)
    tiny = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                hidden_dim=16, mlp_dim=32, num_classes=5).eval()
    with torch.no_grad():
        nn.init.normal_(tiny.heads.head.weight, std=0.5)
    x = _input(32, seed=9)
    layer = explainers.default_layer(tiny, x)
    assert layer == "encoder.layers.encoder_layer_1.ln_1"
    e = explainers.explain(tiny, x, method="ablationcam", target=2, batch_size=5)
    module = dict(tiny.named_modules())[layer]
    with torch.no_grad():
        y = tiny(x)[0, 2].item()
        drops = []
        for k in range(16):
            handle = module.register_forward_hook(lambda m, i, o, k=k: o.index_fill(-1, torch.tensor([k]), 0.0))
            try:
                drops.append((y - tiny(x)[0, 2].item()) / y)
            finally:
                handle.remove()
    np.testing.assert_allclose(e.weights, drops, rtol=1e-4, atol=1e-6)
    assert e.layer_map.shape == (4, 4)
    seen = []
    s = explainers.explain(tiny, x, method="scorecam", target=2, batch_size=4, progress=lambda d, t: seen.append(d))
    assert s.layer_map.shape == (4, 4) and s.weights.sum() == pytest.approx(1.0, rel=1e-5) and seen[-1] == 16
