"""Do the metrics agree on which method is best? (Issue 31; after LATEC, Hesse et al., NeurIPS
2024, who found that they often do not.)

:func:`score_images` computes, per image and method, every metric of :data:`METRICS` on the
map of the model's top-1 class (pointing: the true class's), keeping each image's value so the
rankings can be bootstrapped; it records each metric's cost (seconds per image and method,
measured, and its passes in words). :func:`panel` turns the values into:

- per metric, the methods' ranking (1: best; ties share the mean rank) with a bootstrap
  interval over images (images drawn with replacement, the same draw for every metric, so the
  metrics' rankings stay paired);
- Kendall's tau (``scipy.stats.kendalltau``, tau-b) between every pair of metrics' rankings,
  with a bootstrap interval;
- the methods whose rank changes significantly between two metrics: the bootstrap interval of
  the rank difference excludes zero;
- a sentence that says in plain words whether the metrics agree.

An image whose value of a metric is not finite for some method (a flat map has no Spearman
correlation) is left out of that metric's means and counted (``left_out``)."""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from scipy import stats

import explainers

from . import metrics, perturb, quality, road
from .data import Sample

__all__ = ["Metric", "METRICS", "score_images", "panel", "sentence", "markdown", "tau_matrix", "to_json"]


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    higher_is_better: bool
    cost: str  # the passes it takes beyond the method's map, in words
    paper: str


METRICS = {m.name: m for m in (
    Metric("pointing", "Pointing game", True, "none (the map of the true class)", "Zhang et al., ECCV 2016"),
    Metric("deletion_auc", "Deletion AUC", False, "1 batched forward of 33 images", "Petsiuk et al., BMVC 2018"),
    Metric("insertion_auc", "Insertion AUC", True, "1 batched forward of 33 images", "Petsiuk et al., BMVC 2018"),
    Metric("road", "ROAD, (LeRF - MoRF) / 2", True, "18 sparse solves and 1 batched forward of 19 images",
           "Rong et al., ICML 2022"),
    Metric("stability", "Stability (average sensitivity)", False, quality.COSTS["stability"].format(samples=3),
           "Yeh et al., NeurIPS 2019"),
    Metric("random_logit", "Random Logit (SSIM)", False, quality.COSTS["random_logit"], "Sixt et al., ICML 2020"),
    Metric("smooth_mprt", "Smooth MPRT (Spearman)", False, quality.COSTS["smooth_mprt"].format(samples=3),
           "Hedström et al., TMLR 2023"),
    Metric("efficient_mprt", "Efficient MPRT (entropy ratio)", True, quality.COSTS["efficient_mprt"],
           "Hedström et al., TMLR 2023"),
    Metric("adcc", "ADCC", True, quality.COSTS["adcc"], "Poppi et al., CVPR Workshops 2021"),
)}


def _truth_mask(loaded, sample: Sample, view_shape, image_size) -> np.ndarray | None:
    o = sample.objects[0] if sample.objects else None
    if o is None:
        return None
    if o.mask is not None and tuple(view_shape) == o.mask.shape:
        return np.asarray(o.mask, bool)
    box = loaded.preprocess.view_box(o.box, image_size) if tuple(view_shape) != sample.image.shape[:2] else o.box
    if box is None:
        return None
    mask = np.zeros(view_shape, bool)
    mask[box[1]:box[3], box[0]:box[2]] = True
    return mask


