"""The evaluation run for the Evaluate page: the library's loop on N sampled images with a
progress bar; the report is kept per settings so reruns of the page do not repeat it."""
from __future__ import annotations

import json
import threading

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import evaluation
import explainers
from evaluation import concordance
from ui import cache

LAST = "eval_last_report"


@st.cache_resource(show_spinner=False)
def _timings() -> dict:
    """Seconds per image measured on this machine, per (model, methods, steps): the newest run."""
    return {"lock": threading.Lock(), "per_image": {}}


def seconds_per_image(model_id: str, methods: tuple[str, ...], steps: int, patch: int = 8, stride: int = 4,
                      classes: int = 5) -> tuple[float, str]:
    """(seconds per image, how it was found) for these settings on this machine: the last
    evaluation's own time, else an estimate that runs no evaluation, so the page opens at once:
    the passes the evaluation makes per image (the kept forward, the occlusion reference, each
    method's forwards from the registry's cost model and its backwards for the top-5 classes,
    deletion and insertion curves, average drop) times one forward and one backward timed here
    (``cache.pass_seconds``). It counts every pass as a whole one, so it is an upper bound: 8.2 s
    against 4.2 s measured for shapes-resnet with every method, 287 s against 196 s for
    efficientnet-lite0."""
    t = _timings()
    with t["lock"]:
        known = t["per_image"].get((model_id, methods, steps))
    if known is not None:
        return known
    loaded = cache.load_model(model_id)
    crop = loaded.preprocess.crop
    channels = dict(cache.layer_channels(model_id)).get(loaded.default_layer, 0)
    fwd, bwd = cache.pass_seconds(model_id)
    occlusion = {"patch": patch, "stride": stride}
    forwards = 1 + explainers.get_method("occlusion").cost(channels, (crop, crop), **occlusion).forwards
    backwards = 0
    for m in methods:
        if m not in evaluation.baselines():
            cost = explainers.get_method(m).cost(channels, (crop, crop), **(occlusion if m == "occlusion" else {}))
            forwards += cost.forwards
            backwards += cost.backwards * classes
        forwards += 2 * (steps + 1) + 2  # deletion and insertion curves, average drop and increase
    return (forwards * fwd + backwards * bwd,
            f"at most: {forwards:,} forward and {backwards:,} backward passes per image at this machine's measured "
            f"{1000 * fwd:.1f} ms and {1000 * bwd:.1f} ms; a run replaces this with its own time")


def run(model_id: str, split: str, methods: tuple[str, ...], n: int, seed: int, tolerance: float,
        threshold: float, steps: int) -> dict:
    key = ("evaluation", model_id, split, methods, n, seed, tolerance, threshold, steps)
    if key in st.session_state:
        return st.session_state[key]
    bar = st.progress(0.0, text=f"Evaluating on {n} images...")
    report = evaluation.evaluate(
        cache.load_model(model_id), evaluation.from_spec(split, n, seed), list(methods), threshold=threshold,
        tolerance=tolerance, steps=steps,
        progress=lambda done: bar.progress(done / n, text=f"{done} of {n} images"))
    report["data"], report["world_seed"] = split, seed  # the scenes, as the agreement panel keys them
    bar.empty()
    st.session_state[key] = report
    st.session_state[LAST] = (key, report)
    t = _timings()
    with t["lock"]:
        t["per_image"][(model_id, methods, steps)] = (
            report["seconds"] / max(report["images"], 1),
            f"the last run of these settings here: {report['seconds']:.0f} s for {report['images']} images")
    return report


def last(model_id: str):
    """(settings key, report) of this session's last evaluation of ``model_id``, or None."""
    kept = st.session_state.get(LAST)
    return kept if kept and kept[0][1] == model_id else None


