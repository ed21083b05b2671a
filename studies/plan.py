"""Plan a study before paying for it: the participants needed for a given power and alpha, for
each analysis the results page runs, and what they will cost.

Analyses (the results page's tests, at the same two-sided alpha):

* ``binomial``: discrimination accuracy against guessing (50%), an exact binomial test over the
  answers. Power is exact: the probability, under the true accuracy, of the outcomes whose
  ``scipy.stats.binomtest`` p-value is at most alpha.
* ``sign``: the trust score's sign test over the non-zero answers (ties dropped). Exact as the
  binomial, with the share of non-zero answers that favour the stronger model as the effect, and
  the share of zero answers ("about the same") thinning the answers.
* ``permutation``: the sign-flip permutation test of the participants' mean trust scores (the unit
  is the participant). No closed form: power by simulation.
* ``arms``: the difference between two between-subjects arms (say Grad-CAM against no
  explanation), a permutation test of the participants' mean scores. Power by simulation.

The simulations draw participants the way the studio's simulated participants answer: each
participant has a mean score drawn around the effect (the spread between participants) and
answers each trial on the 5-point scale around it; with a pilot study, its participants'
answers are resampled instead (participants with their answers, the results page's unit). Each
power figure says whether it is ``exact`` or ``simulated`` (and from how many draws).

Cost: minutes per participant (the pilot's median, measured, or the researcher's estimate of
seconds per trial times the trials, named as an estimate), the pay per participant, the
platform's fee, and a warning when the pay per hour falls below the platform's minimum.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats as _st

__all__ = ["ANALYSES", "Effect", "Cost", "Plan", "power", "participants_needed", "cost", "plan",
           "effect_from_pilot", "minutes_per_participant", "binomial_power", "sign_power", "simulated_power"]

ANALYSES = {
    "binomial": "discrimination accuracy against guessing (exact binomial test over answers)",
    "sign": "trust: sign test of the non-zero answers (exact)",
    "permutation": "trust: sign-flip permutation test of the participants' mean scores (simulated)",
    "arms": "between arms: permutation test of the difference of participants' mean scores (simulated)",
}
MAX_PARTICIPANTS = 2000  # the search stops here: a design that needs more says so


@dataclass(frozen=True)
class Effect:
    """What the study expects. ``accuracy``: discrimination accuracy (binomial). ``favour``: the
    share of non-zero trust answers that favour the stronger model (sign). ``mean`` and ``sd``:
    the participants' mean trust score and its spread between participants (permutation; for
    arms the difference between the arms' means, with each arm's spread ``sd``). ``ties``: the
    share of trust answers of 0. ``answer_sd``: the spread of one participant's answers around
    their own mean. ``pilot``: participants' answers (lists of scores) to resample instead."""

    accuracy: float = 0.7
    favour: float = 0.7
    mean: float = 0.5
    sd: float = 1.0
    ties: float = 0.2
    answer_sd: float = 1.0
    pilot: tuple = ()
    source: str = "entered"


def _exact_binomial(n: int, p: float, alpha: float) -> float:
    """P(reject) of the two-sided exact binomial test of 0.5 with ``n`` trials, true rate ``p``.
    Against 0.5 the distribution is symmetric, so ``scipy.stats.binomtest``'s two-sided p-value
    (the outcomes at most as likely as k) is twice the smaller tail, capped at 1: computed for
    every k at once (the test checks it against binomtest and against a hand-written sum)."""
    if n <= 0:
        return 0.0
    k = np.arange(n + 1)
    pvals = np.minimum(1.0, 2 * np.minimum(_st.binom.cdf(k, n, 0.5), _st.binom.sf(k - 1, n, 0.5)))
    return float(_st.binom.pmf(k, n, p)[pvals <= alpha * (1 + 1e-9)].sum())


def binomial_power(answers: int, accuracy: float, alpha: float = 0.05) -> float:
    """Exact power of the discrimination test over ``answers`` answers."""
    return _exact_binomial(answers, accuracy, alpha)


def sign_power(answers: int, favour: float, ties: float = 0.0, alpha: float = 0.05) -> float:
    """Exact power of the sign test: the number of non-zero answers is itself binomial
    (``answers``, 1 - ``ties``), and each favours the stronger model with probability ``favour``."""
    if ties <= 0:
        return _exact_binomial(answers, favour, alpha)
    m = np.arange(answers + 1)
    weights = _st.binom.pmf(m, answers, 1 - ties)
    keep = weights > 1e-12
    return float(sum(w * _exact_binomial(int(n), favour, alpha) for n, w in zip(m[keep], weights[keep])))


