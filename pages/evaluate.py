"""Evaluate: the paper's quantitative protocols (localisation, pointing, faithfulness) and later
ones (deletion / insertion, Average Drop / Increase in Confidence) on N sampled shapes scenes for
the sidebar's model, every chosen method beside a random and a centre baseline."""
import json

import plotly.graph_objects as go
import streamlit as st

import evaluation
from ui import evaluation as runner
from ui import selection

st.title("Evaluate")
sel = selection.current()
model_id = sel.model_id
if not model_id.startswith("shapes-"):
    st.info("The Evaluate page runs on the shapes world, whose boxes and masks are known; for an "
            "ImageNet model use the command line with a VOC-annotated folder: "
            f"`python -m evaluation --model {model_id} --data DIR`.")
    st.stop()

a, b, c = st.columns(3)
split = a.radio("Scenes", ["shapes:single", "shapes:pair"], horizontal=True, key="eval_split",
                format_func={"shapes:single": "one object", "shapes:pair": "two objects"}.get)
n = int(b.number_input("Images", 1, 2000, 20, key="eval_n"))
seed = int(c.number_input("World seed (20000: held out from training)", 0, 10**6, 20000, key="eval_seed"))
methods = st.multiselect("Methods", list(evaluation.ALL_METHODS), default=list(evaluation.ALL_METHODS),
                         key="eval_methods")
a, b, c = st.columns(3)
tolerance = a.slider("Pointing tolerance (px)", 0, 15, 4, key="eval_tolerance",
                     help="The paper uses 15 px on 224-px images; 4 px is the same share of a 64-px scene.")
threshold = b.slider("Box threshold (x max)", 0.05, 0.5, 0.15, 0.05, key="eval_threshold")
steps = int(c.select_slider("Deletion / insertion steps", [8, 16, 32, 64], 32, key="eval_steps"))
if not methods:
    st.info("Choose at least one method.")
    st.stop()
if not st.button("Run the evaluation", type="primary", key="eval_run") and \
        ("evaluation", model_id, split, tuple(methods), n, seed, float(tolerance), threshold, steps) not in st.session_state:
    st.caption("About 1 s per image for the shapes models on a 2-core CPU (all methods).")
    st.stop()
report = runner.run(model_id, split, tuple(methods), n, seed, float(tolerance), threshold, steps)

st.caption(f"{report['model']} on {report['images']} scenes ({split}, seed {seed}); top-1 accuracy "
           f"{report['top1_accuracy']:.1%}; {report['seconds']} s. Maps of pixel methods: |attribution| "
           "summed over colours. Each metric's score is named in the table below.")
rows = [{"method": m, **{k: round(v, 3) for k, v in vals.items()}} for m, vals in report["methods"].items()]
st.dataframe(rows, hide_index=True, width="stretch", key="eval_table")
st.dataframe([{"metric": k, "score used": v} for k, v in report["scores"].items()], hide_index=True,
             width="stretch", key="eval_scores")

metric = st.selectbox("Metric", list(report["scores"]), key="eval_metric")
bars = go.Figure(go.Bar(x=list(report["methods"]), y=[v[metric] for v in report["methods"].values()],
                        hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
bars.update_layout(height=320, title=metric, margin=dict(l=0, r=0, t=30, b=0))
st.plotly_chart(bars, key="eval_bars")
left, right = st.columns(2)
for col, kind in ((left, "deletion"), (right, "insertion")):
    fig = go.Figure([go.Scatter(x=[i / (len(c[kind]) - 1) for i in range(len(c[kind]))], y=c[kind], name=m,
                                mode="lines") for m, c in report["curves"].items()])
    fig.update_layout(height=320, title=f"{kind.capitalize()} curve (mean probability of the top-1 class)",
                      xaxis_title="share of pixels " + ("removed" if kind == "deletion" else "inserted"),
                      margin=dict(l=0, r=0, t=30, b=0))
    col.plotly_chart(fig, key=f"eval_{kind}")

d1, d2 = st.columns(2)
d1.download_button("Report (JSON)", json.dumps(report, indent=2), "evaluation.json", "application/json",
                   key="eval_json")
d2.download_button("Report (CSV)", evaluation.to_csv(report), "evaluation.csv", "text/csv", key="eval_csv")