def show_report(report: dict) -> None:
    """The evaluation's tables, bar chart, curves and downloads (the report JSON includes the
    metric-agreement panel of the same scenes and methods, when one was run)."""
    agreement = agreement_for(report, st.session_state)
    if agreement is not None:
        report = {**report, "agreement": agreement["panel"]}
    st.caption(f"{report['model']} on {report['images']} scenes ({report['data']}); top-1 accuracy "
               f"{report['top1_accuracy']:.1%}; {report['seconds']} s. Maps of pixel methods: |attribution| "
               "summed over colours. Each metric's score is named in the table below.")
    rows = [{"method": m, **{k: round(v, 3) for k, v in vals.items()}} for m, vals in report["methods"].items()]
    st.dataframe(rows, hide_index=True, width="stretch", key="eval_table")
    st.dataframe([{"metric": k, "score used": v} for k, v in report["scores"].items()], hide_index=True,
                 width="stretch", key="eval_scores")

    metric = st.selectbox("Metric", list(report["scores"]), key="eval_metric")
    bars = go.Figure(go.Bar(x=list(report["methods"]), y=[v[metric] for v in report["methods"].values()],
                            hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    bars.update_layout(height=320, title=metric, margin=dict(l=0, r=0, t=30, b=0))
    st.plotly_chart(bars, key="eval_bars")
    left, right = st.columns(2)
    for col, kind in ((left, "deletion"), (right, "insertion")):
        fig = go.Figure([go.Scatter(x=[i / (len(c[kind]) - 1) for i in range(len(c[kind]))], y=c[kind], name=m,
                                    mode="lines") for m, c in report["curves"].items()])
        fig.update_layout(height=320, title=f"{kind.capitalize()} curve (mean probability of the top-1 class)",
                          xaxis_title="share of pixels " + ("removed" if kind == "deletion" else "inserted"),
                          margin=dict(l=0, r=0, t=30, b=0))
        col.plotly_chart(fig, key=f"eval_{kind}")

    d1, d2 = st.columns(2)
    d1.download_button("Report (JSON)", json.dumps(report, indent=2), "evaluation.json", "application/json",
                       key="eval_json")
    d2.download_button("Report (CSV)", evaluation.to_csv(report), "evaluation.csv", "text/csv", key="eval_csv")
    if agreement is not None:
        st.caption("The JSON report includes the metric-agreement panel of these scenes and methods (below).")


def agreement_for(report: dict, state) -> dict | None:
    """The agreement panel kept in ``state`` for the report's model, scenes, methods, images, seed
    and tolerance (what the page's panel is keyed by), or None."""
    return state.get(_agreement_key(report["model"], report.get("data"), tuple(report["methods"]), report["images"],
                                    report.get("world_seed", -1), report["settings"]["tolerance_px"]))


def _agreement_key(model_id, split, methods, n, seed, tolerance):
    return ("agreement", model_id, split, tuple(methods), int(n), int(seed), float(tolerance))


AGREEMENT_EXPLANATIONS = 13  # per image and method: the map, 3 stability copies, another class, 2 x 3 smooth MPRT
# copies, the randomised model's map, the kept image's map


def agreement_panel(model_id: str, split: str, methods: tuple[str, ...], n: int, seed: int, tolerance: float) -> None:
    """Issue 31's panel: per metric the methods' ranking with bootstrap intervals, Kendall's tau
    between every two metrics as a heat map, the methods whose rank changes significantly, and a
    sentence; run when asked (its own button), kept per setting."""
    st.subheader("Do the metrics agree?")
    st.caption("Nine metrics rank the chosen methods on the same scenes: pointing, deletion and insertion, ROAD, "
               "stability, Random Logit, smooth and efficient MPRT, and ADCC. Benchmarks that compare many "
               "methods find that such metrics often disagree on which is best (LATEC, Hesse et al., NeurIPS 2024); "
               "this panel shows whether they do here, with intervals over the images.")
    if len(methods) < 2:
        st.info("Choose two methods at least to rank them.")
        return
    key = _agreement_key(model_id, split, methods, n, seed, tolerance)
    result = st.session_state.get(key)
    if result is None:
        st.caption(f"Each image costs {AGREEMENT_EXPLANATIONS} explanations per method and some 70 forwards "
                   f"(ROAD's, deletion's and insertion's, batched): {AGREEMENT_EXPLANATIONS * len(methods) * n:,} "
                   f"explanations for {n} images and {len(methods)} methods.")
        if not st.button("Compare the metrics", type="primary", key="agree_run"):
            return
        bar = st.progress(0.0, text=f"Scoring {n} images...")
        loaded = cache.load_model(model_id)
        try:
            scored = concordance.score_images(
                loaded, evaluation.from_spec(split, n, seed), list(methods), tolerance=tolerance,
                progress=lambda done: bar.progress(done / n, text=f"{done} of {n} images"))
            panel = concordance.panel(scored)
        except ValueError as err:
            bar.empty()
            st.error(f"The metrics could not be compared: {err}")
            return
        bar.empty()
        st.session_state[key] = {"scored": scored, "panel": panel}
        st.rerun()  # the report above includes the panel from now on
    scored, panel = result["scored"], result["panel"]
    names = panel["metrics"]
    (st.warning if "disagree" in panel["sentence"] or "below 0.5" in panel["sentence"] else st.success)(
        panel["sentence"])
    rows = []
    for m in panel["methods"]:
        row = {"method": m}
        for name in names:
            r = panel["rankings"][name][m]
            row[concordance.METRICS[name].title] = f"{r['rank']:g} ({r['low']:g}-{r['high']:g})"
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch", key="agree_ranks")
    st.caption(f"Rank by each metric, 1 best, with its {round(100 * panel['level'])}% bootstrap interval over "
               f"{panel['images']} images ({panel['boot']} draws, the same draws for every metric)."
               + (" Not ranked (no image with a value for every method): " + ", ".join(panel["not_ranked"])
                  if panel["not_ranked"] else ""))
    titles = [concordance.METRICS[name].title for name in names]
    mat = concordance.tau_matrix(panel)
    text = [[f"{v:.2f}" if np.isfinite(v) else "n/a" for v in row] for row in mat]  # n/a: a metric that ties all
    heat = go.Figure(go.Heatmap(z=mat, x=titles, y=titles, zmin=-1, zmax=1, text=text, colorscale="RdBu",
                                texttemplate="%{text}", hovertemplate="%{y} vs %{x}: tau %{text}<extra></extra>"))
    heat.update_layout(height=420, title="Kendall's tau between the metrics' rankings", margin=dict(l=0, r=0, t=30, b=0))
    st.plotly_chart(heat, key="agree_tau")
    changes = panel["significant_changes"]
    if changes:
        st.markdown("**Methods whose rank changes significantly** (the bootstrap interval of the rank difference "
                    "excludes 0):\n" + "\n".join(
                        f"- {c['method']}: {c['rank_a']:g} by {concordance.METRICS[c['metric_a']].title}, "
                        f"{c['rank_b']:g} by {concordance.METRICS[c['metric_b']].title}" for c in changes[:30])
                    + (f"\n- ... and {len(changes) - 30} more (in the JSON)" if len(changes) > 30 else ""))
    costs = [{"metric": concordance.METRICS[name].title, "better": "higher" if concordance.METRICS[name].higher_is_better
              else "lower", "cost beyond the map": concordance.METRICS[name].cost,
              "seconds per image and method": round(float(np.mean(list(scored["metric_seconds_per_image"][name].values()))), 4)}
             for name in scored["metrics"]]
    st.dataframe(costs, hide_index=True, width="stretch", key="agree_costs")
    left = {k: v for k, v in panel["left_out"].items() if v}
    if left:
        st.caption("Images left out of a metric (its value not finite for some method, e.g. a flat map has no rank "
                   "correlation): " + ", ".join(f"{concordance.METRICS[k].title} {v}" for k, v in left.items()))
    a, b = st.columns(2)
    a.download_button("Agreement (JSON)", concordance.to_json(panel, scored), "agreement.json",
                      "application/json", key="agree_json")
    b.download_button("Agreement (Markdown)", concordance.markdown(panel, scored), "agreement.md", "text/markdown",
                      key="agree_md")
