"""The CAM family and the pixel methods: hand-computed maps, identities, the registry and the
options of each method."""
from fractions import Fraction as Fr

import numpy as np
import pytest
import torch
from torch import nn

import explainers
from explainers import cams
from tests.conftest import assert_maps_close

# activations A (2 channels, 2 x 2) and a head y = sum(W * A): the gradient at the layer is W,
# different at every position, so the variants' formulas give different maps
A = [[[1, 2], [0, 3]], [[2, 1], [1, 1]]]
W = [[[1, -1], [2, 0]], [[Fr(1, 2), 1], [-1, 2]]]


class LinearHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.feat = nn.Identity()
        self.register_buffer("w", torch.tensor([[[float(v) for v in row] for row in ch] for ch in W]))

    def forward(self, x):
        return (self.feat(x) * self.w).sum(dim=(1, 2, 3)).unsqueeze(1)


def _hand(method):
    """The map by the papers' formulas, in exact fractions, position by position."""
    a = [[[Fr(v) for v in row] for row in ch] for ch in A]
    g = [[[Fr(v) for v in row] for row in ch] for ch in W]
    pos = [(i, j) for i in range(2) for j in range(2)]
    if method in ("hirescam", "layercam"):
        keep = (lambda v: v) if method == "hirescam" else (lambda v: max(v, 0))
        values = {p: sum(keep(g[c][p[0]][p[1]]) * a[c][p[0]][p[1]] for c in range(2)) for p in pos}
    else:
        alpha = []
        for c in range(2):
            s = sum(a[c][i][j] for i, j in pos)
            if method == "xgradcam":
                alpha.append(sum(g[c][i][j] * a[c][i][j] for i, j in pos) / s)
            else:  # Grad-CAM++: a_ij = g^2 / (2 g^2 + sum(A) g^3), zero where g = 0
                total = Fr(0)
                for i, j in pos:
                    gij = g[c][i][j]
                    if gij:
                        total += gij ** 2 / (2 * gij ** 2 + s * gij ** 3) * max(gij, 0)
                alpha.append(total)
        values = {p: sum(alpha[c] * a[c][p[0]][p[1]] for c in range(2)) for p in pos}
    return np.array([[float(max(values[(i, j)], 0)) for j in range(2)] for i in range(2)])


def test_hand_values_are_the_ones_worked_out_on_paper():
    """The fractions above, worked out by hand once more as literals."""
    assert _hand("hirescam").tolist() == [[2, 0], [0, 2]]
    assert _hand("layercam").tolist() == [[2, 1], [0, 2]]
    np.testing.assert_allclose(_hand("xgradcam"), [[31 / 30, 4 / 15], [3 / 5, 1 / 10]])
    a0, a1 = 15 / 56, 53 / 126  # Grad-CAM++'s channel weights
    np.testing.assert_allclose(_hand("gradcam_pp"), [[a0 + 2 * a1, 2 * a0 + a1], [a1, 3 * a0 + a1]])


@pytest.mark.parametrize("method", ["gradcam_pp", "xgradcam", "hirescam", "layercam"])
def test_cam_variants_equal_hand_computed_maps(method):
    x = torch.tensor([[[float(v) for v in row] for row in ch] for ch in A]).unsqueeze(0)
    e = explainers.explain(LinearHead().eval(), x, method=method, layer="feat", target=0)
    np.testing.assert_allclose(e.layer_map, _hand(method), rtol=1e-5, atol=1e-6)
    assert e.layer == "feat" and e.attribution.shape == (2, 2)
    if method in ("hirescam", "layercam"):
        assert e.weights is None  # element-wise: no channel weights
    else:
        assert e.weights.shape == (2,)


def test_on_a_gap_linear_head_xgradcam_and_hirescam_equal_gradcam(resnet18):
    """With global average pooling and a linear layer the gradient is the same at every
    position (w_c / Z), so XGrad-CAM's and HiResCAM's weights reduce to Grad-CAM's."""
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(40))
    capture = explainers.Capture(resnet18, x, layer="layer4")
    ref = capture.explain("gradcam", 3)
    assert ref.layer_map.max() > 0
    for method in ("xgradcam", "hirescam"):
        assert_maps_close(capture.explain(method, 3).layer_map, ref.layer_map, rel=1e-4)
    assert not np.allclose(capture.explain("layercam", 3).layer_map, ref.layer_map)


