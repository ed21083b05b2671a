"""ROAD (evaluation.road): the imputation by hand, its exactness on linear images, and agreement
with pytorch-grad-cam 1.5.7's metrics/road.py (its noise set to 0, the rest as it ships)."""
import numpy as np
import pytest
import torch
import torchvision

from evaluation import road


def test_one_removed_pixel_is_the_weighted_mean_of_its_eight_neighbours():
    img = torch.arange(9, dtype=torch.float64).reshape(1, 3, 3) ** 2
    removed = np.zeros((3, 3), bool)
    removed[1, 1] = True
    out = road.impute(img, removed, noise=0)
    v = img[0].numpy()
    by_hand = (v[0, 1] + v[1, 0] + v[1, 2] + v[2, 1]) / 6 + (v[0, 0] + v[0, 2] + v[2, 0] + v[2, 2]) / 12
    assert out[0, 1, 1].item() == pytest.approx(by_hand)
    assert torch.equal(out[0][~torch.from_numpy(removed)], img[0][~torch.from_numpy(removed)])
    edge = np.zeros((3, 3), bool)
    edge[0, 1] = True  # three neighbours outside: the weights of the five inside renormalised
    w = {(0, 0): 1 / 6, (0, 2): 1 / 6, (1, 1): 1 / 6, (1, 0): 1 / 12, (1, 2): 1 / 12}
    by_hand = sum(wt * v[p] for p, wt in w.items()) / sum(w.values())
    assert road.impute(img, edge, noise=0)[0, 0, 1].item() == pytest.approx(by_hand)


def test_a_linear_image_is_filled_exactly_and_noise_is_seeded():
    yy, xx = np.mgrid[0:12, 0:10]
    img = torch.from_numpy(np.stack([2.0 * yy - 0.5 * xx + 1, 0.1 * xx, 3.0 + 0 * yy])).float()
    removed = np.zeros((12, 10), bool)
    removed[3:9, 2:7] = True  # an interior block: the weighted mean of a linear function is itself
    removed[0, 4] = True
    out = road.impute(img, removed, noise=0)
    assert torch.allclose(out[:, 3:9, 2:7], img[:, 3:9, 2:7], atol=1e-4)
    a = road.impute(img, removed, noise=0.5, generator=torch.Generator().manual_seed(3))
    b = road.impute(img, removed, noise=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.allclose(a, out)
    assert torch.equal(a[:, ~torch.from_numpy(removed)], img[:, ~torch.from_numpy(removed)])  # noise only where filled
    with pytest.raises(ValueError, match="every pixel is removed"):
        road.impute(img, np.ones((12, 10), bool))


def test_removal_orders_take_the_fraction_from_the_right_end():
    m = np.arange(100, dtype=float).reshape(10, 10)
    assert road.removed_mask(m, 0.3, "morf").sum() == 30 and road.removed_mask(m, 0.3, "morf")[9, 9]
    assert road.removed_mask(m, 0.3, "lerf").sum() == 30 and road.removed_mask(m, 0.3, "lerf")[0, 0]
    with pytest.raises(ValueError, match="morf"):
        road.removed_mask(m, 0.3, "random")
    flat = np.zeros((10, 10))  # ties: as many pixels as without them, in raster order
    assert road.removed_mask(flat, 0.3, "morf").sum() == 30 and road.removed_mask(flat, 0.3, "morf")[0, :10].all()
    for f in road.FRACTIONS:  # the count pytorch-grad-cam's percentile rule removes on a map without ties
        rng = np.random.default_rng(1).random((32, 32))
        assert road.removed_mask(rng, f, "morf").sum() == (rng >= np.percentile(rng, 100 * (1 - f))).sum()
        assert road.removed_mask(rng, f, "lerf").sum() == (1 - rng >= np.percentile(1 - rng, 100 * (1 - f))).sum()


def test_road_equals_pytorch_grad_cams_with_its_noise_off():
    from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,
                                                                 RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    yy, xx = np.mgrid[0:32, 0:32]
    cam = (0.99 * np.exp(-((yy - 12.0) ** 2 + (xx - 20.0) ** 2) / 60)
           + 0.01 * np.random.default_rng(2).random((32, 32))).astype(np.float32)  # in [0, 1], as the peer expects
    assert len(np.unique(cam)) == cam.size  # no ties: the peer's percentile rule and ours remove the same pixels
    cls = 2
    for order, rule in (("morf", RemoveMostRelevantFirst), ("lerf", RemoveLeastRelevantFirst)):
        ours = road.road_scores(model, x, cam, cls, order, noise=0, score="logit")
        theirs = []
        for f in road.FRACTIONS:
            p = round(100 * (1 - f))  # the peer keeps the pixels below its percentile p, in either order
            metric = PerturbationConfidenceMetric(rule(p, NoisyLinearImputer(noise=0)))
            theirs.append(float(metric(x, cam[None], [ClassifierOutputTarget(cls)], model)[0]))
            filled_peer = rule(p, NoisyLinearImputer(noise=0))(x[0], torch.from_numpy(cam))
            filled_ours = road.impute(x[0], road.removed_mask(cam, f, order), noise=0)
            assert torch.allclose(filled_ours, filled_peer, atol=1e-5), (order, f)
        assert np.allclose(ours, theirs, atol=1e-4), order
    combined = road.road(model, x, cam, cls, noise=0, score="logit")
    assert combined["combined"] == pytest.approx((combined["lerf"] - combined["morf"]) / 2)
