"""Compare: one image as a grid over methods, layers, classes or models, with the normalisation
named on screen; and two models side by side with the agreement between their maps. The grid and the
two-model comparison are fragments: a widget of one reruns that one alone."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

import explainers
from explainers import agreement, render
from ui import cache, routing, selection, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Compare")
sel = selection.current()
model_id, shown, digest = sel.model_id, sel.image, sel.digest
loaded = cache.load_model(model_id)
names = loaded.categories

c1, c2, c3 = st.columns([2, 2, 1])
mode = c1.radio("Grid over", ["Methods", "Layers", "Classes", "Models"], horizontal=True, key="compare_mode")
with c2:
    norm = views.normalisation_picker("compare_norm", default="joint")
alpha = views.opacity_slider("compare_alpha", c3, "Opacity")

probs = cache.probabilities(model_id, digest, loaded.default_layer, shown)
top = [int(i) for i in np.argsort(-probs)]


def class_picker(key: str, label: str = "Class") -> int:
    return views.class_picker(names, probs, f"{key}_{model_id}_{digest}", label,
                              pref=views.image_class_pref(model_id, digest))


def layer_picker(key: str) -> str:
    return views.layer_picker(model_id, key)


@st.fragment
def grid() -> None:
    """The grid: its own widgets rerun it alone (not the sidebar, the page's top row or the two-model
    comparison)."""
    cells = []  # (title, base image, map at input resolution or a pixel attribution, kind)
    if mode == "Methods":
        a, b = st.columns(2)
        with a:
            layer = layer_picker("compare_m_layer")
        with b:
            cls = class_picker("compare_m_class")
        chosen = st.multiselect("Methods (every method of the registry; forward-heavy ones run when asked)",
                                explainers.method_names(model=loaded.model),
                                default=explainers.method_names(tag=explainers.PAPER),
                                format_func=views.method_title, key="compare_m_methods")
        got = views.maps_on_demand(model_id, digest, layer, [(m, cls) for m in chosen], shown, "compare_heavy")
        for method in chosen:
            e = got[(method, cls)]
            if e is not None:
                kind = "pixels" if e["attribution"].ndim == 3 else "cam"
                cells.append((views.method_title(method), shown, e["attribution"], kind))
        blind = [views.method_title(m) for m in chosen if not explainers.get_method(m).class_discriminative]
        if blind:
            st.caption(f"Not class-discriminative: {', '.join(blind)} (the same map whatever the class).")
        subject = f"{names[cls]} at layer `{layer}`"
    elif mode == "Layers":
        options = [n for n, _ in cache.layers(model_id)]
        a, b = st.columns(2)
        with a:
            chosen = st.multiselect("Layers", options, default=cache.stage_layers(model_id),
                                    key=f"compare_l_layers_{model_id}", max_selections=6)
        with b:
            cls = class_picker("compare_l_class")
        for i, layer in enumerate(chosen):
            e = cache.explanation(model_id, digest, layer, "gradcam", cls, shown)
            cells.append((f"{layer} ({e['layer_map'].shape[0]}x{e['layer_map'].shape[1]})", shown, e["attribution"], "cam"))
        subject = f"Grad-CAM of {names[cls]}, one forward pass per layer"
    elif mode == "Classes":
        chosen = st.multiselect("Classes", list(range(len(names))), default=top[:4],
                                format_func=lambda i: f"{names[i]} ({probs[i]:.1%})",
                                key=f"compare_c_classes_{model_id}_{digest}", max_selections=8)
        layer = layer_picker("compare_c_layer")
        for cls in chosen:
            e = cache.explanation(model_id, digest, layer, "gradcam", cls, shown)
            cells.append((f"{names[cls]} (logit {e['score']:.2f})", shown, e["attribution"], "cam"))
        subject = f"Grad-CAM at layer `{layer}`, one forward pass for every class"
    else:
        peers = cache.compatible_models(model_id)
        chosen = st.multiselect("Models (those sharing this model's classes)", peers, default=peers[:4],
                                key=f"compare_models_{model_id}", max_selections=6)
        cls = class_picker("compare_mo_class")
        for other in chosen:
            view = selection.view_of(other, sel)
            other_loaded = cache.load_model(other)
            d = cache.digest(view)
            e = cache.explanation(other, d, other_loaded.default_layer, "gradcam", cls, view)
            p = cache.probabilities(other, d, other_loaded.default_layer, view)
            cells.append((f"{other} ({names[int(np.argmax(p))]} {p.max():.0%})", view, e["attribution"], "cam"))
        subject = f"Grad-CAM of {names[cls]}, each model at its default layer"

    if not cells:
        st.info("Pick at least one item to compare.")
        return

    cams = [i for i, c in enumerate(cells) if c[3] == "cam"]
    pix = [i for i, c in enumerate(cells) if c[3] == "pixels"]
    # joint scaling compares like with like: one method's maps (over layers, classes, models).
    # Across methods the values are in other units (Score-CAM's against Grad-CAM's), so there each
    # method's map keeps its own scale
    scaled = {}
    groups = [[i] for i in cams] if mode == "Methods" else [cams]
    for group in groups:
        scaled.update(zip(group, render.normalize([cells[i][2] for i in group], norm)))
    views.faint_notice({cells[i][0]: cells[i][2] for i in cams}, norm)
    pix_scale = None
    if norm == "joint" and pix:
        pix_scale = max(3.0 * float(np.std(cells[i][2])) for i in pix) or None
    pictures = []
    for i, (title, base, attribution, kind) in enumerate(cells):
        if kind == "cam":
            pictures.append(render.overlay(base, scaled[i], alpha, "jet"))
        else:
            pictures.append(render.pixel_image(attribution, pix_scale))
    across = (" Joint scaling applies across one method's maps: the methods here each keep their own scale, "
              "since their values are in different units." if mode == "Methods" and norm == "joint" else "")
    st.caption(f"{mode}: {subject}. {views.NORMALISATION_TEXT[norm]}{across}"
               + (" Pixel maps (Guided Backprop, Guided Grad-CAM, gradients) share their own signed scale."
                  if pix and norm == "joint" else " Pixel maps are each scaled to 3 standard deviations."
                  if pix else ""))
    panels = [("The image, as the model sees it", shown), *zip([c[0] for c in cells], pictures)]
    per_row = min(len(panels), 5)
    for row in range(0, len(panels), per_row):
        for col, (title, picture) in zip(st.columns(per_row), panels[row:row + per_row]):
            col.image(picture, caption=title, width="stretch")

    grid_settings = views.settings_of(sel, loaded, grid=mode.lower(), items=[c[0] for c in cells],
                                      subject=subject, normalisation=norm, alpha=alpha)
    arrays = {f"{i}_{title.split(' (')[0]}": cell for i, (title, _, cell, _) in enumerate(cells)}
    views.downloads("compare_dl", f"compare_{mode.lower()}", [(c[0], p) for c, p in zip(cells, pictures)], arrays,
                    grid_settings, what=f"Grid over {mode.lower()}", array_what="Maps", image=shown)



# ----------------------------------------------------------------------------- two models
@st.fragment
def two_models() -> None:
    """Two models side by side: its widgets rerun it alone."""
    st.subheader("Two models, one image, one class")
    peers = [m for m in cache.compatible_models(model_id) if m != model_id]
    if not peers:
        st.info("No other model with this model's classes has its weights here; the shapes models "
                "can always be compared with each other.")
        return
    a, b, c = st.columns(3)
    other = a.selectbox("Second model", peers, key=f"compare_pair_model_{model_id}")
    with b:
        pair_cls = class_picker("compare_pair_class", "Class for both")
    fraction = c.slider("Top region (% of pixels)", 5, 50, 15, 5, key="compare_pair_fraction") / 100

    results = []
    for m in (model_id, other):
        view = selection.view_of(m, sel)
        m_loaded = cache.load_model(m)
        d = cache.digest(view)
        p = cache.probabilities(m, d, m_loaded.default_layer, view)
        e = cache.explanation(m, d, m_loaded.default_layer, "gradcam", pair_cls, view)
        results.append((m, view, p, e))

    maps_joint = render.normalize([r[3]["attribution"] for r in results], "joint")
    pair_pictures = [render.overlay(r[1], m01, alpha, "jet") for r, m01 in zip(results, maps_joint)]
    cols = st.columns(2)
    for col, (m, view, p, e), picture in zip(cols, results, pair_pictures):
        order = np.argsort(-p)[:3]
        col.image(picture, caption=f"{m}: Grad-CAM of {names[pair_cls]}", width="stretch")
        bars = go.Figure(go.Bar(x=p[order][::-1], y=[names[i] for i in order][::-1], orientation="h",
                                hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
        bars.update_layout(height=160, margin=dict(l=0, r=0, t=24, b=0), title=f"{m} predicts",
                           xaxis=dict(tickformat=".0%", range=[0, 1]))
        col.plotly_chart(bars, key=f"compare_pair_pred_{m}")

    first, second = results[0][3]["attribution"], results[1][3]["attribution"]
    if first.shape == second.shape:
        rho = agreement.rank_correlation(first, second)
        overlap = agreement.top_region_iou(first, second, fraction)
    else:
        rho = overlap = float("nan")
        st.warning("The two models see the image at different sizes; their maps are not compared pixel by pixel.")
    m1, m2, m3 = st.columns(3)
    m1.metric("Rank correlation (Spearman)", "n/a" if np.isnan(rho) else f"{rho:.3f}")
    m2.metric(f"IoU of top-{fraction:.0%} regions", "n/a" if np.isnan(overlap) else f"{overlap:.3f}")
    same = int(np.argmax(results[0][2])) == int(np.argmax(results[1][2]))
    m3.metric("Same top-1 prediction", "yes" if same else "no")
    st.caption("Both maps on one scale (joint normalisation). Rank correlation compares the two maps' "
               "orderings of all pixels; the IoU compares the pixels each map ranks in its top "
               f"{fraction:.0%} (pixels with a zero map value never count). n/a: a map is all zero.")
    pair_settings = views.settings_of(sel, loaded, second_model=other, class_index=pair_cls,
                                      class_name=names[pair_cls], normalisation="joint",
                                      rank_correlation=rho, top_region_fraction=fraction, top_region_iou=overlap)
    views.downloads("compare_pair_dl", "compare_two_models",
                    [(f"{m} ({names[pair_cls]})", p) for m, p in zip((model_id, other), pair_pictures)],
                    np.stack([first, second if second.shape == first.shape else render.resize_map(second, first.shape)]),
                    pair_settings, what="Two models' maps", image=shown)



grid()
two_models()
