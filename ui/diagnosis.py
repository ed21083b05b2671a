"""What the Diagnose pages compute, when asked (a Run button), with a progress bar while it runs,
then kept per setting for every session (``cache.map_store``): mistakes, attacks, bias figures and
dissections. A page opens at once: what it would compute waits for the button, and a setting
already computed is shown without asking."""
from __future__ import annotations

import contextlib
import time

import numpy as np
import streamlit as st
import torch
from PIL import Image

import explainers
from evaluation import diagnosis
from explainers import adversarial
from model_zoo import threads
from ui import cache


RUN = {"mistakes": "Find the mistakes", "folder_mistakes": "Find the mistakes", "bias": "Run the bias test",
       "attack": "Run the attack", "dissection": "Dissect the layer", "folder_dissection": "Dissect the layer"}
PROGRESS_EVERY_S = 0.2
SHOW_BAR_AFTER_S = 0.5
WIDEN_AFTER_S = 0.2


def _kept(key: tuple, text: str, compute, ask: bool = True, threads_of: str | None = None):
    """``compute(progress)`` once per key (``progress(done, total)``; total 0: unknown), with a bar.
    With ``ask``, a key not computed yet waits for its Run button (key ``run_<kind>``): None until
    pressed, and the page stops there. A caption says how long the computation took (timed here,
    around the library call: what ``./studio bench browser --heavy-only`` compares with the call
    made outside the app). ``threads_of``: run under that model's thread rule (``cache.torch_threads``:
    a small model on one thread, as its maps are).

    The bar takes the button's place only once the work has run for :data:`SHOW_BAR_AFTER_S`:
    each change on screen is drawn by the browser on the cores the computation runs on, and a
    short run (a 10-step PGD attack: 0.1 s) finishes before a bar would tell anything; nor is a
    first bar drawn when the run's own projection (time so far per item done, times the items
    left) says less than that is left (a 100-step attack: 0.54 s in the app with this rule, 0.59 s
    without; ``./studio bench browser --heavy-only``). For the same
    reason a run under ``threads_of``'s one thread takes every thread once it has run for
    :data:`WIDEN_AFTER_S` (at its next progress call): by then the browser has drawn the press,
    and the second core is free (a 100-step attack took 0.69 s in the app on one thread, 0.57 s
    widened)."""
    store = cache.map_store()
    kept = store.get(key)
    if kept is None:
        slot = st.empty()
        if ask:
            if not slot.button(RUN[key[0]], key=f"run_{key[0]}", type="primary"):
                st.info("Nothing has run for these settings yet: press the button when they are as you want "
                        "them (each setting is computed once and kept).")
                return None
        started = time.perf_counter()
        last = [started]  # when the bar last changed; still ``started`` while none is drawn

        def progress(done, total):
            # the bar appears after SHOW_BAR_AFTER_S, then changes at most every PROGRESS_EVERY_S:
            # each change is a message the browser draws (Neurons sent one per probe batch)
            now = time.perf_counter()
            if threads_of and now - started >= WIDEN_AFTER_S and torch.get_num_threads() != threads.ALL_THREADS:
                torch.set_num_threads(threads.ALL_THREADS)  # the browser has drawn the press: every core
            if now - started < SHOW_BAR_AFTER_S or now - last[0] < PROGRESS_EVERY_S:
                return
            if total and done and last[0] == started and (now - started) / done * (total - done) < SHOW_BAR_AFTER_S:
                return  # nearly done: a first bar now would tell nothing and cost the browser a draw
            last[0] = now
            slot.progress(min(1.0, done / total) if total else 0.5,
                          text=f"{text} {done} of {total}" if total else f"{text} {done} done")

        with cache.torch_threads(threads_of) if threads_of else contextlib.nullcontext():
            got = compute(progress)
        kept = (got, time.perf_counter() - started)
        slot.empty()  # the button or the bar gives way to the result
        store.put(key, kept)
    got, seconds = kept
    if ask:
        st.caption(f"Computed in {seconds:.2f} s, kept for these settings.")
    return got


def mistakes(model_id: str, n: int, seed: int, cue: str, kind: str, layer: str, keep: int) -> dict:
    return _kept(("mistakes", model_id, n, seed, cue, kind, layer, keep), f"Classifying {n} scenes...",
                 lambda p: diagnosis.mistakes(cache.load_model(model_id), n, seed, cue, kind, layer, keep=keep,
                                              progress=p))