def test_eigencam_is_the_first_principal_component_with_a_fixed_sign(resnet18):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(41))
    capture = explainers.Capture(resnet18, x, layer="layer3")
    a = capture.activation[0].double().numpy()
    c, h, w = a.shape
    m = a.reshape(c, h * w).T
    m = m - m.mean(0)
    _, _, vt = np.linalg.svd(m, full_matrices=False)
    v = vt[0] if vt[0].sum() > 0 else -vt[0]
    expected = np.maximum(m @ v, 0).reshape(h, w)
    got = capture.explain("eigencam", [1, 7])
    np.testing.assert_allclose(got[0].layer_map, expected, rtol=1e-4, atol=1e-5 * expected.max())
    np.testing.assert_array_equal(got[0].layer_map, got[1].layer_map)  # no target: one map for every class
    assert not explainers.get_method("eigencam").class_discriminative


def test_every_method_is_one_registry_entry():
    assert explainers.method_names() + explainers.method_names("baseline") == list(explainers.REGISTRY)
    assert {"gradcam", "counterfactual", "guided_backprop", "guided_gradcam", "gradcam_pp", "xgradcam",
            "hirescam", "layercam", "scorecam", "ablationcam", "eigencam", "smoothgrad",
            "integrated_gradients", "occlusion"} <= set(explainers.method_names())
    for m in explainers.list_methods():
        assert m.title and m.paper and m.passes and m.summary
        assert m.kind in ("layer map", "pixel map")
        cost = m.cost(512, (224, 224))
        assert cost.forwards >= 0 and cost.backwards >= 0
    assert [m.name for m in explainers.list_methods() if m.forward_heavy] == [
        "scorecam", "ablationcam", "integrated_gradients", "occlusion", "rise", "smoothgrad"]
    same = explainers.get_method("gradcam")
    assert explainers.register_method(same) is same  # registering the same entry again: a no-op
    with pytest.raises(ValueError, match="a different method is already registered as 'gradcam'"):
        explainers.register_method(explainers.Method(**{**same.__dict__, "title": "Other"}))


def test_unknown_method_and_option_are_named(resnet18):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"unknown method 'gradcam2'; choose one of gradcam, counterfactual"):
        explainers.explain(resnet18, x, method="gradcam2")
    with pytest.raises(ValueError, match=r"integrated_gradients has no option 'step'; its options: steps, "
                                         r"baseline, quadrature, batch_size"):
        explainers.explain(resnet18, x, method="integrated_gradients", step=8)
    with pytest.raises(ValueError, match="gradcam has no option 'steps'; its options: none"):
        explainers.explain(resnet18, x, steps=8)
    with pytest.raises(ValueError, match="scorecam: batch_size must be an integer >= 1, got 0"):
        explainers.explain(resnet18, x, method="scorecam", batch_size=0)
    with pytest.raises(ValueError, match="unknown quadrature 'simpson'"):
        explainers.explain(resnet18, x, method="integrated_gradients", quadrature="simpson")
    with pytest.raises(ValueError, match="smoothgrad cannot wrap smoothgrad"):
        explainers.explain(resnet18, x, method="smoothgrad", base="smoothgrad")
    with pytest.raises(ValueError, match="patch 100 is larger than the image"):
        explainers.explain(resnet18, x, method="occlusion", patch=100)


def test_progress_is_reported_through_the_callback(resnet18):
    x = torch.randn(1, 3, 64, 64)
    for method, options in (("scorecam", {"batch_size": 128}), ("ablationcam", {"batch_size": 128}),
                            ("occlusion", {"batch_size": 100}), ("integrated_gradients", {"steps": 8, "batch_size": 4}),
                            ("smoothgrad", {"samples": 4, "batch_size": 2})):
        seen = []
        explainers.explain(resnet18, x, method=method, target=1, progress=lambda d, t: seen.append((d, t)),
                           **options)
        total = seen[-1][1]
        assert seen[0] == (0, total) and seen[-1] == (total, total), method
        assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) >= 3, method


