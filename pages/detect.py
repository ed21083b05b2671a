"""Detect: a detector's boxes, and for the box you pick what the detector used to find it:
Grad-CAM and Eigen-CAM from one forward pass, and D-RISE (random masks, a black box) on demand,
with its cost measured first. The box is explained through its score, matched to the reference
box by IoU (``explainers.DetectionScore``), so the same object is followed through D-RISE's
masked images."""
import numpy as np
import streamlit as st

import explainers
from explainers import render
from ui import cache, dense_views as dv, routing, text, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Detect")
st.caption("Beyond one label per image: a detector's boxes, each explained as its own target (its score, "
           "matched to the box by IoU).")
model_id, loaded, name, view, scene = dv.model_and_image("detection", "det",
                                                         "./studio shapes train --model shapes-detector")
if model_id is None:
    st.stop()
categories = loaded.categories
x = dv.input_of(loaded, view)
key = (model_id, loaded.sha256, name, cache.digest(view))
kept = st.session_state.setdefault("det_runs", {})
if key not in kept:
    d = dv.run(loaded.model, x)
    kept.clear()  # one image at a time: D-RISE's maps below are kept with it
    kept[key] = {"boxes": d["boxes"], "scores": d["scores"], "labels": d["labels"], "cams": {}, "drise": {}}
run = kept[key]


def _name(label: int) -> str:
    return categories[label] if 0 <= label < len(categories) else f"class {label}"


threshold = st.slider("Score threshold", 0.0, 1.0, 0.3, 0.05, key="det_threshold",
                      help="Boxes scoring below it are hidden (the detector keeps its best 20 above 0.05).")
shown = [k for k in np.argsort(-run["scores"], kind="stable") if run["scores"][k] >= threshold]
scale = dv.scale_for(view)
if not shown:
    st.image(dv.enlarge(view, scale), caption=name)
    st.info(f"No detection scores {threshold:.2f} or more (the best: "
            f"{run['scores'].max() if len(run['scores']) else 0:.2f}); lower the threshold.")
    st.stop()
labels = [f"{i + 1}. {_name(int(run['labels'][k]))} {run['scores'][k]:.0%}" for i, k in enumerate(shown)]
left, right = st.columns([1, 1])
pick = right.radio("Explain the box", range(len(shown)), format_func=lambda i: labels[i], key=f"det_pick_{key[2]}")
k = int(shown[pick])
box = tuple(float(v) for v in run["boxes"][k])
label = int(run["labels"][k])
left.image(dv.draw_boxes(view, [run["boxes"][j] for j in shown], labels, scale, highlight=pick),
           caption=f"{name}: {len(shown)} boxes at {threshold:.2f} or more", width="stretch")
if scene is not None:
    truth = [(o.label, o.box) for o in scene.objects]
    right.caption("Ground truth: " + ", ".join(f"{_name(lab)} at {b}" for lab, b in truth))

target = explainers.DetectionScore(label, box, name=_name(label))
alpha = views.opacity_slider("det_alpha")
if k not in run["cams"]:  # once per box: the opacity, D-RISE's settings and the threshold rerun no network
    try:
        cap = explainers.Capture(loaded.model, x, layer=loaded.default_layer)
        run["cams"][k] = {m: cap.explain(m, target).attribution for m in ("gradcam", "eigencam")}
    except ValueError as err:
        st.error(f"Cannot explain this box: {text.plain(err)}")
        st.stop()
maps = dict(run["cams"][k])

st.markdown("**D-RISE** (Petsiuk et al., CVPR 2021): random masks weighted by how well the masked image's "
            "detections still match this box (IoU x score of the same class). No gradients, no layer.")
a, b, c = st.columns([1, 1, 2])
masks = int(a.number_input("Masks", 50, 5000, 500, 50, key="det_masks"))
cell = int(b.number_input("Cell size (px)", 2, max(2, view.shape[0] // 2), max(2, view.shape[0] // 8), 1,
                          key="det_cell", help="The random grid's cell: about an eighth of the image by default."))


@st.cache_data(show_spinner=False, max_entries=16)
def _seconds_per_image(model_key: tuple, _model, _x) -> float:
    return dv.seconds_per_image(_model, _x)


per = _seconds_per_image((model_id, loaded.sha256, view.shape), loaded.model, x)
drise_key = (k, masks, cell)
c.caption(f"Cost: {masks} forward passes, about {masks * per:.1f} s here (one forward measured at "
          f"{per * 1000:.1f} ms an image).")
if drise_key not in run["drise"] and c.button("Run D-RISE", key="det_run_drise"):
    bar = st.progress(0.0, text="D-RISE: masked images")
    e = explainers.explain(loaded.model, x, method="rise", target=target, masks=masks, cell=cell,
                           progress=lambda done, total: bar.progress(done / max(total, 1),
                                                                     text=f"D-RISE: {done} of {total} masked images"))
    bar.empty()
    run["drise"][drise_key] = e.attribution
if drise_key in run["drise"]:
    maps["rise"] = run["drise"][drise_key]

cols = st.columns(3)
titles = {"gradcam": "Grad-CAM", "eigencam": "Eigen-CAM (the same for every box)", "rise": "D-RISE"}
for col, method in zip(cols, ("gradcam", "eigencam", "rise")):
    if method not in maps:
        col.info("D-RISE runs when asked (above).")
        continue
    m = maps[method]
    pic = dv.draw_boxes(render.picture(view, m, alpha), [box], [labels[pick]], scale, highlight=0)
    cap_text = titles[method]
    if scene is not None:
        j = dv.true_object(scene, label, box)
        if j is not None:
            y, xx = np.unravel_index(int(np.argmax(m)), m.shape)
            x0, y0, x1, y1 = scene.objects[j].box
            inside = x0 <= xx < x1 and y0 <= y < y1
            cap_text += f": peak {'inside' if inside else 'outside'} the object's true box"
    col.image(pic, caption=cap_text, width="stretch")
st.caption(f"Layer `{loaded.default_layer}` for the CAMs; each map normalised to its own maximum. The box is "
           f"explained through its score ({run['scores'][k]:.3f}), the detection of {_name(label)} that overlaps "
           "the box most (IoU >= 0.5) on each image the method runs.")
