"""Explore: one model, one image (from the sidebar), a class and a layer; the paper's four maps
(Grad-CAM, the counterfactual map, Guided Backprop, Guided Grad-CAM) at once, and any method of
the registry in detail. Only the first view of an image runs the model; switching class, a
gradient method, a layer already seen, opacity or colour map reuses it; forward-heavy methods
show their cost and run when asked, with a progress bar.

Everything under the title is one fragment: a change of layer, class, method, opacity or colour
map reruns it alone (not the sidebar, the navigation or the model lookup), and its pictures are
encoded once per setting (``cache.map_png``), so a rerun sends only the pictures that changed; its
charts are drawn last, into places kept for them, so that the maps never wait for Plotly."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

import explainers
from explainers import render
from ui import cache, prefs, routing, selection, text, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

PAPER = explainers.method_names(tag=explainers.PAPER)  # the paper's figure 1, in order
TITLES = {m: views.method_title(m) for m in PAPER}
# one plain sentence under each of the four maps: what it shows (the paper's reading of it)
SAYS = {
    "gradcam": "Where the evidence for {c} lies: the regions whose features raise its score.",
    "counterfactual": "What speaks against {c}: the regions whose features lower its score (hide them and "
                      "the score goes up).",
    "guided_backprop": "The fine edges and textures the output is sensitive to, at pixel resolution; much "
                       "the same whichever class you pick.",
    "guided_gradcam": "Guided Backprop's detail kept only where Grad-CAM finds {c}: sharp and specific to "
                      "the class.",
}


@st.cache_data(max_entries=64, show_spinner=False)
def predictions_figure(model_id: str, image_digest: str, names: tuple, values: tuple) -> go.Figure:
    """The top-5 bar chart (built once per model and image, not on every change of class)."""
    fig = go.Figure(go.Bar(x=values[::-1], y=names[::-1], orientation="h",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(height=230, margin=dict(l=0, r=0, t=24, b=0), title="Top predictions",
                      xaxis=dict(tickformat=".0%", range=[0, 1]))
    return fig


@st.fragment
def explore(sel: selection.Selection, loaded) -> None:
    model_id, shown, digest = sel.model_id, sel.image, sel.digest
    # keyed by model (and below by model and image): a new model starts at its default layer, a
    # new image at its own top-1 class, instead of keeping the previous one's choice
    layer = views.layer_picker(model_id, "explore_layer")

    probs = cache.probabilities(model_id, digest, layer, shown)
    top = np.argsort(-probs)[:5]

    col_pred, col_ctrl = st.columns([1, 1])
    with col_pred:  # the top-5 chart, drawn at the end
        predictions = st.empty()
    with col_ctrl:
        class_index = views.class_picker(loaded.categories, probs, f"explore_class_{model_id}_{digest}",
                                         "Class to explain", pref=views.image_class_pref(model_id, digest))
        alpha = views.opacity_slider("explore_alpha")
        cmap = views.colormap_picker("explore_cmap")
        offered = explainers.method_names(model=loaded.model)  # LeGrad for models with attention
        method = st.selectbox("Method in detail (heatmap and downloads)", offered, format_func=views.method_title,
                              key=prefs.bind("explore_method", "method", "gradcam", offered))

    maps = {m: cache.explanation(model_id, digest, layer, m, class_index, shown) for m in PAPER}
    st.caption(f"Explaining **{text.plain(loaded.categories[class_index])}** (logit {maps['gradcam']['score']:.3f}) "
               f"at layer `{layer}`. Each map normalised to its own maximum (per map).")
    columns = st.columns(5)
    columns[0].image(cache.image_png(digest, shown), caption="Image", width="stretch")
    # the Grad-CAM maps first (a backward through the head only), then the pixel-space maps
    pictures = {m: cache.map_png(model_id, digest, layer, m, class_index, alpha, cmap, shown) for m in PAPER}
    name = loaded.categories[class_index]
    columns[0].caption("What the model was given: the image resized and cropped once.")
    for col, m in zip(columns[1:], PAPER):
        col.image(pictures[m], caption=TITLES[m], width="stretch")
        col.caption(SAYS[m].format(c=f"*{text.plain(name)}*"))  # a class name as written, never Markdown

    views.faint_notice({TITLES[m]: maps[m]["layer_map"] for m in ("gradcam", "counterfactual")})

    later = _in_detail(sel, loaded, layer, method, class_index, maps, pictures, alpha, cmap)
    # the charts last: the maps reach the browser before Plotly's JavaScript (0.9 s of the first page)
    predictions.plotly_chart(predictions_figure(model_id, digest, tuple(loaded.categories[i] for i in top),
                                                tuple(float(probs[i]) for i in top)), key="explore_predictions")
    if later is not None:
        slot, figure = later
        slot.plotly_chart(figure, key="explore_layer_map")


def _in_detail(sel, loaded, layer, method, class_index, maps, pictures, alpha, cmap):
    """The chosen method in detail (its map, a place for its heatmap, the downloads); returns
    (the heatmap's place, its figure), or None while a forward-heavy method waits to be run."""
    model_id, shown, digest = sel.model_id, sel.image, sel.digest
    st.subheader(f"In detail: {views.method_title(method)}")
    views.method_note(method)
    if method in maps:
        chosen = maps[method]
    else:
        chosen = views.maps_on_demand(model_id, digest, layer, [(method, class_index)], shown, "explore_heavy")[
            (method, class_index)]
        if chosen is None:
            return None
        if cache.method_cost(model_id, digest, layer, method, shown).heavy:
            pictures[method] = render.picture(shown, chosen["attribution"], alpha, cmap)
        else:
            pictures[method] = cache.map_png(model_id, digest, layer, method, class_index, alpha, cmap, shown)
        st.image(pictures[method], caption=f"{views.method_title(method)} of {loaded.categories[class_index]}",
                 width=320)
        if chosen["layer_map"] is not None:
            views.faint_notice({views.method_title(method): chosen["layer_map"]})
    title = views.method_title(method)
    if chosen["layer_map"] is not None and chosen["attribution"].ndim == 2:
        z, what = chosen["layer_map"], "at layer resolution"
    elif chosen["attribution"].ndim == 3:  # pixel maps: the magnitude summed over colour channels
        z, what = np.abs(chosen["attribution"]).sum(axis=0), "|attribution| summed over channels"
    else:  # a map at input resolution without a layer (occlusion)
        z, what = chosen["attribution"], "at input resolution"
    slot = st.empty()
    settings = views.settings_of(sel, loaded, layer=layer, method=method, class_index=class_index,
                                 class_name=loaded.categories[class_index], score=chosen["score"],
                                 normalisation="per_map", alpha=alpha, cmap=cmap)
    views.downloads("dl", method, pictures[method], chosen["attribution"], settings,
                    what=f"{title} of {loaded.categories[class_index]}", image=shown,
                    layer_map=chosen["layer_map"] if chosen["attribution"].ndim == 2 else None, cmap=cmap)
    return slot, views.heatmap(z, f"{title} {what} ({z.shape[0]}x{z.shape[1]}, unnormalised)",
                               colorscale=render.colorscale(cmap))  # the overlay's colours


st.title("Explore")
sel = selection.current()
explore(sel, cache.load_model(sel.model_id))