def test_integrated_gradients_completeness(shapes_resnet):
    """Σ IG = s(x) - s(x') within 1% (Sundararajan et al.'s completeness axiom), on the trained
    shapes model and its own image, for the logit of the class it predicts."""
    model, x = shapes_resnet
    with torch.no_grad():
        out = model(x)
        base_out = model(torch.zeros_like(x))
    cls = int(out.argmax())
    e = explainers.explain(model, x, method="integrated_gradients", target=cls, steps=64)
    diff = float(out[0, cls] - base_out[0, cls])
    assert abs(diff) > 1
    assert e.attribution.sum() == pytest.approx(diff, rel=0.01)
    trapezoid = explainers.explain(model, x, method="integrated_gradients", target=cls, steps=64,
                                   quadrature="riemann_trapezoid")
    assert trapezoid.attribution.sum() == pytest.approx(diff, rel=0.01)


def test_integrated_gradients_of_a_linear_model_is_exact():
    """For s(x) = <w, x>, IG = (x - x') * w with any number of steps."""
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    x = torch.randn(1, 3, 2, 2)
    for steps in (1, 3):
        e = explainers.explain(lin, x, method="integrated_gradients", target=1, steps=steps, baseline=0.5)
        expected = ((x - 0.5) * lin[1].weight[1].view(1, 3, 2, 2)).detach().numpy()[0]
        np.testing.assert_allclose(e.attribution, expected, rtol=1e-5, atol=1e-7)


def test_smoothgrad_is_the_mean_of_the_base_method_over_its_noisy_copies(resnet18):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(42))
    got = explainers.explain(resnet18, x, method="smoothgrad", base="gradcam", samples=3, noise=0.2, seed=5,
                             target=4)
    sigma = 0.2 * float(x.max() - x.min())
    maps = []
    for s in range(3):
        eps = torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(5 * 100_003 + s))
        maps.append(explainers.explain(resnet18, x + sigma * eps, target=4).attribution)
    assert_maps_close(got.attribution, np.mean(maps, axis=0), rel=1e-4)
    assert got.layer == "layer4" and got.layer_map.shape == (2, 2)
    clean = explainers.explain(resnet18, x, method="smoothgrad", noise=0.0, samples=2, target=4)
    assert_maps_close(clean.attribution, explainers.explain(resnet18, x, method="gradient", target=4).attribution)
    again = explainers.explain(resnet18, x, method="smoothgrad", base="gradcam", samples=3, noise=0.2, seed=5,
                               target=4)
    np.testing.assert_array_equal(again.attribution, got.attribution)  # reproducible


def test_gradient_is_the_plain_input_gradient(resnet18):
    x = torch.randn(1, 3, 64, 64)
    e = explainers.explain(resnet18, x, method="gradient", target=2)
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(resnet18(xx)[0, 2], xx)
    assert_maps_close(e.attribution, g[0].numpy(), rel=1e-5)


