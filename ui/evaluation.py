"""The evaluation run for the Evaluate page: the library's loop on N sampled images with a
progress bar; the report is kept per settings so reruns of the page do not repeat it."""
from __future__ import annotations

import streamlit as st

import evaluation
from ui import cache


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
    return report
