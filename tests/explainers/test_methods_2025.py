"""Issue 31's CAM methods (FinerCAM, ShapleyCAM, KPCA-CAM): against their reference
implementations (pytorch-grad-cam 1.5.7, torchcam 0.5.0) on a torchvision ResNet-18 with random
weights and on the shipped shapes-resnet with a real scene, by Pearson's r of the maps at input
resolution (the peers scale and resize for display); and on hand-computable cases."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

import explainers
import model_zoo
from explainers import cams

MIN_R = 0.99


def pearson(ours, theirs) -> float:
    a = torch.as_tensor(np.asarray(ours), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(theirs), dtype=torch.float64)
    if a.shape != b.shape:
        a = F.interpolate(a[None, None], size=tuple(b.shape), mode="bilinear", align_corners=False)[0, 0]
    assert float(b.std()) > 0, "the peer's map is flat: nothing compared"
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


@pytest.fixture(scope="module")
def cases():
    """(name, model, input, the layers compared): random-weight ResNet-18, and shapes-resnet on
    a gallery scene."""
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    shapes = model_zoo.load("shapes-resnet")
    from model_zoo.shapes import gallery
    _, xs = shapes.preprocess.prepare(Image.fromarray(dict(gallery())["hexagon"].image))
    return [("resnet18", resnet, x, ("layer3", "layer4")),
            ("shapes-resnet", shapes.model, xs[None], ("layer2", "layer3"))]


def _modules(model, layer):
    return [dict(model.named_modules())[layer]]


def _top(model, x) -> int:
    with torch.no_grad():
        return int(model(x).argmax())


@pytest.mark.parametrize("references", [1, 3])
def test_finercam_with_probability_weights_is_pytorch_grad_cams(cases, references):
    from pytorch_grad_cam import FinerCAM
    for name, model, x, layers in cases:
        c = _top(model, x)
        for layer in layers:
            ours = explainers.explain(model, x, method="finercam", layer=layer, target=c, gamma=1.0,
                                      references=references, weights="probability")
            peer_model = copy.deepcopy(model)  # the peer's backward() fills .grad
            comparison = [1] if references == 1 else None  # its default: the 3 nearest
            peer = FinerCAM(peer_model, _modules(peer_model, layer))(x, alpha=1.0, comparison_categories=comparison,
                                                                     target_idx=c)[0]
            assert pearson(ours.attribution, peer) >= MIN_R, (name, layer)


@pytest.mark.parametrize("base", ["gradcam", "layercam"])
def test_finercam_is_torchcams(cases, base):
    """torchcam 0.5.0's FinerCAM (y_c - gamma * the mean of the 3 classes nearest by logit,
    gamma 0.6: our defaults). Its Grad-CAM++ base is another formula than ours (see
    explainers.cams; test_peers pins it), so the bases compared are Grad-CAM and LayerCAM."""
    from torchcam.methods import FinerCAM, GradCAM, LayerCAM
    cls = {"gradcam": GradCAM, "layercam": LayerCAM}[base]
    for name, model, x, layers in cases:
        c = _top(model, x)
        for layer in layers:
            ours = explainers.explain(model, x, method="finercam", layer=layer, target=c, base=base)
            peer_model = copy.deepcopy(model)
            with FinerCAM(peer_model, layer, input_shape=tuple(x.shape[1:]), base_method=cls) as extractor:
                peer = extractor(class_idx=c, scores=peer_model(x))[0][0]
            assert pearson(ours.layer_map, peer) >= MIN_R, (name, layer, base)


@pytest.mark.parametrize("score", ["rest", "target"])
def test_shapleycam_is_pytorch_grad_cams(cases, score):
    from pytorch_grad_cam import ShapleyCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget
    for name, model, x, layers in cases:
        c = _top(model, x)
        for layer in layers:
            ours = explainers.explain(model, x, method="shapleycam", layer=layer, target=c, score=score)
            peer_model = copy.deepcopy(model)
            target = ClassifierOutputReST(c) if score == "rest" else ClassifierOutputTarget(c)
            peer = ShapleyCAM(peer_model, _modules(peer_model, layer))(x, targets=[target])[0]
            assert pearson(ours.attribution, peer) >= MIN_R, (name, layer, score)


def test_kpcacam_is_pytorch_grad_cams_up_to_the_sign_we_fix(cases):
    """The peer leaves the component's sign to the eigensolver, then applies its ReLU: its map
    is ReLU(p) or ReLU(-p) of our signed projection p; ours is the one whose p correlates
    positively with the channel-summed activations."""
    from pytorch_grad_cam import KPCA_CAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    for name, model, x, layers in cases:
        for layer in layers:
            cap = explainers.Capture(model, x, layer=layer)
            p = cams.kpca_projection(cap.activation)[0]
            summed = cap.activation[0].sum(0)
            assert pearson(p, summed) > 0
            ours = cap.explain("kpcacam", 0)
            assert np.allclose(ours.layer_map, torch.relu(p).numpy(), atol=1e-6)
            peer = KPCA_CAM(model, _modules(model, layer))(x, targets=[ClassifierOutputTarget(0)])[0]
            best = max(pearson(torch.relu(p), peer), pearson(torch.relu(-p), peer))
            assert best >= MIN_R, (name, layer)


# ----------------------------------------------------------------------------- by hand


class _LinearHead(nn.Module):
    """A feature map ``feat`` (one conv), global average pooling and a linear classifier: y =
    W mean_ij A + b, so dy_c/dA_kij = W_ck / (h w)."""

    def __init__(self, classes=4, channels=3):
        super().__init__()
        torch.manual_seed(3)
        self.feat = nn.Conv2d(3, channels, 3, padding=1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(self.feat(x).mean(dim=(2, 3)))


def test_finercam_on_a_linear_head_is_the_contrast_of_the_class_weights_by_hand():
    model = _LinearHead().eval()
    x = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x)[0]
        a = model.feat(x)[0]
    c = int(y.argmax())
    order = [int(i) for i in (y - y[c]).abs().argsort() if int(i) != c]  # nearest first, the target left out
    for references, gamma in ((1, 1.0), (2, 0.6), (3, 0.3)):
        refs = order[:references]
        w = model.fc.weight.detach()
        alpha = (w[c] - gamma * w[refs].mean(0)) / 36  # Grad-CAM's spatial mean of W / (h w)
        by_hand = torch.relu(torch.einsum("c,chw->hw", alpha, a))
        e = explainers.explain(model, x, method="finercam", layer="feat", target=c, gamma=gamma, references=references)
        assert np.allclose(e.weights, alpha.numpy(), atol=1e-6)
        assert np.allclose(e.layer_map, by_hand.numpy(), atol=1e-5)
    plain = explainers.explain(model, x, method="gradcam", layer="feat", target=c)
    none = explainers.explain(model, x, method="finercam", layer="feat", target=c, gamma=0.0)
    assert np.allclose(none.layer_map, plain.layer_map)  # gamma 0: Grad-CAM itself


def test_shapleycam_hessian_term_by_hand():
    """A logit of a piecewise-linear head has no Hessian: ShapleyCAM with score='target' is
    Grad-CAM. A quadratic head, y = Σ_k (mean_ij A_k)², has dy/dA_kij = 2 m_k / (h w) and H·A
    = 2 m_k / (h w) too (m_k the channel mean), so alpha_k = mean_ij (g - ½ H·A) = m_k / (h w)."""
    model = _LinearHead().eval()
    x = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(4))
    plain = explainers.explain(model, x, method="gradcam", layer="feat", target=1)
    shapley = explainers.explain(model, x, method="shapleycam", layer="feat", target=1, score="target")
    assert np.allclose(plain.weights, shapley.weights, atol=1e-7)

    class Quadratic(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(5)
            self.feat = nn.Conv2d(3, 2, 3, padding=1)

        def forward(self, x):
            m = self.feat(x).mean(dim=(2, 3))
            return torch.stack([(m ** 2).sum(1), m.sum(1)], dim=1)

    q = Quadratic().eval()
    with torch.no_grad():
        m = q.feat(x)[0].mean(dim=(1, 2))
    e = explainers.explain(q, x, method="shapleycam", layer="feat", target=0, score="target")
    assert np.allclose(e.weights, (m / 36).numpy(), atol=1e-6)
    g = explainers.explain(q, x, method="gradcam", layer="feat", target=0)
    assert np.allclose(g.weights, (2 * m / 36).numpy(), atol=1e-6)


def test_shapleycam_rest_score_is_the_logit_plus_its_log_probability():
    """score='rest': the residual softmax score y_c + log p_c; on the linear head its gradient
    at A is (2 W_c - Σ_d p_d W_d) / (h w), and its Hessian term is not zero."""
    model = _LinearHead().eval()
    x = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(6))
    cap = explainers.Capture(model, x, layer="feat")
    p = torch.softmax(cap.output[0], 0)
    w = model.fc.weight.detach()
    grad_weight = (2 * w[2] - p @ w) / 36
    e = cap.explain("shapleycam", 2)
    assert not np.allclose(e.weights, grad_weight.numpy(), atol=1e-6)  # the second-order term counts
    plain = cap.explain("gradcam", explainers.Custom(lambda out: out[:, 2] + torch.log_softmax(out, 1)[:, 2]))
    assert np.allclose(plain.weights, grad_weight.numpy(), atol=1e-6)


def test_kpcacam_with_a_linear_kernel_is_eigencam():
    """Kernel PCA with the linear kernel is PCA: the same component as Eigen-CAM's SVD."""
    model = _LinearHead(channels=5).eval()
    x = torch.randn(2, 3, 7, 7, generator=torch.Generator().manual_seed(7))
    cap = explainers.Capture(model, x, layer="feat")
    eig = cap.explain("eigencam", 0)
    lin = cap.explain("kpcacam", 0, kernel="linear")
    assert np.allclose(lin.layer_map, eig.layer_map, atol=1e-5)
    assert cap.explain("kpcacam", 0).layer_map.shape == (2, 7, 7)


