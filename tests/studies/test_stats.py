"""The study statistics on hand-computable answers."""
import itertools
import math

import numpy as np
import pytest

from studies import stats


def test_binomial_two_sided_matches_hand_values():
    # 8 of 10: P(X<=2) + P(X>=8) = 2 * (1 + 10 + 45) / 1024
    assert stats.binomial_two_sided(8, 10) == pytest.approx(2 * 56 / 1024)
    assert stats.binomial_two_sided(5, 10) == pytest.approx(1.0)
    assert stats.binomial_two_sided(10, 10) == pytest.approx(2 / 1024)
    assert stats.binomial_two_sided(0, 0) == 1.0


def test_sign_test_drops_ties():
    assert stats.sign_test([2, 1, 0, 0, -1, 2, 1, 1, 1, 2, 1, 0]) == (8, 9, pytest.approx(2 * 10 / 512))


def test_sign_flip_is_exact_for_small_samples():
    # 4 positive values: only the two all-same-sign flips reach |mean| >= observed -> 2/16
    assert stats.sign_flip_test([1.0, 2.0, 1.5, 0.5]) == pytest.approx(2 / 16)
    assert stats.sign_flip_test([1.0, -1.0]) == pytest.approx(1.0)


def _exact_binomial_half(k: int, n: int) -> float:
    """Two-sided p at p = 1/2 in exact integer arithmetic: the outcomes at most as likely as k."""
    cut = math.comb(n, k)
    return float(sum(c for c in (math.comb(n, i) for i in range(n + 1)) if c <= cut) / 2 ** n)


@pytest.mark.parametrize("k, n", [(600, 1100), (2400, 5000), (2570, 5000), (2500, 5000), (3000, 5000), (0, 5000)])
def test_binomial_two_sided_at_large_n_matches_exact_arithmetic(k, n):
    """binomial_two_sided(600, 1100) raised OverflowError (a float comb(n, i) p^i); a study of
    5000 answers must get the exact value."""
    assert stats.binomial_two_sided(k, n) == pytest.approx(_exact_binomial_half(k, n), rel=1e-9, abs=1e-300)


def _exact_bootstrap_quantile(groups, q):
    """The q-quantile of the exact bootstrap distribution (every resample of the participants)."""
    sums = [sum(g) for g in groups]
    counts = [len(g) for g in groups]
    values = [sum(sums[i] for i in pick) / sum(counts[i] for i in pick)
              for pick in itertools.product(range(len(groups)), repeat=len(groups))]
    atoms, mass = np.unique(np.round(values, 12), return_counts=True)
    cdf = np.cumsum(mass) / len(values)
    i = int(np.searchsorted(cdf, q))
    return atoms[i], cdf[i - 1] if i else 0.0, cdf[i]


def test_bootstrap_interval_resamples_participants():
    """The interval is the 2.5% and 97.5% points of the mean over resampled participants (each
    with all their answers): compared with the exact bootstrap distribution, all 4^4 resamples."""
    groups = [[2, 2], [0], [1, 1, 1], [-1, 0]]
    lo, hi = stats.bootstrap_mean_ci([np.array(g) for g in groups], n_boot=40000, seed=1, min_groups=1)
    for got, q in ((lo, 0.025), (hi, 0.975)):
        want, below, at = _exact_bootstrap_quantile(groups, q)
        assert below < q - 0.004 and at > q + 0.004  # q lies well inside one atom of the distribution
        assert got == pytest.approx(want, abs=1e-9)
    # resampling answers instead of participants would give another interval: [1.0, 1.25] here
    assert (lo, hi) != stats.bootstrap_mean_ci([np.array([v]) for g in groups for v in g], n_boot=40000, seed=1,
                                               min_groups=1)


def test_too_few_participants_give_no_interval():
    """One participant used to get an interval from resampling their answers, as if they were
    independent: below the stated minimum there is no interval, and the summary says so."""
    assert stats.MIN_PARTICIPANTS_FOR_CI == 5
    one = [np.array([2, 1, -1, 2, 0])]
    assert all(np.isnan(stats.bootstrap_mean_ci(one)))
    four = [np.array([2, 1]), np.array([0]), np.array([1, 1]), np.array([-1])]
    assert all(np.isnan(stats.bootstrap_mean_ci(four)))
    assert not any(np.isnan(stats.bootstrap_mean_ci(four + [np.array([2])])))
    rows = [{"participant": "p", "trial_idx": t, "score": s} for t, s in enumerate([2, 1, -1, 2, 0])]
    (r,) = stats.reliability_summary(rows, {t: "m" for t in range(5)})
    assert r["participants"] == 1 and np.isnan(r["ci_low"]) and np.isnan(r["ci_high"])


def test_wilson_interval():
    lo, hi = stats.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    # the closed form (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n) at n = 5000
    k, n, z = 2600, 5000, 1.959963984540054
    p = k / n
    centre, half = (p + z * z / (2 * n)), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert stats.wilson(k, n) == pytest.approx(((centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)))


def test_reliability_summary_per_method():
    rows = [{"participant": p, "trial_idx": t, "score": s}
            for p, answers in {"a": [2, 1, 0, -1], "b": [1, 1, 2, 0]}.items()
            for t, s in enumerate(answers)]
    methods = {0: "gb", 1: "ggc", 2: "gb", 3: "ggc"}
    gb, ggc = stats.reliability_summary(rows, methods)
    assert gb["method"] == "gb" and gb["answers"] == 4 and gb["participants"] == 2
    assert gb["relative_reliability"] == pytest.approx((2 + 0 + 1 + 2) / 4)
    assert ggc["relative_reliability"] == pytest.approx((1 - 1 + 1 + 0) / 4)
    assert (gb["favour_stronger"], gb["non_zero"]) == (3, 3)


def test_discrimination_summary():
    rows = [{"participant": "p", "trial_idx": i, "score": s} for i, s in enumerate([1, 1, 1, 0, 1, 0])]
    methods = {i: ("gb" if i < 3 else "ggc") for i in range(6)}
    gb, ggc = stats.discrimination_summary(rows, methods)
    assert gb["accuracy"] == 1.0 and ggc["accuracy"] == pytest.approx(1 / 3)
    assert gb["binomial_p"] == pytest.approx(0.25)


def test_per_participant_and_per_image_tables_by_hand():
    """The results page's two tables, computed in studies.stats (not in the page)."""
    from studies.stats import per_image, per_participant
    trials = [{"method": "gradcam", "image": {"index": 3}}, {"method": "guided_gradcam", "image": {"index": 3}},
              {"method": "gradcam", "image": {"file": "cat.png"}}]
    methods = {i: t["method"] for i, t in enumerate(trials)}
    rows = [{"participant": "aaaaaaaa-1", "trial_idx": 0, "score": 2}, {"participant": "aaaaaaaa-1", "trial_idx": 2,
                                                                      "score": -1},
            {"participant": "bbbbbbbb-2", "trial_idx": 1, "score": 1}, {"participant": "aaaaaaaa-1", "trial_idx": 1,
                                                                      "score": 0}]
    assert per_participant(rows, methods) == [
        {"participant": "aaaaaaaa", "gradcam": 0.5, "guided_gradcam": 0.0, "answers": 3},
        {"participant": "bbbbbbbb", "guided_gradcam": 1.0, "answers": 1}]
    assert per_image(rows, trials) == [
        {"image": "3", "method": "gradcam", "answers": 1, "mean score": 2.0},
        {"image": "3", "method": "guided_gradcam", "answers": 2, "mean score": 0.5},
        {"image": "cat.png", "method": "gradcam", "answers": 1, "mean score": -1.0}]
