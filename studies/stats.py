"""The statistics of the paper's human studies.

Trust (section 5.2): each answer is scored in favour of the stronger model on the 5-point scale
(+2 clearly stronger ... -2 clearly weaker); the relative reliability is their mean (the paper:
+1.27 with Guided Grad-CAM, +1.00 with Guided Backprop, VGG-16 vs AlexNet). We add a bootstrap
confidence interval (participants resampled with their answers, since one person's answers are
not independent), an exact sign test over non-zero answers and a sign-flip permutation test over
participants' mean scores. Discrimination (section 5.1): accuracy per method with a Wilson
interval and an exact binomial test against guessing (50%). The binomial tests and the Wilson
interval are scipy.stats' (``binomtest``), which work in log space: exact at any study size
(a hand-written sum of ``comb(n, i) p^i`` overflowed a float past about 1,030 answers)."""
from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
from scipy import stats as _scipy_stats

__all__ = ["arm_comparison", "binomial_two_sided", "sign_test", "bootstrap_mean_ci", "sign_flip_test", "wilson",
           "reliability_summary", "discrimination_summary", "MIN_PARTICIPANTS_FOR_CI", "per_participant",
           "per_image"]


def binomial_two_sided(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial p-value: the probability of an outcome at most as likely as k
    (``scipy.stats.binomtest``)."""
    if n == 0:
        return 1.0
    return float(_scipy_stats.binomtest(int(k), int(n), p, alternative="two-sided").pvalue)


def sign_test(scores) -> tuple[int, int, float]:
    """(positives, non-zero answers, two-sided p) of the exact sign test (ties dropped)."""
    s = np.asarray(scores)
    pos, neg = int((s > 0).sum()), int((s < 0).sum())
    return pos, pos + neg, binomial_two_sided(pos, pos + neg)


MIN_PARTICIPANTS_FOR_CI = 5  # fewer: a resample of the participants has too few distinct values


def bootstrap_mean_ci(groups: list[np.ndarray], n_boot: int = 10000, level: float = 0.95,
                      seed: int = 0, min_groups: int = MIN_PARTICIPANTS_FOR_CI) -> tuple[float, float]:
    """Percentile interval of the overall mean, resampling groups (participants) with their
    answers. With fewer than ``min_groups`` groups there is no interval (NaN, NaN): resampling
    so few participants says little about the population (two give three possible means), and
    resampling one person's answers instead would treat them as independent, which they are not."""
    groups = [np.asarray(g, float) for g in groups if len(g)]
    if len(groups) < max(1, min_groups):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    sums = np.array([g.sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    idx = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    means = sums[idx].sum(1) / counts[idx].sum(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def sign_flip_test(values, n_perm: int = 20000, seed: int = 0) -> float:
    """Two-sided permutation p-value of mean(values) = 0 by flipping signs (exact for up to
    16 values, Monte Carlo beyond)."""
    v = np.asarray(values, float)
    if v.size == 0:
        return 1.0
    observed = abs(v.mean())
    if v.size <= 16:
        signs = np.array(list(itertools.product((1, -1), repeat=v.size)))
    else:
        signs = np.random.default_rng(seed).choice((1, -1), size=(n_perm, v.size))
    means = np.abs((signs * v).mean(1))
    return float((means >= observed - 1e-12).mean())


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of k successes in n (``scipy.stats.binomtest(...).proportion_ci``)."""
    if n == 0:
        return float("nan"), float("nan")
    ci = _scipy_stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _by(rows, key):
    out = defaultdict(list)
    for r in rows:
        out[key(r)].append(r)
    return out


def reliability_summary(rows: list[dict], methods: dict[int, str], seed: int = 0) -> list[dict]:
    """Per method: answers, participants, relative reliability (mean score in favour of the
    stronger model), its bootstrap 95% interval (NaN below ``MIN_PARTICIPANTS_FOR_CI``
    participants), the sign test and the sign-flip test. ``rows``: responses (participant, trial_idx, score); ``methods``: trial index -> method."""
    out = []
    for method, rs in sorted(_by(rows, lambda r: methods[r["trial_idx"]]).items()):
        per_person = _by(rs, lambda r: r["participant"])
        groups = [np.array([r["score"] for r in g]) for g in per_person.values()]
        scores = np.concatenate(groups)
        lo, hi = bootstrap_mean_ci(groups, seed=seed)
        pos, nonzero, p_sign = sign_test(scores)
        out.append({"method": method, "answers": int(scores.size), "participants": len(groups),
                    "relative_reliability": float(scores.mean()), "ci_low": lo, "ci_high": hi,
                    "favour_stronger": pos, "non_zero": nonzero, "sign_test_p": p_sign,
                    "permutation_p": sign_flip_test([g.mean() for g in groups], seed=seed)})
    return out


def discrimination_summary(rows: list[dict], methods: dict[int, str], chance: float = 0.5) -> list[dict]:
    """Per method: answers, correct, accuracy with its Wilson 95% interval, binomial p against
    ``chance`` (50%; a third for bias discovery's three options)."""
    out = []
    for method, rs in sorted(_by(rows, lambda r: methods[r["trial_idx"]]).items()):
        k, n = sum(int(r["score"]) for r in rs), len(rs)
        lo, hi = wilson(k, n)
        out.append({"method": method, "answers": n, "participants": len({r["participant"] for r in rs}),
                    "correct": k, "accuracy": k / n, "ci_low": lo, "ci_high": hi,
                    "binomial_p": binomial_two_sided(k, n, chance)})
    return out


def per_participant(rows: list[dict], methods: dict[int, str], platform_ids: dict | None = None) -> list[dict]:
    """One row per participant, in order of first answer: their platform id (``platform_ids``:
    token -> id) or, without one, the first 8 characters of the token; the mean score under each
    method they answered (2 decimals) and their number of answers."""
    platform_ids = platform_ids or {}
    per: dict[str, dict[str, list]] = {}
    for r in rows:
        per.setdefault(r["participant"], {}).setdefault(methods[r["trial_idx"]], []).append(r["score"])
    return [{"participant": platform_ids.get(p) or p[:8], **{m: round(sum(v) / len(v), 2) for m, v in d.items()},
             "answers": sum(len(v) for v in d.values())} for p, d in per.items()]


def per_image(rows: list[dict], trials: list[dict]) -> list[dict]:
    """One row per (image, method), sorted: the image's scene index or file name, the answers
    and their mean score (2 decimals)."""
    per: dict[tuple[str, str], list] = {}
    for r in rows:
        t = trials[r["trial_idx"]]
        per.setdefault((str(t["image"].get("index", t["image"].get("file"))), t["method"]), []).append(r["score"])
    return [{"image": k[0], "method": k[1], "answers": len(v), "mean score": round(sum(v) / len(v), 2)}
            for k, v in sorted(per.items())]


def _two_sample_permutation(a: np.ndarray, b: np.ndarray, n_perm: int, seed: int) -> float:
    """Two-sided permutation p of mean(a) - mean(b) (participants' labels shuffled; exact when
    there are at most 20,000 splits, Monte Carlo beyond)."""
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    if math.comb(pooled.size, a.size) <= n_perm:
        splits = itertools.combinations(range(pooled.size), a.size)
        diffs = []
        total = pooled.sum()
        for idx in splits:
            sa = pooled[list(idx)].sum()
            diffs.append(abs(sa / a.size - (total - sa) / b.size))
        diffs = np.array(diffs)
    else:
        rng = np.random.default_rng(seed)
        perms = rng.permuted(np.tile(pooled, (n_perm, 1)), axis=1)
        diffs = np.abs(perms[:, :a.size].mean(1) - perms[:, a.size:].mean(1))
    return float((diffs >= observed - 1e-12).mean())


def arm_comparison(rows: list[dict], arm_of: dict[str, str], first: str, second: str, n_boot: int = 10000,
                   n_perm: int = 20000, seed: int = 0, min_per_arm: int = MIN_PARTICIPANTS_FOR_CI) -> dict:
    """Arm ``first`` against arm ``second``, with participants as the unit: each participant's mean
    score, the difference of the arms' means, its bootstrap interval (participants resampled within
    each arm; none below ``min_per_arm`` participants in an arm) and a permutation test of the arm
    labels. ``arm_of``: participant -> arm."""
    per: dict[str, list] = defaultdict(list)
    for r in rows:
        per[r["participant"]].append(float(r["score"]))
    a = np.array([np.mean(v) for p, v in per.items() if arm_of.get(p) == first])
    b = np.array([np.mean(v) for p, v in per.items() if arm_of.get(p) == second])
    out = {"first": first, "second": second, "participants_first": int(a.size), "participants_second": int(b.size),
           "mean_first": float(a.mean()) if a.size else float("nan"),
           "mean_second": float(b.mean()) if b.size else float("nan")}
    out["difference"] = out["mean_first"] - out["mean_second"]
    if a.size == 0 or b.size == 0:
        out.update(ci_low=float("nan"), ci_high=float("nan"), permutation_p=float("nan"))
        return out
    if min(a.size, b.size) >= min_per_arm:
        rng = np.random.default_rng(seed)
        boots = (a[rng.integers(0, a.size, (n_boot, a.size))].mean(1) - b[rng.integers(0, b.size, (n_boot, b.size))].mean(1))
        out["ci_low"], out["ci_high"] = (float(v) for v in np.quantile(boots, [0.025, 0.975]))
    else:
        out["ci_low"] = out["ci_high"] = float("nan")
    out["permutation_p"] = _two_sample_permutation(a, b, n_perm, seed)
    return out
