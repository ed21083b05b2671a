"""Evaluate: the paper's quantitative protocols (localisation, pointing, faithfulness) and later
ones (deletion / insertion, Average Drop / Increase in Confidence) on N sampled shapes scenes for
the sidebar's model, every chosen method beside a random and a centre baseline."""

import streamlit as st

import evaluation
from ui import evaluation as runner
from ui import cache, prefs, routing, selection

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Evaluate")
sel = selection.current()
model_id = sel.model_id
if not model_id.startswith("shapes-"):
    st.info("The Evaluate page runs on the shapes world, whose boxes and masks are known; for an "
            "ImageNet model use the command line with a VOC-annotated folder: "
            f"`python -m cli.evaluate --model {model_id} --data DIR`, and for the real photos "
            f"`python -m cli.evaluate photos --model {model_id}`.")
    selection.shapes_button("eval_use_shapes")
    st.stop()

# the settings outlive a visit to another page (bound to preferences), and so does the result
a, b, c = st.columns(3)
split = a.radio("Scenes", ["shapes:single", "shapes:pair"], horizontal=True,
                key=prefs.bind("eval_split", "eval:split", "shapes:single", ["shapes:single", "shapes:pair"]),
                format_func={"shapes:single": "one object", "shapes:pair": "two objects"}.get)
n = int(b.number_input("Images", 1, 2000, key=prefs.bind("eval_n", "eval:n", 20)))
seed = int(c.number_input("World seed (20000: held out from training)", 0, 10**6,
                          key=prefs.bind("eval_seed", "eval:seed", 20000)))
offered = evaluation.all_methods(cache.load_model(model_id).model)  # LeGrad for models with attention
methods = st.multiselect("Methods", offered, key=prefs.bind("eval_methods", "eval:methods", offered))
a, b, c = st.columns(3)
tolerance = a.slider("Pointing tolerance (px)", 0, 15, key=prefs.bind("eval_tolerance", "eval:tolerance", 4),
                     help="The paper uses 15 px on 224-px images; 4 px is the same share of a 64-px scene.")
threshold = b.slider("Box threshold (x max)", 0.05, 0.5, step=0.05,
                     key=prefs.bind("eval_threshold", "eval:threshold", 0.15))
steps = int(c.select_slider("Deletion / insertion steps", [8, 16, 32, 64],
                            key=prefs.bind("eval_steps", "eval:steps", 32, [8, 16, 32, 64])))
if not methods:
    st.info("Choose at least one method.")
    st.stop()
settings = (model_id, split, tuple(methods), n, seed, float(tolerance), threshold, steps)
clicked = st.button("Run the evaluation", type="primary", key="eval_run")
kept = runner.last(model_id)
report = None
if not clicked and ("evaluation", *settings) not in st.session_state:
    per_image, how = runner.seconds_per_image(model_id, tuple(methods), steps)
    st.caption(f"Estimated {per_image * n:.0f} s for {n} images: {per_image:.1f} s per image ({how}).")
    if kept is not None:
        st.info("Showing your last result, made with other settings: press the button to run these.")
        report = kept[1]
else:
    report = runner.run(*settings)
if report is not None:
    runner.show_report(report)
runner.agreement_panel(model_id, split, tuple(methods), n, seed, float(tolerance))
