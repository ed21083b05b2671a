"""The study statistics on hand-computable answers."""
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


def test_bootstrap_interval_resamples_participants():
    groups = [np.array([2, 2, 2]), np.array([0, 0, 0]), np.array([1, 1, 1])]
    lo, hi = stats.bootstrap_mean_ci(groups, n_boot=4000, seed=1)
    assert 0.0 <= lo < 1.0 < hi <= 2.0
    assert stats.bootstrap_mean_ci([np.array([1, 1, 1, 1])]) == (1.0, 1.0)  # no spread, no width
    assert stats.bootstrap_mean_ci(groups, seed=3) == stats.bootstrap_mean_ci(groups, seed=3)


def test_wilson_interval():
    lo, hi = stats.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)


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