def _participant_means(rng, n: int, trials: int, effect: Effect, mean: float) -> np.ndarray:
    """Participants' mean scores: from the pilot (participants resampled with their answers) or
    drawn (a mean per participant, then ``trials`` answers on the 5-point scale around it)."""
    if effect.pilot:  # the pilot's participants, moved to the wanted mean (for arms: the control's is 0)
        means = np.array([np.mean(p) for p in effect.pilot], float)
        return rng.choice(means, size=n, replace=True) + (mean - float(np.mean(means)))
    centres = rng.normal(mean, effect.sd, size=n)
    answers = np.clip(np.rint(centres[:, None] + rng.normal(0, effect.answer_sd, size=(n, trials))), -2, 2)
    return answers.mean(1)


def _sign_flip_reject(values: np.ndarray, alpha: float, rng, n_perm: int) -> bool:
    observed = abs(values.mean())
    signs = rng.choice((1.0, -1.0), size=(n_perm, values.size))
    return float((np.abs((signs * values).mean(1)) >= observed - 1e-12).mean()) <= alpha


def _two_sample_reject(a: np.ndarray, b: np.ndarray, alpha: float, rng, n_perm: int) -> bool:
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    perms = rng.permuted(np.tile(pooled, (n_perm, 1)), axis=1)
    diffs = np.abs(perms[:, :a.size].mean(1) - perms[:, a.size:].mean(1))
    return float((diffs >= observed - 1e-12).mean()) <= alpha


