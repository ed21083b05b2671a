"""The evaluation run for the Evaluate page: the library's loop on N sampled images with a
progress bar; the report is kept per settings so reruns of the page do not repeat it."""
from __future__ import annotations

import threading

import streamlit as st

import evaluation
import explainers
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
    report["data"] = split
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
