"""Bias: a model trained where a corner mark gives the class away beside one trained without it,
on the same scenes with a matching, a misleading and no mark: accuracy, and how much of each
Grad-CAM map lies on the mark (the paper's section 6.3, doctors and nurses, in the shapes world)."""
import plotly.graph_objects as go
import streamlit as st

from evaluation import diagnosis
from explainers import render
from model_zoo.shapes import world
from ui import cache, routing
from ui import diagnosis as diag

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Bias")
ready, _ = cache.available_models()
shapes = [m for m in ready if cache.family(m) == "shapes"]
if len(shapes) < 2:
    st.info("The bias demo needs two shapes-world classifiers; retrain them with `./studio shapes train`.")
    st.stop()
a, b, c = st.columns(3)
biased = a.selectbox("Biased model", shapes, index=shapes.index("shapes-biased") if "shapes-biased" in shapes else 0,
                     key="bias_biased")
others = [m for m in shapes if m != biased]
fair = b.selectbox("Retrained model", others,
                   index=others.index("shapes-resnet") if "shapes-resnet" in others else 0, key="bias_fair")
n = int(c.number_input("Held-out scenes per mark (seed 20000)", 20, 2000, 200, 20, key="bias_n"))
seed = 20000
models = (biased, fair)
report = diag.bias(models, n, seed)
if report is None:
    st.stop()

rows = [{"model": m, "mark": diagnosis.BIAS_CUES[cue], "accuracy": f"{v['accuracy']:.1%}",
         "map mass on the mark": f"{v['mark_mass']:.1%}"} for m in models for cue, v in report[m].items()]
st.dataframe(rows, hide_index=True, key="bias_table")
fig = go.Figure([go.Bar(name=m, x=list(diagnosis.BIAS_CUES.values()),
                        y=[report[m][cue]["mark_mass"] for cue in diagnosis.BIAS_CUES],
                        hovertemplate="%{x}: %{y:.1%}<extra>" + m + "</extra>") for m in models])
fig.update_layout(barmode="group", height=300, margin=dict(l=0, r=0, t=30, b=0), yaxis_tickformat=".0%",
                  title="Share of the predicted class's Grad-CAM mass inside the mark's 7 x 7 box")
st.plotly_chart(fig, key="bias_mass")

rb, rf = report[biased], report[fair]
x0, y0, x1, y1 = world.CUE_BOX
mark_share = (x1 - x0) * (y1 - y0) / world.SIZE ** 2
ratio = rb["match"]["mark_mass"] / rf["match"]["mark_mass"] if rf["match"]["mark_mass"] > 0 else float("inf")
st.markdown(
    f"**The story, in this run's figures.** With the mark matching the class, **{biased}** is right "
    f"{rb['match']['accuracy']:.0%} of the time, but without the mark only {rb['none']['accuracy']:.0%} "
    f"and with a misleading mark {rb['flip']['accuracy']:.0%}: it learned the mark, not the shapes. "
    f"Grad-CAM shows it before any accuracy test does: {rb['match']['mark_mass']:.1%} of its map lies on the "
    f"mark's box ({mark_share:.1%} of the image), {ratio:.1f} times the {rf['match']['mark_mass']:.1%} of **{fair}**. "
    f"Retrained without the shortcut, {fair} is right {rf['none']['accuracy']:.0%} without the mark and "
    f"{rf['flip']['accuracy']:.0%} with a misleading one.")

index = int(st.number_input("Example scene", 0, n - 1, 0, key="bias_index"))
examples = diag.bias_examples(models, index, seed)
names = cache.load_model(biased).categories
cols = st.columns(3)
for col, (cue, ex) in zip(cols, examples.items()):
    col.markdown(f"**{diagnosis.BIAS_CUES[cue]}** (truth: {names[ex['label']]})")
    col.image(ex["image"], width="stretch")
    maps = [ex["models"][m]["map"] for m in models]
    for m, m01 in zip(models, render.normalize(maps, "per_map")):
        pred = ex["models"][m]["prediction"]
        col.image(render.overlay(ex["image"], m01, 0.5), width="stretch",
                  caption=f"{m}: {names[pred]}" + ("" if pred == ex["label"] else " (wrong)"))
