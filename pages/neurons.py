"""Neurons: the units of a layer named by Network Dissection from concept masks, and the paper's
textual explanation of a decision (section 7): its most important units by alpha_k, with their
names, IoU and activation maps."""
import streamlit as st

from explainers import dissect, render
from ui import cache, routing, selection, text, views
from ui import diagnosis as diag

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Neurons")
sel = selection.current()
model_id, shown, digest = sel.model_id, sel.image, sel.digest
loaded = cache.load_model(model_id)
names = loaded.categories
shapes_model = cache.family(model_id) == "shapes"

a, b, c = st.columns(3)
layer = views.layer_picker(model_id, "neu_layer", a)
probs = cache.probabilities(model_id, digest, layer, shown)
cls = views.class_picker(names, probs, f"neu_class_{model_id}_{digest}", where=b,
                         pref=views.image_class_pref(model_id, digest))
sources = ["shapes", "folder"] if shapes_model else ["folder"]
source = c.radio("Concepts from", sources, horizontal=True, key="neu_source",
                 format_func={"shapes": "the shapes world", "folder": "a folder of masks"}.get)
skipped = []
try:
    if source == "shapes":
        n = int(st.number_input("Probe scenes (seed 30000, half with one object, half with two, each with a "
                                "random mark)", 100, 2000, 400, 100, key="neu_n"))
        d = diag.dissection(model_id, layer, n, 30000)
    else:
        folder = st.text_input("Folder with images/ and masks/<concept>/<image stem>.png", key="neu_folder",
                               help="Each mask is the size of its image; non-zero pixels carry the concept. "
                                    "An image without a mask of a concept has none of it.")
        if not folder:
            st.info("Give a folder of images and per-concept masks to name this layer's units.")
            st.stop()
        got = diag.folder_dissection(model_id, layer, folder)
        d, skipped = got if got is not None else (None, [])
except ValueError as err:
    st.error(str(err))
    st.stop()
if d is None:
    st.stop()
if skipped:
    with st.expander(f"{text.count(len(skipped), 'file')} skipped"):
        st.dataframe([{"file": f, "why": w} for f, w in skipped], hide_index=True, key="neu_skipped")

summary = d.summary()
st.caption(f"Layer `{layer}`: {d.units} units dissected on {d.images} images (top {d.top:.1%} of each unit's "
           f"activations; a name needs IoU > {d.min_iou}). "
           + ", ".join(f"{k}: {v}" for k, v in sorted(summary.items(), key=lambda kv: -kv[1])) + ".")

e = cache.explanation(model_id, digest, layer, "gradcam", cls, shown)
if e["weights"] is None or len(e["weights"]) != d.units:
    st.error(f"The explanation of layer {layer} has no channel weights for its {d.units} units.")
    st.stop()
top, bottom = dissect.decision_units(e["weights"], d, 5)
st.subheader("Why, in words")
predicted = names[max(range(len(probs)), key=lambda k: float(probs[k]))]
st.markdown(f"> {text.plain(dissect.sentence(names[cls], top, predicted))}")
acts = cache.activations(model_id, digest, layer, shown)


def unit_rows(reasons):
    return [{"unit": r.unit, "alpha_k": round(r.alpha, 5), "name": r.name or "(unnamed)",
             "best concept": r.best, "IoU": round(r.iou, 3)} for r in reasons]


for title, reasons, key in (("The 5 units that speak most for the class", top, "neu_top"),
                            ("The 5 units that speak most against it", bottom, "neu_bottom")):
    st.markdown(f"**{title}**")
    st.dataframe(unit_rows(reasons), hide_index=True, key=key)
    cols = st.columns(5)
    for col, r in zip(cols, reasons):
        (m01,) = render.normalize([acts[r.unit]], "per_map")
        col.image(render.overlay(shown, m01, 0.5), width="stretch",
                  caption=f"unit {r.unit}: {r.name or 'unnamed'}, activation A^k (its own scale)")
