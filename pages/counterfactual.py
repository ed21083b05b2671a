"""Counterfactual: where the evidence against a class lies (Grad-CAM of -y^c, paper section 3.3),
beside the Grad-CAM map; a check of what each map claims by masking its region and re-running the
model; and contrastive maps, "why A rather than B" (Grad-CAM of y^A - y^B)."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explainers import agreement, render
from ui import cache, routing, selection, text, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Counterfactual")
sel = selection.current()
model_id, shown, digest = sel.model_id, sel.image, sel.digest
loaded = cache.load_model(model_id)
names = loaded.categories


@st.fragment
def counterfactual() -> None:
    """Everything under the title: a change of layer, class, region, baseline or opacity reruns this
    alone, not the sidebar."""
    a, b = st.columns(2)
    layer = views.layer_picker(model_id, "cf_layer", a)
    probs = cache.probabilities(model_id, digest, layer, shown)
    logits = cache.logits(model_id, digest, layer, shown)
    top = [int(i) for i in np.argsort(-probs)]
    cls = views.class_picker(names, probs, f"cf_class_{model_id}_{digest}", where=b,
                             pref=views.image_class_pref(model_id, digest))
    a, b, c = st.columns(3)
    fraction = a.slider("Region to mask (% of pixels)", 5, 50, 15, 5, key="cf_fraction") / 100
    baseline = b.radio("Masked pixels become", ["mean", "blur"], horizontal=True, key="cf_baseline",
                       format_func={"mean": "the mean colour", "blur": "a blurred copy"}.get)
    alpha = views.opacity_slider("cf_alpha", c, "Opacity")

    gradcam = cache.explanation(model_id, digest, layer, "gradcam", cls, shown)["attribution"]
    counter = cache.explanation(model_id, digest, layer, "counterfactual", cls, shown)["attribution"]
    regions = {"Grad-CAM": agreement.top_region(gradcam, fraction),
               "Counterfactual": agreement.top_region(counter, fraction)}
    masked, seen = cache.masked_logits(model_id, digest, shown, tuple(regions.values()),
                                 f"{layer}/{cls}/{fraction}", baseline)

    st.caption(f"Class **{text.plain(names[cls])}**, layer `{layer}`. Each map normalised to its own maximum "
               "(per map). The region of a map is its top "
               f"{fraction:.0%} of pixels; masking runs the model once more on the masked copies.")


    (gc01,), (cf01,) = render.normalize([gradcam], "per_map"), render.normalize([counter], "per_map")
    views.faint_notice({"Grad-CAM": gradcam, "The counterfactual map": counter})
    cols = st.columns(4)
    cols[0].image(render.overlay(shown, gc01, alpha), caption="Grad-CAM: evidence for", width="stretch")
    cols[1].image(seen[0], caption="Grad-CAM region masked (what the model saw)", width="stretch")
    cols[2].image(render.overlay(shown, cf01, alpha), caption="Counterfactual: evidence against", width="stretch")
    cols[3].image(seen[1], caption="Counterfactual region masked (what the model saw)", width="stretch")

    y = float(logits[cls])
    moves = {name: float(masked[i, cls]) - y for i, name in enumerate(regions)}
    claims = {"Grad-CAM": ("lower", moves["Grad-CAM"] < 0), "Counterfactual": ("raise", moves["Counterfactual"] > 0)}
    fig = go.Figure(go.Bar(x=["original", "Grad-CAM region masked", "Counterfactual region masked"],
                           y=[y, masked[0, cls], masked[1, cls]], marker_color=["#888", "#d62728", "#1f77b4"],
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(height=300, margin=dict(l=0, r=0, t=30, b=0), title=f"Logit of {names[cls]}")
    st.plotly_chart(fig, key="cf_scores")
    lines = []
    for name, (claim, held) in claims.items():
        region = regions[name]
        if not region.any():
            lines.append(f"- {name}: the map is all zero, so it claims no region.")
            continue
        verdict = "held" if held else "did **not** hold"
        lines.append(f"- {name} claims that masking its region would **{claim}** the score: it moved "
                     f"{moves[name]:+.3f} (logit {y:.3f} → {y + moves[name]:.3f}); the claim {verdict}.")
    st.markdown("\n".join(lines))

    pair = np.stack([gradcam, counter])
    views.downloads("cf_dl", "counterfactual",
                    [(f"Grad-CAM: evidence for {names[cls]}", render.overlay(shown, gc01, alpha)),
                     ("Grad-CAM region masked", seen[0]),
                     (f"Counterfactual: evidence against {names[cls]}", render.overlay(shown, cf01, alpha)),
                     ("Counterfactual region masked", seen[1])], pair,
                    views.settings_of(sel, loaded, layer=layer, class_index=cls, class_name=names[cls],
                                      normalisation="per_map", region_fraction=fraction, baseline=baseline,
                                      logit=y, logit_gradcam_region_masked=y + moves["Grad-CAM"],
                                      logit_counterfactual_region_masked=y + moves["Counterfactual"]),
                    what="Grad-CAM and counterfactual", array_what="Grad-CAM and counterfactual maps", image=shown)

    # ----------------------------------------------------------------------------- contrastive
    st.subheader("Why A rather than B?")
    a, b = st.columns(2)
    class_a = views.class_picker(names, probs, f"cf_a_{model_id}_{digest}", "A", top[0], a)
    class_b = views.class_picker(names, probs, f"cf_b_{model_id}_{digest}", "B", top[1], b)
    if class_a == class_b:
        st.info("Pick two different classes.")
        return
    ab = cache.explanation(model_id, digest, layer, "gradcam", class_a, shown, versus=class_b)
    ba = cache.explanation(model_id, digest, layer, "gradcam", class_b, shown, versus=class_a)
    ab01, ba01 = render.normalize([ab["attribution"], ba["attribution"]], "joint")
    cols = st.columns(3)
    cols[0].image(shown, caption="Image", width="stretch")
    cols[1].image(render.overlay(shown, ab01, alpha), caption=f"{names[class_a]} rather than {names[class_b]}",
                  width="stretch")
    cols[2].image(render.overlay(shown, ba01, alpha), caption=f"{names[class_b]} rather than {names[class_a]}",
                  width="stretch")
    st.caption(f"Grad-CAM of y^A − y^B: the regions that raise {text.plain(names[class_a])}'s logit more than "
               f"{text.plain(names[class_b])}'s (margin {ab['score']:+.3f}). Both maps on one scale (joint normalisation).")
    views.downloads("cf_ab_dl", "contrast",
                    [(f"{names[class_a]} rather than {names[class_b]}", render.overlay(shown, ab01, alpha)),
                     (f"{names[class_b]} rather than {names[class_a]}", render.overlay(shown, ba01, alpha))],
                    np.stack([ab["attribution"], ba["attribution"]]),
                    views.settings_of(sel, loaded, layer=layer, class_a=names[class_a], class_b=names[class_b],
                                      target="logit A - logit B", margin=ab["score"], normalisation="joint"),
                    what="Contrast maps", image=shown)


counterfactual()