def test_the_class_contrasting_methods_say_they_need_a_class():
    model = _LinearHead().eval()
    x = torch.randn(1, 3, 6, 6)
    phrase = explainers.Custom(lambda out: out.sum(1))
    for method in ("finercam", "shapleycam"):
        with pytest.raises(ValueError, match="explains a class"):
            explainers.explain(model, x, method=method, layer="feat", target=phrase)
    assert explainers.explain(model, x, method="shapleycam", layer="feat", target=phrase, score="target").layer_map.shape
    with pytest.raises(ValueError, match="base must be one of"):
        explainers.explain(model, x, method="finercam", layer="feat", target=0, base="scorecam")
    with pytest.raises(ValueError, match="unknown kernel"):
        explainers.explain(model, x, method="kpcacam", layer="feat", target=0, kernel="laplace")
    offered = explainers.method_names(classes=False)
    assert "finercam" not in offered and "shapleycam" not in offered and "kpcacam" in offered
    assert {"finercam", "shapleycam", "kpcacam"} <= set(explainers.method_names())


def test_rise_is_the_direct_sum_over_the_same_masks():
    """RISE's map, sum_i s(x * M_i) M_i / (N p), computed directly from the masks
    ``explainers.perturbation.rise_masks`` draws for the same seed, one forward per mask."""
    from explainers.perturbation import rise_masks
    model = _LinearHead().eval()
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(8))
    masks, cell, p, seed = 50, 4, 0.4, 11
    e = explainers.explain(model, x, method="rise", target=1, masks=masks, cell=cell, p=p, seed=seed, batch_size=7)
    m = rise_masks((12, 12), masks, cell, p, seed)
    with torch.no_grad():
        direct = sum(model(x * m[i])[:, 1, None, None].double() * m[i].double() for i in range(masks)) / (masks * p)
    assert np.allclose(e.attribution, direct.numpy(), atol=1e-6)