def simulated_power(analysis: str, participants: int, trials: int, effect: Effect, alpha: float = 0.05,
                    draws: int = 2000, seed: int = 0, n_perm: int = 400) -> float:
    """Power by simulation: the share of ``draws`` simulated studies whose test rejects. For the
    exact analyses too, to check the simulation against them. ``participants``: per arm for
    ``arms``."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        if analysis == "binomial":
            k = rng.binomial(participants * trials, effect.accuracy)
            hits += _st.binomtest(int(k), participants * trials, 0.5).pvalue <= alpha
        elif analysis == "sign":
            nonzero = rng.binomial(participants * trials, 1 - effect.ties)
            k = rng.binomial(nonzero, effect.favour)
            hits += nonzero > 0 and _st.binomtest(int(k), int(nonzero), 0.5).pvalue <= alpha
        elif analysis == "permutation":
            hits += _sign_flip_reject(_participant_means(rng, participants, trials, effect, effect.mean), alpha, rng,
                                      n_perm)
        elif analysis == "arms":
            a = _participant_means(rng, participants, trials, effect, effect.mean)
            b = _participant_means(rng, participants, trials, effect, 0.0)
            hits += _two_sample_reject(a, b, alpha, rng, n_perm)
        else:
            raise ValueError(f"unknown analysis {analysis!r}; choose one of {', '.join(ANALYSES)}")
    return hits / draws


def power(analysis: str, participants: int, trials: int, effect: Effect, alpha: float = 0.05,
          draws: int = 2000, seed: int = 0) -> tuple[float, str]:
    """(power, how): exact where a closed form exists, else simulated (``how`` says which)."""
    if analysis == "binomial":
        return binomial_power(participants * trials, effect.accuracy, alpha), "exact"
    if analysis == "sign":
        return sign_power(participants * trials, effect.favour, effect.ties, alpha), "exact"
    return simulated_power(analysis, participants, trials, effect, alpha, draws, seed), f"simulated ({draws} draws)"


def participants_needed(analysis: str, trials: int, effect: Effect, alpha: float = 0.05, target: float = 0.8,
                        draws: int = 1000, seed: int = 0) -> tuple[int | None, float, str]:
    """(the fewest participants whose power reaches ``target``, that power, how it was computed);
    (None, the power at MAX_PARTICIPANTS, how) when even that many do not. For ``arms``, per arm.
    The exact powers step up and down with n (the binomial's discreteness): the first n that
    reaches the target is reported, found by doubling and then bisection, then checked downwards."""
    def p(n):
        return power(analysis, n, trials, effect, alpha, draws, seed)[0]
    hi = 2
    while hi < MAX_PARTICIPANTS and p(hi) < target:
        hi *= 2
    hi = min(hi, MAX_PARTICIPANTS)
    if p(hi) < target:
        return None, p(hi), power(analysis, hi, trials, effect, alpha, draws, seed)[1]
    lo = hi // 2 if hi > 2 else 1
    while lo + 1 < hi:  # p(lo) < target <= p(hi) (bisection on a nearly monotone curve)
        mid = (lo + hi) // 2
        if p(mid) >= target:
            hi = mid
        else:
            lo = mid
    while hi > 1 and p(hi - 1) >= target:  # a sawtooth: step down while the smaller n still reaches it
        hi -= 1
    got, how = power(analysis, hi, trials, effect, alpha, draws, seed)
    return hi, got, how


@dataclass(frozen=True)
class Cost:
    participants: int
    minutes: float  # per participant
    minutes_source: str  # "pilot median (measured)" or "estimate: ..."
    pay: float  # per participant, in the platform's currency
    fee_share: float  # the platform's fee on top of the pay (0.333 for a third)
    minimum_hourly: float
    hourly: float = field(init=False)
    total: float = field(init=False)
    below_minimum: bool = field(init=False)
    warning: str | None = field(init=False)

    def __post_init__(self):
        hourly = self.pay / (self.minutes / 60) if self.minutes > 0 else float("inf")
        object.__setattr__(self, "hourly", hourly)
        object.__setattr__(self, "total", self.participants * self.pay * (1 + self.fee_share))
        below = hourly < self.minimum_hourly
        object.__setattr__(self, "below_minimum", below)
        object.__setattr__(self, "warning", (
            f"the pay is {hourly:.2f} an hour ({self.pay:.2f} for {self.minutes:.1f} minutes), below the platform's "
            f"minimum of {self.minimum_hourly:.2f}: raise it to at least "
            f"{math.ceil(self.minimum_hourly * self.minutes / 60 * 100) / 100:.2f}") if below else None)


def cost(participants: int, trials: int, pay: float, fee_share: float, minimum_hourly: float,
         pilot_minutes: list[float] | None = None, seconds_per_trial: float = 10.0,
         fixed_minutes: float = 2.0) -> Cost:
    """What ``participants`` will cost. Minutes: the pilot's median when given (measured), else
    ``seconds_per_trial`` x ``trials`` + ``fixed_minutes`` (consent and instructions), named as an
    estimate."""
    if pilot_minutes:
        minutes, source = float(np.median(pilot_minutes)), f"pilot median of {len(pilot_minutes)} (measured)"
    else:
        minutes = seconds_per_trial * trials / 60 + fixed_minutes
        source = f"estimate: {seconds_per_trial:g} s a trial x {trials} trials + {fixed_minutes:g} min"
    return Cost(participants, minutes, source, pay, fee_share, minimum_hourly)


def minutes_per_participant(rows: list[dict]) -> list[float]:
    """Each pilot participant's minutes on the trials: the sum of their answers' own times (from a
    trial's first showing to its answer, as stored), without consent and instructions. Participants
    whose answers have no times are left out."""
    per: dict[str, float] = {}
    for r in rows:
        if r.get("seconds") is not None:
            per[r["participant"]] = per.get(r["participant"], 0.0) + float(r["seconds"])
    return [v / 60 for v in per.values()]


def effect_from_pilot(analysis: str, answers: list[dict], methods: dict[int, str], method: str) -> Effect:
    """The effect a pilot study measured for ``method`` (its rows: participant, trial_idx, score):
    accuracy, share favouring the stronger model, ties, participants' mean and spread, and the
    participants' answers to resample."""
    rows = [r for r in answers if methods.get(r["trial_idx"]) == method]
    if not rows:
        raise ValueError(f"the pilot has no answers for {method!r}")
    per: dict[str, list] = {}
    for r in rows:
        per.setdefault(r["participant"], []).append(float(r["score"]))
    scores = np.array([s for v in per.values() for s in v])
    means = np.array([np.mean(v) for v in per.values()])
    nonzero = scores[scores != 0]
    return Effect(accuracy=float(scores.mean()) if analysis == "binomial" else 0.7,
                  favour=float((nonzero > 0).mean()) if nonzero.size else 0.5,
                  mean=float(means.mean()), sd=float(means.std(ddof=1)) if means.size > 1 else 1.0,
                  ties=float((scores == 0).mean()), pilot=tuple(tuple(v) for v in per.values()), source="pilot")


@dataclass(frozen=True)
class Plan:
    analysis: str
    alpha: float
    target_power: float
    trials: int
    effect: dict
    participants: int | None  # per arm for "arms"
    power: float
    how: str
    cost: dict | None

    def record(self) -> dict:
        """What the pre-registration record stores."""
        return asdict(self)


def plan(analysis: str, trials: int, effect: Effect, alpha: float = 0.05, target: float = 0.8, pay: float = 1.5,
         fee_share: float = 1 / 3, minimum_hourly: float = 9.0, arms: int = 1,
         pilot_minutes: list[float] | None = None, seconds_per_trial: float = 10.0, draws: int = 1000) -> Plan:
    """Participants needed and their cost, as one record."""
    if analysis not in ANALYSES:
        raise ValueError(f"unknown analysis {analysis!r}; choose one of {', '.join(ANALYSES)}")
    if not 0 < alpha < 1 or not 0 < target < 1:
        raise ValueError("alpha and the target power are between 0 and 1")
    n, got, how = participants_needed(analysis, trials, effect, alpha, target, draws)
    total = None if n is None else n * (arms if analysis == "arms" else 1)
    c = None if total is None else asdict(cost(total, trials, pay, fee_share, minimum_hourly, pilot_minutes,
                                               seconds_per_trial))
    e = asdict(effect)
    e["pilot"] = len(effect.pilot)  # participants resampled, not their answers
    return Plan(analysis, alpha, target, trials, e, n, got, how, c)