def test_occlusion_by_hand():
    """A model that sums the input: hiding a square drops the score by the square's sum."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.fill_(1.0)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    e = explainers.explain(model, x, method="occlusion", target=0, patch=2, stride=2)
    blocks = x[0, 0].view(2, 2, 2, 2).sum(dim=(1, 3))  # the sum of each 2x2 square
    expected = blocks.repeat_interleave(2, 0).repeat_interleave(2, 1)
    np.testing.assert_allclose(e.attribution, expected.numpy(), rtol=1e-6)


def test_ablation_falls_back_when_the_batch_cannot_broadcast():
    """A network that fixes the batch size after the layer: the broadcast is checked and the
    image is repeated instead; the map is the same as on a network that broadcasts."""
    class FixedBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            n = x.shape[0]
            a = self.relu(self.conv(x))
            return self.fc(a.mean(dim=(2, 3)).reshape(n, -1)) + 0 * x.mean()

    torch.manual_seed(0)
    net = FixedBatch().eval()
    x = torch.randn(1, 3, 8, 8)
    e = explainers.explain(net, x, method="ablationcam", layer="relu", target=1, batch_size=2)
    a = net.relu(net.conv(x)).detach()
    y = net(x)[0, 1].item()
    alpha = []
    for k in range(4):
        ablated = a.clone()
        ablated[:, k] = 0
        alpha.append((y - net.fc(ablated.mean(dim=(2, 3)))[0, 1].item()) / y)
    expected = torch.relu(torch.einsum("c,chw->hw", torch.tensor(alpha), a[0]))
    np.testing.assert_allclose(e.layer_map, expected.numpy(), rtol=1e-4, atol=1e-6)


def test_formula_functions_take_batched_targets():
    g = torch.randn(3, 2, 4, 5, 5)
    a = torch.rand(2, 4, 5, 5)
    for fn in (cams.gradcam, cams.gradcam_pp, cams.xgradcam, cams.hirescam, cams.layercam):
        _, cam = fn(g, a)
        assert cam.shape == (3, 2, 5, 5) and (cam >= 0).all()


@pytest.fixture(scope="module")
def shapes_resnet():
    import model_zoo
    from PIL import Image
    loaded = model_zoo.load("shapes-resnet")
    _, scene = model_zoo.shapes.gallery()[0]
    return loaded.model, loaded.preprocess(Image.fromarray(scene.image)).unsqueeze(0)


@pytest.mark.parametrize("base", ["scorecam", "occlusion", "gradcam"])
def test_a_batch_with_different_top_classes_keeps_each_images_class(base):
    """Each image's own top-1 class (a RankedClass) stays its class on the changed copies that
    forward-heavy methods and SmoothGrad run, also when one wraps the other."""
    import model_zoo
    from PIL import Image
    loaded = model_zoo.load("shapes-resnet")
    scenes = {}
    for _, scene in model_zoo.shapes.gallery():
        if len(scene.objects) == 1:
            scenes.setdefault(scene.objects[0].name, scene)
    first, second = list(scenes.values())[:2]
    x = torch.stack([loaded.preprocess(Image.fromarray(s.image)) for s in (first, second)])
    model = loaded.model
    with torch.no_grad():
        top = model(x).argmax(1).tolist()
    assert top[0] != top[1]
    options = {"batch_size": 256} if base == "scorecam" else {"stride": 8} if base == "occlusion" else {}
    batch = explainers.explain(model, x, method=base, **options)
    smooth = explainers.explain(model, x, method="smoothgrad", base=base, samples=2)
    for i in range(2):
        one = explainers.explain(model, x[i:i + 1], method=base, target=top[i], **options)
        assert_maps_close(batch.attribution[i], one.attribution)
        alone = explainers.explain(model, x[i:i + 1], method="smoothgrad", base=base, samples=2, target=top[i])
        assert_maps_close(smooth.attribution[i], alone.attribution, rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cam_arithmetic_runs_in_float32_for_narrow_models(dtype):
    """A float16 model's Grad-CAM++: Σ A · g³ overflowed float16 (weights of 0 or NaN); bfloat16
    was 0.1-0.2 % off. Given the model's own gradients and activations (in its dtype), every
    formula now equals the float64 evaluation of the same numbers within 2e-6, as torch-cam
    allows."""
    torch.manual_seed(0)
    g = (torch.randn(2, 1, 64, 7, 7) * 6).to(dtype)  # 6³ x Σ A (~980) is far beyond float16's 65,504
    a = (torch.rand(1, 64, 7, 7) * 40).to(dtype)
    for name in ("gradcam", "counterfactual", "gradcam_pp", "xgradcam", "hirescam", "layercam"):
        formula = getattr(cams, name)
        alpha, cam = formula(g, a)
        ref_alpha, ref_cam = formula(g.double(), a.double())
        assert cam.dtype == torch.float32 and torch.isfinite(cam).all(), name
        torch.testing.assert_close(cam.double(), ref_cam, rtol=2e-6, atol=2e-6 * float(ref_cam.abs().max()))
        if alpha is not None:
            assert torch.isfinite(alpha).all(), name
            torch.testing.assert_close(alpha.double(), ref_alpha, rtol=2e-6, atol=2e-6 * float(ref_alpha.abs().max()))


def test_a_half_precision_model_gets_the_float32_models_grad_cam_pp():
    """Through explain(): large activations (Σ A ~ 10^5) made float16's Σ A · g³ overflow and one
    channel's weight 7 % off; computed in float32, the float16 copy's weights are those of the
    float32 network within 0.1 % (the rest is float16's own activations and gradients)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 3)).eval()
    with torch.no_grad():
        net[4].weight.mul_(400)
        net[0].weight.mul_(3)
    x = torch.rand(1, 3, 16, 16) * 200
    ref = explainers.explain(net, x, layer="1", target=0, method="gradcam_pp")
    half = explainers.explain(net.half(), x.half(), layer="1", target=0, method="gradcam_pp")
    assert np.isfinite(half.weights).all()
    np.testing.assert_allclose(half.weights, ref.weights, rtol=1e-3, atol=1e-6)
