"""Agreement figures pinned: Spearman's rho against scipy.stats.spearmanr (ties included), the
top region and IoU on hand-made maps."""
import numpy as np
import pytest
from scipy import stats

from explainers import agreement


@pytest.mark.parametrize("seed", range(4))
def test_rank_correlation_equals_scipy_spearman_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = np.round(rng.random((16, 16)), 1)  # many ties
    b = np.round(a + rng.normal(0, 0.3, a.shape), 1)
    want = stats.spearmanr(a.ravel(), b.ravel()).statistic
    assert agreement.rank_correlation(a, b) == pytest.approx(want, abs=1e-12)


def test_rank_correlation_by_hand():
    assert agreement.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert agreement.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3) vs (1, 3, 2): rho = 1 - 6 * 2 / (3 * 8) = 0.5
    assert agreement.rank_correlation([1, 2, 3], [5, 9, 7]) == pytest.approx(0.5)
    assert np.isnan(agreement.rank_correlation(np.zeros(4), [1, 2, 3, 4]))
    np.testing.assert_array_equal(agreement.rankdata([3, 1, 3, 2]), [3.5, 1, 3.5, 2])
    with pytest.raises(ValueError, match="same shape"):
        agreement.rank_correlation(np.zeros((2, 2)), np.zeros(4))


def test_top_region_and_iou_by_hand():
    m = np.arange(20, dtype=float).reshape(4, 5)  # values 0..19
    top = agreement.top_region(m, 0.15)  # ceil(0.15 * 20) = 3 pixels: 17, 18, 19
    assert top.sum() == 3 and set(m[top]) == {17, 18, 19}
    shifted = np.roll(m, 1)  # the largest values move one place: 16, 17, 18 at 17, 18, 19's places
    assert agreement.top_region_iou(m, shifted, 0.15) == pytest.approx(2 / 4)  # {18,19} of {17,18,19,0}
    assert agreement.iou(np.zeros(3, bool), np.zeros(3, bool)) != agreement.iou(np.zeros(3, bool), np.zeros(3, bool))
    assert not agreement.top_region(-np.ones((3, 3)), 0.5).any()  # no evidence, no region
