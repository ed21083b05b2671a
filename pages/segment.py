"""Segment: a segmenter's label for every pixel, and what the network used to label a region: a
class's predicted mask, one object of it, or a rectangle you set, explained as that class's
logits summed over the region (``explainers.SegmentationRegion``). The evidence outside the
region is shown and measured too: a segmenter may label a pixel from its context."""
import numpy as np
import streamlit as st
from scipy import ndimage

import explainers
from evaluation import dense as ev
from explainers import render
from ui import cache, dense_views as dv, routing, text, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Segment")
st.caption("Beyond one label per image: a label per pixel, and the evidence for the labels of a region.")
model_id, loaded, name, view, scene = dv.model_and_image("segmentation", "seg",
                                                         "./studio shapes train --model shapes-segmenter")
if model_id is None:
    st.stop()
categories = loaded.categories
x = dv.input_of(loaded, view)
key = (model_id, loaded.sha256, name, cache.digest(view))
if st.session_state.get("seg_key") != key:
    st.session_state["seg_pred"] = dv.run(loaded.model, x)
    st.session_state["seg_key"] = key
pred = st.session_state["seg_pred"]
scale = dv.scale_for(view)
present = [int(c) for c in np.unique(pred) if c != 0]

left, right = st.columns([1, 1])
left.image(dv.enlarge(dv.label_overlay(view, pred), scale), width="stretch",
           caption=f"{name}: the predicted labels")
right.markdown("**Predicted classes** (pixels): " + (", ".join(f"{categories[c]} ({int((pred == c).sum())})"
                                                               for c in present) or "background only"))
if scene is not None:
    right.caption("Ground truth: " + ", ".join(o.name for o in scene.objects))

what = right.radio("Explain", ["A class's predicted mask", "One object of a class", "A rectangle"],
                   key="seg_what", horizontal=False)
classes = present if what != "A rectangle" else list(range(1, len(categories)))
if not classes:
    st.info("The segmenter labelled every pixel background here: pick 'A rectangle' to explain a class "
            "over a region of your choice.")
    st.stop()
cls = right.selectbox("Class", classes, format_func=lambda c: categories[c], key=f"seg_class_{what}")
h, w = pred.shape
if what == "A class's predicted mask":
    region = pred == cls
elif what == "One object of a class":
    parts, count = ndimage.label(pred == cls)
    sizes = ndimage.sum_labels(np.ones_like(parts), parts, range(1, count + 1))
    order = [int(i) + 1 for i in np.argsort(-sizes, kind="stable")]
    centres = ndimage.center_of_mass(np.ones_like(parts), parts, order)
    part = right.selectbox("Object (a connected region)", range(len(order)), key=f"seg_part_{cls}",
                           format_func=lambda i: f"{int(sizes[order[i] - 1])} px around "
                                                 f"({centres[i][1]:.0f}, {centres[i][0]:.0f})")
    region = parts == order[part]
else:
    xs = right.slider("x range (px)", 0, w, (w // 4, 3 * w // 4), key="seg_rect_x")
    ys = right.slider("y range (px)", 0, h, (h // 4, 3 * h // 4), key="seg_rect_y")
    region = np.zeros((h, w), bool)
    region[ys[0]:ys[1], xs[0]:xs[1]] = True
if not region.any():
    st.info("The region is empty: widen the rectangle.")
    st.stop()

a, b = st.columns([1, 1])
method = a.selectbox("Method", [m for m in explainers.method_names(model=loaded.model, classes=False) if not explainers.get_method(m).forward_heavy],
                     format_func=views.method_title, key="seg_method")
alpha = views.opacity_slider("seg_alpha", b)
target = explainers.SegmentationRegion(cls, region, name=categories[cls])
spec = explainers.get_method(method)
try:
    e = explainers.explain(loaded.model, x, method=method, target=target,
                           layer=loaded.default_layer if spec.needs_layer else None)
except ValueError as err:
    st.error(f"Cannot explain this region: {text.plain(err)}")
    st.stop()
m = e.attribution if e.attribution.ndim == 2 else np.abs(e.attribution).max(0)
pos = np.maximum(m, 0)
total = float(pos.sum())
outside = float(pos[~region].sum() / total) if total > 0 else 0.0
outline = dv.label_overlay(view, np.where(region, 15, 0), alpha=0.35)
c1, c2, c3 = st.columns(3)
c1.image(dv.enlarge(outline, scale), caption=f"The region: {int(region.sum())} px labelled or taken as "
         f"{categories[cls]}", width="stretch")
c2.image(dv.enlarge(render.picture(view, m, alpha), scale), width="stretch",
         caption=f"{views.method_title(method)} of {categories[cls]} summed over the region")
c3.image(dv.enlarge(render.picture(view, np.where(region, 0, pos), alpha), scale), width="stretch",
         caption=f"The evidence outside the region: {outside:.0%} of the map's positive mass")
lines = [f"Score: {e.score:.1f} (the {categories[cls]} logits summed over {int(region.sum())} px)."]
if scene is not None and cls >= 1:
    share = ev.segmentation_mass(m, scene, cls - 1)
    lines.append(f"Against the ground truth: {share['inside']:.0%} of the positive mass lies on the "
                 f"{categories[cls]} pixels, {share['other_objects']:.0%} on the other objects and "
                 f"{share['background']:.0%} on the background.")
st.caption(" ".join(lines) + (f" Layer `{e.layer}`." if e.layer else ""))
