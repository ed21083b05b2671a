"""Mistakes: a model's held-out mistakes, each with the maps of the predicted and of the true
class, and a tally of where the predicted class's map peaks (the paper's section 6.1: seemingly
unreasonable mistakes often have reasonable explanations)."""
import plotly.graph_objects as go
import streamlit as st

from evaluation import diagnosis
from explainers import render
from model_zoo.shapes import concepts
from ui import cache, prefs, routing, selection, views
from ui import diagnosis as diag
from ui.text import count, plain

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Mistakes")
sel = selection.current()
model_id = sel.model_id
loaded = cache.load_model(model_id)
names = loaded.categories
shapes_model = cache.family(model_id) == "shapes"

a, b, c, d = st.columns(4)
layer = views.layer_picker(model_id, "mis_layer", a)
keep = int(d.number_input("Mistakes to show", 1, 60, key=prefs.bind("mis_keep", "mis:keep", 12)))
sources = ["shapes", "folder"] if shapes_model else ["folder"]
source = st.radio("Images", sources, horizontal=True, key=prefs.bind("mis_source", "mis:source", sources[0], sources),
                  format_func={"shapes": "held-out shapes scenes", "folder": "a labelled folder"}.get)
if source == "shapes":
    cue = b.selectbox("Corner mark", ["none", "match", "flip", "random"], key=prefs.bind("mis_cue", "mis:cue", "none"),
                      format_func={"none": "no mark", "match": "matching the class", "flip": "misleading",
                                   "random": "of a random class"}.get)
    n = int(c.number_input("Held-out scenes (seed 20000)", 20, 5000, step=20, key=prefs.bind("mis_n", "mis:n", 500)))
    kind = st.radio("Scenes", ["single", "pair"], horizontal=True, key=prefs.bind("mis_kind", "mis:kind", "single"),
                    format_func={"single": "one object", "pair": "two objects (right: either class)"}.get)
    if kind == "pair" and cue in ("match", "flip"):
        st.info("A two-object scene has no single class for its mark to match or mislead: pick no mark or a "
                "random one.")
        st.stop()
    report = diag.mistakes(model_id, n, 20000, cue, kind, layer, keep)
    if report is None:
        st.stop()
    st.caption(f"{model_id} on {n} held-out scenes: accuracy {report['accuracy']:.1%}, "
               f"{report['errors']} mistakes.")
else:
    folder = b.text_input("A labelled folder (images with Pascal VOC XML boxes)",
                          key=prefs.bind("mis_folder", "mis:folder", ""),
                          help="images/ and annotations/ (or the XML beside each image); an image's truth is "
                               "its first box's class, which must be one of the model's categories.")
    n = int(c.number_input("Images (at most)", 1, 50000, key=prefs.bind("mis_n_folder", "mis:n_folder", 200)))
    if not folder:
        st.info("Give a folder of labelled images to find the model's mistakes on it.")
        st.stop()
    try:
        report = diag.folder_mistakes(model_id, folder, n, layer, keep)
    except (ValueError, OSError) as err:  # no such folder, one that cannot be listed
        st.error(plain(str(err)))
        st.stop()
    if report is None:
        st.stop()
    st.caption(f"{model_id} on {report['images']} images: {report['errors']} mistakes.")
    if report["skipped"]:
        with st.expander(f"{count(len(report['skipped']), 'image')} skipped"):
            st.dataframe([{"file": f, "why": w} for f, w in report["skipped"]], hide_index=True, key="mis_skipped")

tally = report["tally"]
if report["errors"] == 0:
    st.success("No mistakes on these images.")
    st.stop()
fig = go.Figure(go.Bar(x=list(tally), y=list(tally.values()), hovertemplate="%{x}: %{y} mistakes<extra></extra>"))
fig.update_layout(height=280, margin=dict(l=0, r=0, t=30, b=0),
                  title="Where the predicted class's Grad-CAM peaks, over every mistake")
st.plotly_chart(fig, key="mis_tally")
st.caption(" · ".join(f"{r}: {tally[r]} ({tally[r] / report['errors']:.0%})" for r in concepts.REGIONS)
           + ". A peak on the mark or on clutter says what misled the model; a peak on the true object "
             "says it saw the object and read it as another class. The rule: the peak is the area where the map "
             f"is at {concepts.PEAK_SHARE:.0%} of its maximum or more, around the maximum (a map upsampled from "
             "a coarse layer is a plateau whose top pixel can sit beside what it covers); it lies on an object "
             + (f"or the mark when it comes within {report['tolerance_px']:g} px of it (the pointing game's "
                "tolerance, scaled to the image)" if "tolerance_px" in report else "when it overlaps its box")
             + ", in the order listed; else on clutter under its top pixel, else on the background.")

alpha = views.opacity_slider("mis_alpha")
shown_mistakes: list[diagnosis.Mistake] = report["mistakes"]
st.subheader(f"The first {len(shown_mistakes)} mistakes")
for row in range(0, len(shown_mistakes), 3):
    cols = st.columns(3)
    for col, m in zip(cols, shown_mistakes[row:row + 3]):
        pm, tm = render.normalize([m.predicted_map, m.true_map], "joint")
        col.image(render.overlay(m.image, pm, alpha), width="stretch",
                  caption=f"Said {names[m.predicted]} ({m.probability:.0%}); map peaks on the {m.region}")
        col.image(render.overlay(m.image, tm, alpha), width="stretch",
                  caption=f"Grad-CAM of the truth, {names[m.true]} (same scale)")
