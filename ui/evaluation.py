"""The evaluation run for the Evaluate page: the library's loop on N sampled images with a
progress bar; the report is kept per settings so reruns of the page do not repeat it."""
from __future__ import annotations

import threading
import time

import streamlit as st

import evaluation
from ui import cache

LAST = "eval_last_report"


@st.cache_resource(show_spinner=False)
def _timings() -> dict:
    """Seconds per image measured on this machine, per (model, methods, steps): the newest run."""
    return {"lock": threading.Lock(), "per_image": {}}


def seconds_per_image(model_id: str, split: str, methods: tuple[str, ...], seed: int, tolerance: float,
                      threshold: float, steps: int) -> tuple[float, str]:
    """(seconds per image, how it was measured) for these settings on this machine: the last
    evaluation's own time, else one image timed now (once per process and settings)."""
    t = _timings()
    key = (model_id, split, methods, steps)
    with t["lock"]:
        known = t["per_image"].get(key)
    if known is not None:
        return known
    with st.spinner("Timing one image on this machine..."):
        started = time.perf_counter()
        evaluation.evaluate(cache.load_model(model_id), evaluation.from_spec(split, 1, seed), list(methods),
                            threshold=threshold, tolerance=tolerance, steps=steps)
        measured = (time.perf_counter() - started, "one image timed on this machine just now")
    with t["lock"]:
        t["per_image"].setdefault(key, measured)
    return measured


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
        t["per_image"][(model_id, split, methods, steps)] = (
            report["seconds"] / max(report["images"], 1),
            f"the last run of these settings here: {report['seconds']:.0f} s for {report['images']} images")
    return report


def last(model_id: str):
    """(settings key, report) of this session's last evaluation of ``model_id``, or None."""
    kept = st.session_state.get(LAST)
    return kept if kept and kept[0][1] == model_id else None
