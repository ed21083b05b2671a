"""How it works: Grad-CAM's two formulas with the live numbers of the current image: the channel
weights alpha_k, the activation maps A^k they weight, and the sum that makes the map."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explainers import render
from ui import cache, routing, selection, text, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("How it works")
sel = selection.current()
model_id, shown, digest = sel.model_id, sel.image, sel.digest
loaded = cache.load_model(model_id)
names = loaded.categories

a, b, c = st.columns(3)
layer = views.layer_picker(model_id, "how_layer", a)
probs = cache.probabilities(model_id, digest, layer, shown)
cls = views.class_picker(names, probs, f"how_class_{model_id}_{digest}", where=b,
                         pref=views.image_class_pref(model_id, digest))
shown_k = c.slider("Channels to show", 4, 24, 8, 4, key="how_channels")

e = cache.explanation(model_id, digest, layer, "gradcam", cls, shown)
acts = cache.activations(model_id, digest, layer, shown)  # C x h x w
alpha = e["weights"]  # C
channels, h, w = acts.shape

st.markdown(f"**1. Channel weights.** Backpropagate the logit y^c of **{text.plain(names[cls])}** "
            f"({e['score']:.3f}) to the {channels} activation maps A^k of `{layer}` ({h}x{w}) and "
            "average each gradient over its Z = h·w positions (eq. 1):")
st.latex(r"\alpha_k^c = \frac{1}{Z}\sum_i\sum_j \frac{\partial y^c}{\partial A^k_{ij}}")
order = np.argsort(-np.abs(alpha))[:shown_k]
bar = go.Figure(go.Bar(x=[f"k={k}" for k in order], y=alpha[order],
                       marker_color=["#d62728" if alpha[k] > 0 else "#1f77b4" for k in order],
                       hovertemplate="channel %{x}: alpha %{y:.5f}<extra></extra>"))
bar.update_layout(height=280, margin=dict(l=0, r=0, t=30, b=0),
                  title=f"The {shown_k} largest |alpha_k| of {channels} (red: for the class, blue: against)")
st.plotly_chart(bar, key="how_alpha")

contribution = alpha[:, None, None] * acts  # alpha_k A^k
share = contribution.sum(axis=(1, 2))
lead = np.argsort(-share)[:shown_k]
st.markdown(f"**2. Weight the activation maps.** The {shown_k} channels whose weighted maps add most "
            "to the sum, each A^k on its own scale (per map):")
for row in range(0, len(lead), 4):
    for col, k in zip(st.columns(4), lead[row:row + 4]):
        (a01,) = render.normalize([np.maximum(acts[k], 0)], "per_map")
        col.image(render.colorize(render.resize_map(a01, shown.shape[:2]), "viridis"),
                  caption=f"A^{k}: alpha={alpha[k]:+.4f}, sum of alpha·A = {share[k]:+.3f}", width="stretch")

weighted = contribution.sum(axis=0)
cam = np.maximum(weighted, 0)
st.markdown("**3. Sum and keep the positive part** (eq. 2): only regions with positive influence "
            "on the class stay.")
st.latex(r"L^c_{\text{Grad-CAM}} = \mathrm{ReLU}\Big(\sum_k \alpha_k^c A^k\Big)")
left, right = st.columns(2)
left.plotly_chart(views.heatmap(weighted, f"sum of alpha_k A^k ({h}x{w})", colorscale="RdBu_r", zmid=0.0),
                  key="how_sum")
right.plotly_chart(views.heatmap(cam, f"ReLU of the sum: L^c ({h}x{w}, unnormalised)"), key="how_cam")
difference = float(np.abs(cam - e["layer_map"]).max())
top_share = float(share[lead].sum() / share.sum()) if share.sum() != 0 else float("nan")
positive, negative = float(share[share > 0].sum()), float(share[share < 0].sum())
st.markdown(f"This page's sum matches the library's map to a largest difference of **{difference:.2e}**. "
            f"The {shown_k} channels shown carry **{top_share:.0%}** of the summed evidence "
            f"(sum over the map of alpha_k A^k: {share.sum():+.3f}).")
if top_share > 1:
    st.caption(f"Why more than 100%: channels weigh in both ways. Those for the class add "
               f"{positive:+.3f}, those against it (negative alpha_k A^k) take {negative:+.3f} away, so the "
               f"net sum ({share.sum():+.3f}) is smaller than what the leading channels alone bring.")
(cam01,) = render.normalize([e["attribution"]], "per_map")
overlay = render.overlay(shown, cam01, 0.5)
st.image(overlay, caption="Upsampled to the image (bilinear) and normalised to its maximum (per map)",
         width=320)
views.downloads("how_dl", "gradcam_weights", overlay, alpha,
                views.settings_of(sel, loaded, layer=layer, class_index=cls, class_name=names[cls],
                                  normalisation="per_map", channels=channels,
                                  top_channels={int(k): float(alpha[k]) for k in order}),
                what=f"Grad-CAM of {names[cls]}", array_what="Channel weights alpha_k", image=shown,
                layer_map=e["layer_map"])
