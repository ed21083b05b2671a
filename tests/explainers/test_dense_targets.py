"""Detection and segmentation targets by hand on a tiny detector and a tiny segmenter: a box
target's gradient is the gradient of that box's score, Grad-CAM of each target is the paper's
formula, the IoU matching (and no match, an error that says so), D-RISE's similarity, and every
registered method on both targets. RISE's identity: with a score that ignores the image, the
map is that score everywhere (E[M] = p)."""
import numpy as np
import pytest
import torch
from torch import nn

import explainers
from explainers import DetectionScore, SegmentationRegion, match_detection
from explainers.perturbation import rise_masks

torch.manual_seed(0)


class TinyDetector(nn.Module):
    """Per class, one detection at the heat's maximum: a 5 x 5 box around that pixel, scored by
    the heat there (torchvision's output layout)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        heat = torch.sigmoid(self.head(torch.relu(self.conv(x))))
        out = []
        for i in range(x.shape[0]):
            boxes, scores, labels = [], [], []
            for c in range(heat.shape[1]):
                k = int(heat[i, c].flatten().argmax())
                y, xx = divmod(k, heat.shape[-1])
                boxes.append([xx - 2.0, y - 2.0, xx + 3.0, y + 3.0])
                scores.append(heat[i, c].flatten()[k])
                labels.append(c)
            out.append({"boxes": torch.tensor(boxes), "scores": torch.stack(scores), "labels": torch.tensor(labels)})
        return out


class TinySegmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)))


@pytest.fixture
def detector():
    return TinyDetector().eval()


@pytest.fixture
def x():
    return torch.randn(1, 3, 12, 12)


def _grad_cam(score, acts):
    (g,) = torch.autograd.grad(score, acts)
    alpha = g.mean(dim=(2, 3), keepdim=True)
    return torch.relu((alpha * acts).sum(1))[0].detach().numpy()


def test_a_box_targets_gradient_is_that_boxs_score_gradient(detector, x):
    with torch.no_grad():
        d = detector(x)[0]
    box = tuple(d["boxes"][1].tolist())
    target = DetectionScore(1, box, name="thing")
    xg = x.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(detector(xg)[0]["scores"][1], xg)
    e = explainers.explain(detector, x, method="gradient", target=target)
    assert e.score == pytest.approx(float(d["scores"][1]))
    np.testing.assert_allclose(e.attribution, want[0].numpy(), rtol=1e-5, atol=1e-7)  # d score / d pixel
    assert np.abs(e.attribution).max() > 0
    # Grad-CAM of the target: the paper's alpha and ReLU of the weighted sum, at 12 x 12 (no upsampling)
    acts = detector.conv(x)  # the layer "conv": its output, before the ReLU
    score = torch.sigmoid(detector.head(torch.relu(acts)))[0, 1].flatten().max()
    cam = explainers.explain(detector, x, method="gradcam", layer="conv", target=target)
    np.testing.assert_allclose(cam.attribution, _grad_cam(score, acts), rtol=1e-4, atol=1e-7)


def test_the_iou_match_picks_the_overlapping_box_and_names_a_miss(detector, x):
    d = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 9, 10]]),
         "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.tensor([1, 1, 2])}
    assert match_detection(d, 1, (1, 0, 10, 10)) == (0, pytest.approx(0.9))
    assert match_detection(d, 1, (21, 21, 30, 30))[0] == 1
    assert match_detection(d, 2, (0, 0, 9, 10)) == (2, pytest.approx(1.0))
    k, best = match_detection(d, 1, (8, 8, 22, 22))  # touches both boxes a little
    assert k is None and 0 < best < 0.5
    assert match_detection(d, 3, (0, 0, 10, 10)) == (None, 0.0)
    # on the explained image a miss is an error that names the class, the box and the best overlap
    out = detector(x)[0]
    far = out["boxes"][0] + torch.tensor([40.0, 40, 40, 40])
    with pytest.raises(ValueError, match=r"no detection of circle matches the box \(.*\) with IoU >= 0.5: "
                                         r"the detector found no object of that class|best overlap"):
        explainers.explain(detector, x, method="gradcam", layer="conv",
                           target=DetectionScore(0, tuple(far.tolist()), name="circle"))
    with pytest.raises(ValueError, match="found no object of that class"):
        explainers.explain(detector, x, method="gradcam", layer="conv", target=DetectionScore(5, (0, 0, 4, 4)))
    with pytest.raises(ValueError, match="x1 > x0"):
        DetectionScore(0, (5, 5, 1, 9))


def test_d_rise_similarity_is_iou_times_score_of_the_same_class():
    out = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 5, 10], [0, 0, 10, 10]]),
            "scores": torch.tensor([0.5, 0.9, 0.99]), "labels": torch.tensor([1, 1, 2])}]
    t = DetectionScore(1, (0, 0, 10, 10))
    # IoU 1 x 0.5 against IoU 0.5 x 0.9: the first; the class-2 box does not count
    assert float(t.similarity(out)[0]) == pytest.approx(0.5)
    assert float(t(out)[0]) == pytest.approx(0.5)  # the matched box's score
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    assert float(t.similarity(empty)[0]) == 0.0 and float(t(empty)[0]) == 0.0  # a perturbed image lost it


def test_a_segmentation_region_sums_its_class_logits_by_hand():
    seg = TinySegmenter().eval()
    x = torch.randn(1, 3, 10, 10)
    mask = np.zeros((10, 10), bool)
    mask[2:6, 3:8] = True
    t = SegmentationRegion(2, mask, name="square")
    with torch.no_grad():
        out = seg(x)
    assert float(t(out)[0]) == pytest.approx(float(out[0, 2][torch.from_numpy(mask)].sum()), rel=1e-5)
    assert float(SegmentationRegion(2)(out)[0]) == pytest.approx(float(out[0, 2].sum()), rel=1e-5)
    acts = seg.conv(x)
    score = seg.head(torch.relu(acts))[0, 2][torch.from_numpy(mask)].sum()
    cam = explainers.explain(seg, x, method="gradcam", layer="conv", target=t)
    np.testing.assert_allclose(cam.attribution, _grad_cam(score, acts), rtol=1e-4, atol=1e-7)
    assert t == SegmentationRegion(2, mask.copy(), name="square") and hash(t) == hash(SegmentationRegion(2, mask, "square"))
    with pytest.raises(ValueError, match="class index 7 out of range: the segmenter has 3 classes"):
        explainers.explain(seg, x, method="gradcam", layer="conv", target=SegmentationRegion(7, mask))
    with pytest.raises(ValueError, match="the region is 4x4 but the segmenter's output is 10x10"):
        explainers.explain(seg, x, method="gradcam", layer="conv", target=SegmentationRegion(1, np.ones((4, 4), bool)))
    with pytest.raises(ValueError, match="the region is empty"):
        SegmentationRegion(1, np.zeros((10, 10), bool))


QUICK = {"rise": {"masks": 40, "cell": 4}, "scorecam": {}, "smoothgrad": {"samples": 3},
         "integrated_gradients": {"steps": 4}}


def test_every_registered_method_takes_both_targets(detector, x):
    seg = TinySegmenter().eval()
    with torch.no_grad():
        d = detector(x)[0]
    box_target = DetectionScore(0, tuple(d["boxes"][0].tolist()))
    mask = np.zeros((12, 12), bool)
    mask[3:9, 3:9] = True
    for method in explainers.method_names(model=detector, classes=False):
        options = QUICK.get(method, {})
        spec = explainers.get_method(method)
        layer = "conv" if spec.needs_layer or spec.wraps else None
        for model, target in ((detector, box_target), (seg, SegmentationRegion(1, mask))):
            try:
                e = explainers.explain(model, x, method=method, layer=layer, target=target, **options)
            except ValueError as err:
                raise AssertionError(method) from err
            assert e.attribution.shape[-2:] == (12, 12), method
            assert np.isfinite(e.attribution).all(), method


def test_rise_with_a_score_that_ignores_the_image_is_that_score_everywhere():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 1, 1)

        def forward(self, x):
            return self.conv(x).mean(dim=(1, 2, 3)).view(-1, 1) * 0 + torch.tensor([[2.0]])

    e = explainers.explain(Constant().eval(), torch.randn(1, 3, 32, 32), method="rise", target=0, masks=2000, cell=8)
    assert e.attribution.mean() == pytest.approx(2.0, rel=0.03)  # E[M] = p: the normalisation is right
    a, b = rise_masks((32, 32), 5, 8, 0.5, seed=3), rise_masks((32, 32), 5, 8, 0.5, seed=3)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and a.shape == (5, 32, 32)
    with pytest.raises(ValueError, match="p, the share of cells kept"):
        rise_masks((32, 32), 5, 8, 1.5, seed=0)


def test_rise_finds_the_pixels_a_score_reads():
    class ReadsABox(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 1, 1)

        def forward(self, x):
            return x[:, :, 8:16, 20:28].mean(dim=(1, 2, 3)).view(-1, 1) + 0 * self.conv(x).mean()

    x = torch.ones(1, 3, 32, 32)
    m = explainers.explain(ReadsABox().eval(), x, method="rise", target=0, masks=1000, cell=8).attribution
    inside = m[8:16, 20:28].mean()
    far = m[24:, :8].mean()  # two cells away: the mask there is independent of the box's
    # S(u) = E[f(M) M(u)] / p: far from the box E[f] E[M] / p = E[f] = p = 0.5; inside, M(u) and f correlate
    assert far == pytest.approx(0.5, abs=0.05)
    assert inside - far > 0.08