def folder_mistakes(model_id: str, folder: str, n: int, layer: str, keep: int) -> dict:
    from evaluation import data
    return _kept(("folder_mistakes", model_id, folder, n, layer, keep), "Classifying the folder's images...",
                 lambda p: diagnosis.folder_mistakes(cache.load_model(model_id), data.voc_folder(folder, n), layer,
                                                     keep=keep, progress=p))


def bias(model_ids: tuple[str, ...], n: int, seed: int) -> dict:
    return _kept(("bias", model_ids, n, seed), f"Running {len(model_ids)} models on {n} scenes per mark...",
                 lambda p: diagnosis.bias_report([cache.load_model(m) for m in model_ids], n, seed, progress=p))


def bias_examples(model_ids: tuple[str, ...], index: int, seed: int) -> dict:
    """For one scene index under each mark policy: the image, and per model the prediction and
    its Grad-CAM."""
    def compute(progress):
        from model_zoo.shapes.world import make_scene
        out = {}
        for cue in diagnosis.BIAS_CUES:
            scene = make_scene(seed, index, "single", cue)
            row = {"image": None, "label": scene.label, "models": {}}
            for m in model_ids:
                loaded = cache.load_model(m)
                view, x = loaded.preprocess.prepare(Image.fromarray(scene.image))
                if row["image"] is None:  # the picture under the maps: the first model's view
                    row["image"] = view
                cap = explainers.Capture(loaded.model, x[None], layer=loaded.default_layer)
                pred = int(cap.output.argmax(1))
                e = cap.explain("gradcam", pred)
                row["models"][m] = {"prediction": pred, "map": e.attribution}
            out[cue] = row
        return out
    return _kept(("bias_examples", model_ids, index, seed), "Explaining the example scene...", compute, ask=False)


def attack(model_id: str, digest: str, image: np.ndarray, method: str, epsilon: float, steps: int,
           step_size: float | None, target: int | None, layer: str) -> dict:
    """The attacked image and what the model and Grad-CAM say before and after."""
    def compute(progress):
        loaded = cache.load_model(model_id)
        clean = cache.capture(model_id, digest, layer, image)  # the kept forward: no second clean pass
        clean_label = int(clean.output.detach().argmax(1))
        x = cache.model_input(model_id, image)
        pre = dict(mean=loaded.preprocess.mean, std=loaded.preprocess.std)
        if method == "fgsm":
            att = adversarial.fgsm(loaded.model, x, clean_label, epsilon, target=target, **pre)
        else:
            att = adversarial.pgd(loaded.model, x, clean_label, epsilon, steps=steps, step_size=step_size,
                                  target=target, progress=progress, **pre)
        adv_label = int(att.prediction[0])
        attacked = explainers.Capture(loaded.model, att.x, layer=layer)
        delta = att.perturbation[0].permute(1, 2, 0).numpy()
        return {"clean_label": clean_label, "adversarial_label": adv_label,
                "clean_probs": cache.probabilities(model_id, digest, layer, image),
                "adversarial_probs": torch.softmax(attacked.output.detach(), 1)[0].numpy(),
                "image": loaded.preprocess.picture(att.x), "perturbation": delta,
                "step_size": att.step_size,
                "maps": {"original_clean": cache.explanation(model_id, digest, layer, "gradcam", clean_label,
                                                             image)["attribution"],
                         "original_attacked": attacked.explain("gradcam", clean_label).attribution,
                         "adversarial_attacked": attacked.explain("gradcam", adv_label).attribution}}
    label = "PGD step" if method == "pgd" else "FGSM"
    return _kept(("attack", model_id, digest, method, epsilon, steps, step_size, target, layer), f"{label}...",
                 compute, threads_of=model_id)


def dissection(model_id: str, layer: str, n: int, seed: int):
    return _kept(("dissection", model_id, layer, n, seed), "Dissecting: probe batch",
                 lambda p: diagnosis.dissection(cache.load_model(model_id), layer, n, seed, progress=p))


def folder_dissection(model_id: str, layer: str, folder: str):
    return _kept(("folder_dissection", model_id, layer, folder), "Dissecting: image batch",
                 lambda p: diagnosis.folder_dissection(cache.load_model(model_id), layer, folder, progress=p))