def score_images(loaded, samples: Iterable[Sample], methods: Sequence[str], names: Sequence[str] | None = None, *,
                 tolerance: float = 15.0, samples_per_image: int = 3, seed: int = 0,
                 options: dict | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Per metric, per method, one value per image (the images in order), and the seconds each
    metric took per image and method. ``names``: the metrics (default: all of :data:`METRICS`);
    ``options``: per method, its own options (e.g. fewer RISE masks); ``samples_per_image``: the
    noisy copies of stability and smooth MPRT."""
    names = list(METRICS) if names is None else list(names)
    bad = [n for n in names if n not in METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {', '.join(bad)}; choose among {', '.join(METRICS)}")
    known = explainers.method_names(model=loaded.model) + explainers.method_names("baseline")
    wrong = [m for m in methods if m not in known]
    if wrong:
        raise ValueError(f"unknown method(s) {', '.join(wrong)}; choose among {', '.join(known)}")
    options = options or {}
    model, layer = loaded.model, loaded.default_layer
    categories = list(loaded.categories)
    index = {n: i for i, n in enumerate(categories)}
    randomised = quality.fully_randomised(model, seed) if {"smooth_mprt", "efficient_mprt"} & set(names) else None
    explain = {m: quality.explainer(m, layer, options.get(m)) for m in methods}
    values = {n: {m: [] for m in methods} for n in names}
    seconds = {n: {m: 0.0 for m in methods} for n in names}
    map_seconds = {m: 0.0 for m in methods}
    n_images = 0
    for sample in samples:
        image = Image.fromarray(sample.image)
        view, x = loaded.preprocess.prepare(image)
        x = x.unsqueeze(0)
        with torch.no_grad():
            logits = model(x)[0]
        top = int(logits.argmax())
        truth = index.get(sample.objects[0].name) if sample.objects else None
        mask = _truth_mask(loaded, sample, view.shape[:2], image.size)
        for m in methods:
            tick = time.perf_counter()
            base = explain[m](model, x, top)
            map_seconds[m] += time.perf_counter() - tick

            def timed(name, compute):
                if name not in values:
                    return
                started = time.perf_counter()
                v = compute()
                seconds[name][m] += time.perf_counter() - started
                values[name][m].append(float(v) if v is not None else float("nan"))

            timed("pointing", lambda: float(metrics.pointing_hit(
                explain[m](model, x, truth) if truth is not None and truth != top else base, mask, tolerance))
                if mask is not None and truth is not None else None)
            curves = {}

            def deletion():
                curves["d"], curves["i"] = perturb.deletion_insertion(model, x, base, top)
                return metrics.auc(curves["d"])
            timed("deletion_auc", deletion)
            timed("insertion_auc", lambda: metrics.auc(curves["i"]) if "i" in curves else
                  metrics.auc(perturb.deletion_insertion(model, x, base, top)[1]))
            timed("road", lambda: road.road(model, x, base, top, seed=seed)["combined"])
            timed("stability", lambda: quality.stability(explain[m], model, x, top, base, samples_per_image, seed=seed))
            timed("random_logit", lambda: quality.random_logit(explain[m], model, x, top, base, len(categories),
                                                               seed=seed + n_images))
            timed("smooth_mprt", lambda: quality.smooth_mprt(explain[m], model, randomised, x, top, samples_per_image,
                                                             seed=seed))
            timed("efficient_mprt", lambda: quality.efficient_mprt(explain[m], model, randomised, x, top, base))
            timed("adcc", lambda: quality.adcc(explain[m], model, x, top, base)["adcc"])
        n_images += 1
        if progress:
            progress(n_images)
    if n_images == 0:
        raise ValueError("no images to score")
    return {"model": loaded.id, "layer": layer, "images": n_images, "methods": list(methods), "metrics": names,
            "values": values, "seed": seed, "samples_per_image": samples_per_image, "tolerance_px": tolerance,
            "options": {m: dict(o) for m, o in options.items()},
            "metric_seconds_per_image": {n: {m: s / n_images for m, s in per.items()} for n, per in seconds.items()},
            "map_seconds_per_image": {m: s / n_images for m, s in map_seconds.items()},
            "costs": {n: METRICS[n].cost for n in names}}


def _ranks(means: np.ndarray, higher: bool) -> np.ndarray:
    """1 = best; ties share their mean rank (``scipy.stats.rankdata``)."""
    return stats.rankdata(-means if higher else means)


def panel(scored: dict, boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """The agreement panel from :func:`score_images`' values (see the module docstring)."""
    methods, names = list(scored["methods"]), list(scored["metrics"])
    if len(methods) < 2:
        raise ValueError("ranking needs two methods at least")
    table = {n: np.array([scored["values"][n][m] for m in methods], np.float64) for n in names}  # methods x images
    kept = {n: np.isfinite(t).all(axis=0) for n, t in table.items()}
    left_out = {n: int((~k).sum()) for n, k in kept.items()}
    usable = [n for n in names if kept[n].sum() >= 2]
    n_img = scored["images"]
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2

    def means_of(idx):
        out = {}
        for n in usable:
            use = idx[kept[n][idx]]
            out[n] = table[n][:, use].mean(axis=1) if use.size else np.full(len(methods), np.nan)
        return out

    full = means_of(np.arange(n_img))
    ranks = {n: _ranks(full[n], METRICS[n].higher_is_better) for n in usable}
    rng = np.random.default_rng(seed)
    boot_ranks = {n: np.empty((boot, len(methods))) for n in usable}
    pairs = list(itertools.combinations(usable, 2))
    boot_tau = {p: np.empty(boot) for p in pairs}
    for b in range(boot):
        idx = rng.integers(0, n_img, n_img)
        means = means_of(idx)
        for n in usable:
            boot_ranks[n][b] = _ranks(means[n], METRICS[n].higher_is_better) if np.isfinite(means[n]).all() \
                else ranks[n]
        for a, c in pairs:
            t = stats.kendalltau(boot_ranks[a][b], boot_ranks[c][b]).statistic
            boot_tau[(a, c)][b] = t  # NaN where a draw's ranking ties every method: tau is undefined
    tau = {}
    for a, c in pairs:
        t = stats.kendalltau(ranks[a], ranks[c]).statistic
        drawn = boot_tau[(a, c)][np.isfinite(boot_tau[(a, c)])]
        lo, hi = np.percentile(drawn, [lo_q, hi_q]) if drawn.size else (np.nan, np.nan)
        tau[f"{a}|{c}"] = {"tau": float(t), "low": float(lo), "high": float(hi)}
    changes = []
    for a, c in pairs:
        diff = boot_ranks[a] - boot_ranks[c]
        lo, hi = np.percentile(diff, [lo_q, hi_q], axis=0)
        for k, m in enumerate(methods):
            if lo[k] > 0 or hi[k] < 0:
                changes.append({"method": m, "metric_a": a, "rank_a": float(ranks[a][k]), "metric_b": c,
                                "rank_b": float(ranks[c][k]), "low": float(lo[k]), "high": float(hi[k])})
    rankings = {n: {m: {"mean": float(full[n][k]), "rank": float(ranks[n][k]),
                        "low": float(np.percentile(boot_ranks[n][:, k], lo_q)),
                        "high": float(np.percentile(boot_ranks[n][:, k], hi_q))}
                    for k, m in enumerate(methods)} for n in usable}
    best = {n: [m for k, m in enumerate(methods) if ranks[n][k] == ranks[n].min()] for n in usable}
    out = {"methods": methods, "metrics": usable, "images": n_img, "boot": boot, "level": level,
           "left_out": left_out, "not_ranked": [n for n in names if n not in usable],
           "rankings": rankings, "tau": tau, "significant_changes": changes, "best": best}
    out["sentence"] = sentence(out)
    return out


def tau_matrix(p: dict) -> np.ndarray:
    """metrics x metrics Kendall's tau (1 on the diagonal), for the heat map; NaN where a metric
    ties every method (it has no ranking to correlate)."""
    names = p["metrics"]
    mat = np.eye(len(names))
    for i, a in enumerate(names):
        for j, c in enumerate(names):
            if i < j:
                mat[i, j] = mat[j, i] = p["tau"][f"{a}|{c}"]["tau"]
    return mat


def sentence(p: dict) -> str:
    """Whether the metrics agree, in plain words."""
    names = p["metrics"]
    if len(names) < 2:
        return "Fewer than two metrics could rank the methods: there is nothing to compare."
    title = {n: METRICS[n].title for n in names}
    flat = [n for n in names if len(p["best"][n]) == len(p["methods"])]  # it ranks no method above another
    taus = sorted((v["tau"], k) for k, v in p["tau"].items() if not set(k.split("|")) & set(flat))
    ranking = [n for n in names if n not in flat]
    winners = {n: " and ".join(p["best"][n]) if len(p["best"][n]) <= 3 else f"{len(p['best'][n])} methods tie"
               for n in ranking}  # a tie of many (pointing: every map that hits) is counted, not listed
    distinct = sorted(set(winners.values()))
    lines = [f"{' and '.join(title[n] for n in flat)} {'ties' if len(flat) == 1 else 'tie'} every method."] if flat else []
    if len(distinct) == 1:
        lines.append(f"Every {'other ' if flat else ''}metric ranks {distinct[0]} first.")
    elif distinct:
        lines.append(f"The metrics disagree on which method is best: {len(distinct)} different methods come first ("
                     + "; ".join(f"{title[n]}: {winners[n]}" for n in ranking) + ").")
    weak = [(t, k) for t, k in taus if t < 0.5]
    if not taus:
        pass
    elif weak:
        worst_tau, worst = taus[0]
        a, c = worst.split("|")
        lines.append(f"{len(weak)} of {len(taus)} pairs of metrics rank the methods with Kendall's tau below 0.5; "
                     f"the least alike are {title[a]} and {title[c]} (tau {worst_tau:.2f}, "
                     f"{p['tau'][worst]['low']:.2f} to {p['tau'][worst]['high']:.2f}).")
    else:
        lines.append(f"Every pair of metrics ranks the methods alike (Kendall's tau at least {taus[0][0]:.2f}).")
    moved = sorted({c["method"] for c in p["significant_changes"]})
    if moved:
        lines.append(f"{len(moved)} method(s) change rank significantly between some two metrics: {', '.join(moved)}.")
    else:
        lines.append("No method's rank changes significantly between two metrics.")
    return " ".join(lines)


def markdown(p: dict, scored: dict | None = None) -> str:
    """The panel as Markdown: rankings with intervals, the tau table, the named changes, the
    sentence, and each metric's cost."""
    names, methods = p["metrics"], p["methods"]
    lines = [p["sentence"], "", "| method | " + " | ".join(METRICS[n].title for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for m in methods:
        cells = []
        for n in names:
            r = p["rankings"][n][m]
            cells.append(f"{r['rank']:g} ({r['low']:g}-{r['high']:g}); {r['mean']:.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", f"Rank (its {round(100 * p['level'])}% bootstrap interval over {p['images']} images, "
                  f"{p['boot']} draws); the metric's mean. 1 is best.", "",
              "| Kendall's tau | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    mat = tau_matrix(p)
    for i, a in enumerate(names):
        lines.append(f"| {a} | " + " | ".join(f"{mat[i, j]:.2f}" if np.isfinite(mat[i, j]) else "n/a"
                                             for j in range(len(names))) + " |")
    if p["significant_changes"]:
        lines += ["", "Significant rank changes (the interval of the rank difference excludes 0):"]
        lines += [f"- {c['method']}: {c['rank_a']:g} by {c['metric_a']}, {c['rank_b']:g} by {c['metric_b']}"
                  for c in p["significant_changes"]]
    if scored is not None:
        lines += ["", "| metric | cost beyond the map | seconds per image and method (mean over methods) |",
                  "|---|---|---|"]
        for n in names:
            per = scored["metric_seconds_per_image"][n]
            lines.append(f"| {METRICS[n].title} | {METRICS[n].cost} | {np.mean(list(per.values())):.3f} |")
    left = {n: k for n, k in p["left_out"].items() if k}
    if left:
        lines += ["", "Images left out of a metric (a value not finite for some method): "
                  + ", ".join(f"{n} {k}" for n, k in left.items())]
    return "\n".join(lines)


def _finite(v):
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def to_json(p: dict, scored: dict | None = None) -> str:
    """The panel (and the per-image values) as standard JSON: a value that is not finite is null."""
    import json
    return json.dumps(_finite({"panel": p, **({"scored": scored} if scored is not None else {})}), indent=2)
