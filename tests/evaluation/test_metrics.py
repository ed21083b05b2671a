"""Every map metric on hand-made maps and boxes."""
import numpy as np
import pytest

from evaluation import metrics


def test_largest_component_is_8_connected():
    m = np.zeros((6, 6), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # a diagonal: one 8-connected segment of 3
    m[4:6, 4:6] = True  # a block of 4
    m[0, 5] = True
    out = metrics.largest_component(m)
    assert out.sum() == 4 and out[4:6, 4:6].all()
    assert not metrics.largest_component(np.zeros((3, 3), bool)).any()
    tie = np.zeros((5, 5), bool)
    tie[0, 3:5] = tie[4, 0:2] = True  # two segments of 2: the first in raster order wins
    np.testing.assert_array_equal(metrics.largest_component(tie), np.pad(np.ones((1, 2), bool), ((0, 4), (3, 0))))
    ring = np.ones((7, 7), bool)
    ring[1:6, 1:6] = False
    ring[3, 3] = True  # a ring of 24 around an island of 1 (4- and 8-connectivity agree here)
    assert metrics.largest_component(ring).sum() == 24


def test_box_from_map_keeps_the_largest_segment_above_15_percent():
    m = np.zeros((10, 10))
    m[2:5, 1:4] = 1.0  # 9 pixels at the max
    m[6:10, 5:9] = 0.2  # 16 pixels above 15% of the max: the largest segment
    m[0, 9] = 0.1  # below the threshold
    assert metrics.box_from_map(m) == (5, 6, 9, 10)
    assert metrics.box_from_map(m, threshold=0.5) == (1, 2, 4, 5)
    assert metrics.box_from_map(np.zeros((4, 4))) is None


def test_box_iou_by_hand():
    assert metrics.box_iou((0, 0, 4, 4), (2, 2, 6, 6)) == pytest.approx(4 / 28)
    assert metrics.box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert metrics.box_iou((0, 0, 2, 2), (5, 5, 6, 6)) == 0.0
    assert metrics.box_iou(None, (0, 0, 1, 1)) == 0.0


def test_localisation_rule():
    truth = [("cat", (0, 0, 10, 10))]
    assert metrics.localisation([("cat", (0, 0, 10, 8))], truth)  # IoU 0.8
    assert not metrics.localisation([("dog", (0, 0, 10, 10))], truth)  # wrong class
    assert not metrics.localisation([("cat", (0, 0, 10, 4))], truth)  # IoU 0.4
    assert metrics.localisation([("dog", (0, 0, 10, 10)), ("cat", (0, 0, 9, 10))], truth)  # top-5 style


def test_pointing_with_tolerance():
    mask = np.zeros((20, 20), bool)
    mask[5:8, 5:8] = True
    m = np.zeros((20, 20))
    m[7, 12] = 1.0  # 5 px right of the object's edge (col 7)
    assert not metrics.pointing_hit(m, mask, tolerance=4)
    assert metrics.pointing_hit(m, mask, tolerance=5)
    m2 = np.zeros((20, 20)); m2[6, 6] = 1
    assert metrics.pointing_hit(m2, mask, tolerance=0)


def test_recall_aware_rules():
    mask = np.zeros((10, 10), bool); mask[2:4, 2:4] = True
    on = np.zeros((10, 10)); on[2, 2] = 0.9
    weak = on * 0.1
    assert metrics.recall_aware_hit(on, mask, reject_below=0.5)  # present, accepted, on target
    assert not metrics.recall_aware_hit(weak, mask, reject_below=0.5)  # present but rejected
    assert metrics.recall_aware_hit(weak, None, reject_below=0.5)  # absent and rejected: a hit
    assert not metrics.recall_aware_hit(on, None, reject_below=0.5)  # absent but accepted: a miss


def test_auc_by_hand():
    assert metrics.auc(np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert metrics.auc(np.array([1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert metrics.auc(np.array([0.0, 1.0, 0.0])) == pytest.approx(0.5)
    assert metrics.auc(np.array([0, 2]), np.array([0, 4])) == pytest.approx(4.0)


def test_ssim_by_hand():
    """Two constant maps: variances and covariance vanish, so SSIM = (2 a b + C1) / (a^2 + b^2
    + C1) with C1 = (0.01 L)^2, at every window."""
    a, b = np.full((16, 16), 0.2), np.full((16, 16), 0.6)
    c1 = (0.01 * 1.0) ** 2
    assert metrics.ssim(a, b, data_range=1.0) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1), rel=1e-12)
    rng = np.random.default_rng(0)
    x = rng.random((16, 16))
    assert metrics.ssim(x, x) == pytest.approx(1.0)


def test_ssim_on_one_window_follows_wang_et_al():
    """A 7 x 7 map with a 7 x 7 window: one window, scikit-image's sample (n - 1) statistics;
    the formula written out here (Wang et al. 2004, eq. 13)."""
    rng = np.random.default_rng(3)
    x, y = rng.random((7, 7)), rng.random((7, 7))
    n, L = x.size, 1.0
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(ddof=1), y.var(ddof=1)
    cxy = ((x - mx) * (y - my)).sum() / (n - 1)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    want = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    assert metrics.ssim(x, y, data_range=L) == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError, match="same shape"):
        metrics.ssim(x, y[:6])
