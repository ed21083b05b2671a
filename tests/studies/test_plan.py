"""Planning a study (issue 30): power checked against exact references written independently
here (a two-sided binomial p-value from math.comb; every outcome enumerated), the simulated power
within 2 points of the exact one, the sample size the fewest that reaches the target, and the
cost with its minimum-pay warning."""
from __future__ import annotations

import itertools
import math

import pytest

from studies import plan as P


def _p_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p of k in n against 1/2: the outcomes at most as likely as k."""
    pmf = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
    return sum(p for p in pmf if p <= pmf[k] * (1 + 1e-7))


def _reference_power(n: int, q: float, alpha: float) -> float:
    return sum(math.comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(n + 1) if _p_two_sided(k, n) <= alpha)


def test_the_binomial_power_at_50_answers_and_70_percent():
    got = P.binomial_power(50, 0.7, 0.05)
    assert got == pytest.approx(_reference_power(50, 0.7, 0.05), abs=1e-9)
    upper = min(k for k in range(26, 51) if _p_two_sided(k, 50) <= 0.05)  # 33: 32 of 50 gives p = 0.065
    tail = sum(math.comb(50, k) * 0.7 ** k * 0.3 ** (50 - k) for k in range(upper, 51))
    assert upper == 33 and got == pytest.approx(tail, abs=1e-4)  # the lower region adds ~1e-5
    assert got == pytest.approx(0.782, abs=5e-4)
    assert P.power("binomial", 5, 10, P.Effect(accuracy=0.7))[1] == "exact"


@pytest.mark.parametrize("n", [1, 5, 12, 20])
def test_the_sign_tests_power_against_every_outcome(n):
    q = 0.72
    enumerated = 0.0
    for signs in itertools.product((1, -1), repeat=n):
        pos = sum(s > 0 for s in signs)
        if _p_two_sided(pos, n) <= 0.05:
            enumerated += q ** pos * (1 - q) ** (n - pos)
    assert P.sign_power(n, q, 0.0, 0.05) == pytest.approx(enumerated, abs=1e-9)


def test_the_sign_tests_power_with_ties_against_every_outcome():
    n, q, ties = 8, 0.8, 0.25
    enumerated = 0.0
    for answers in itertools.product((1, 0, -1), repeat=n):
        pos, neg = answers.count(1), answers.count(-1)
        prob = (ties ** (n - pos - neg)) * ((1 - ties) * q) ** pos * ((1 - ties) * (1 - q)) ** neg
        if pos + neg and _p_two_sided(pos, pos + neg) <= 0.05:
            enumerated += prob
    assert P.sign_power(n, q, ties, 0.05) == pytest.approx(enumerated, abs=1e-9)


@pytest.mark.parametrize("analysis, effect", [("binomial", P.Effect(accuracy=0.65)),
                                              ("sign", P.Effect(favour=0.7, ties=0.3))])
def test_the_simulated_power_is_within_2_points_of_the_exact_one(analysis, effect):
    exact, how = P.power(analysis, 6, 10, effect)
    simulated = P.simulated_power(analysis, 6, 10, effect, draws=5000, seed=1)
    assert how == "exact" and 0.2 < exact < 0.95
    assert abs(simulated - exact) <= 0.02


def test_the_sample_size_is_the_fewest_that_reaches_the_target():
    effect = P.Effect(accuracy=0.62)
    n, got, how = P.participants_needed("binomial", 10, effect, target=0.8)
    assert got >= 0.8 and P.power("binomial", n - 1, 10, effect)[0] < 0.8
    assert how == "exact"
    none, at_most, _ = P.participants_needed("binomial", 1, P.Effect(accuracy=0.5), target=0.8)
    assert none is None and at_most < 0.8  # no effect: no number of participants is enough


def test_the_permutation_and_arm_powers_are_simulated_and_grow_with_the_effect():
    small = P.power("permutation", 12, 10, P.Effect(mean=0.2, sd=0.8), draws=300)
    large = P.power("permutation", 12, 10, P.Effect(mean=0.8, sd=0.8), draws=300)
    assert small[1] == "simulated (300 draws)" and small[0] < large[0] and large[0] > 0.8
    null = P.power("arms", 15, 10, P.Effect(mean=0.0, sd=0.8), draws=300)[0]
    assert null <= 0.1  # no difference between the arms: about alpha
    assert P.power("arms", 15, 10, P.Effect(mean=1.0, sd=0.8), draws=300)[0] > 0.8


def test_the_cost_and_the_minimum_pay_warning():
    c = P.cost(40, 20, pay=0.5, fee_share=1 / 3, minimum_hourly=9.0, seconds_per_trial=9)
    assert c.minutes == pytest.approx(20 * 9 / 60 + 2) and c.minutes_source.startswith("estimate")
    assert c.total == pytest.approx(40 * 0.5 * 4 / 3) and c.hourly == pytest.approx(6.0)
    assert c.below_minimum and "below the platform's minimum of 9.00: raise it to at least 0.75" in c.warning
    ok = P.cost(40, 20, pay=1.0, fee_share=0.0, minimum_hourly=9.0, pilot_minutes=[5.0, 6.0, 9.0])
    assert ok.minutes == 6.0 and ok.minutes_source == "pilot median of 3 (measured)" and ok.warning is None


def test_the_effect_of_a_pilot_and_the_plan_record():
    rows = [{"participant": p, "trial_idx": t, "score": s}
            for p, scores in {"a": [2, 1, 0, 1], "b": [1, -1, 1, 0], "c": [0, 1, 2, 2]}.items()
            for t, s in enumerate(scores)]
    e = P.effect_from_pilot("sign", rows, {t: "gradcam" for t in range(4)}, "gradcam")
    assert e.ties == pytest.approx(3 / 12) and e.favour == pytest.approx(8 / 9)
    assert e.mean == pytest.approx((1 + 0.25 + 1.25) / 3) and len(e.pilot) == 3
    record = P.plan("sign", 4, e, pay=2.0, fee_share=0.0, minimum_hourly=9.0).record()
    assert record["participants"] is not None and record["how"] == "exact"
    assert record["effect"]["pilot"] == 3 and record["cost"]["participants"] == record["participants"]
    with pytest.raises(ValueError, match="unknown analysis"):
        P.plan("t-test", 4, e)


def test_the_vectorised_p_values_are_binomtests():
    from scipy import stats
    for n in (1, 2, 7, 30, 101):
        region = [k for k in range(n + 1) if stats.binomtest(k, n, 0.5).pvalue <= 0.05]
        q = 0.66
        want = sum(stats.binom.pmf(k, n, q) for k in region)
        assert P.binomial_power(n, q, 0.05) == pytest.approx(want, abs=1e-12)


def test_a_pilot_plans_the_arms_against_a_control_at_zero():
    pilot = tuple(tuple([m - 0.5, m + 0.5]) for m in (1.0, 1.5, 0.5, 1.2, 0.8, 1.1))
    e = P.Effect(mean=1.0, sd=0.3, pilot=pilot, source="pilot")
    assert P.power("arms", 10, 2, e, draws=200)[0] > 0.9  # a mean of 1 against 0: clear
    flat = P.Effect(mean=0.0, sd=0.3, pilot=tuple(tuple([m - 1.0, m - 1.0]) for m in (1.0, 1.5, 0.5, 1.2, 0.8, 1.1)),
                    source="pilot")
    assert P.power("arms", 10, 2, flat, draws=200)[0] < 0.15  # no difference: about alpha
