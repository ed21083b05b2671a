"""Explore: pick a model, an image, a class and a layer; see Grad-CAM, Guided Backprop, Guided
Grad-CAM and the counterfactual map at once. Only the first view of an image runs the model;
switching class, method, layer choice already seen, opacity or colour map reuses that work."""
import io
import json

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from explainers import images, render
from ui import cache

st.title("Explore")

ready, missing = cache.available_models()
model_id = st.selectbox("Model", ready, key="explore_model",
                        help="Shapes-world models ship with the studio and work offline.")
if missing:
    st.caption(f"{len(missing)} ImageNet models need their weights first (see the Model zoo page): "
               + ", ".join(missing))
loaded = cache.load_model(model_id)

source = st.radio("Image", ["Gallery", "Upload"], horizontal=True, key="explore_source")
image = None
if source == "Gallery":
    items = cache.gallery()
    names = [name for name, _ in items]
    pick = st.selectbox("Sample scene", names, key="explore_gallery")
    image = items[names.index(pick)][1].image
else:
    upload = st.file_uploader("An image (PNG, JPEG, ...)", key="explore_upload")
    if upload is not None:
        try:
            image = np.asarray(images.open_image(upload.getvalue(), name=upload.name))
        except images.ImageError as err:
            st.error(str(err))
if image is None:
    st.info("Choose a sample scene or upload an image.")
    st.stop()

shown = np.asarray(loaded.preprocess.display(Image.fromarray(image)))
digest = cache.digest(shown)
layer_options = cache.layers(model_id)
layer_names = [name for name, _ in layer_options]
# keyed by model (and below by model and image): a new model starts at its default layer, a new
# image at its own top-1 class, instead of keeping the previous one's choice
layer = st.selectbox("Layer", layer_names, index=layer_names.index(loaded.default_layer),
                     format_func=dict(layer_options).get, key=f"explore_layer_{model_id}")

probs = cache.probabilities(model_id, digest, layer, shown)
top = np.argsort(-probs)[:5]

col_pred, col_ctrl = st.columns([1, 1])
with col_pred:
    fig = go.Figure(go.Bar(x=probs[top][::-1], y=[loaded.categories[i] for i in top][::-1],
                           orientation="h", hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(height=230, margin=dict(l=0, r=0, t=24, b=0), title="Top predictions",
                      xaxis=dict(tickformat=".0%", range=[0, 1]))
    st.plotly_chart(fig, key="explore_predictions")
with col_ctrl:
    class_index = st.selectbox("Class to explain", list(range(len(loaded.categories))),
                               index=int(top[0]), format_func=lambda i: f"{loaded.categories[i]} ({probs[i]:.1%})",
                               key=f"explore_class_{model_id}_{digest}")
    alpha = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="explore_alpha")
    cmap = st.selectbox("Colour map", render.COLORMAPS, key="explore_cmap")

maps = {m: cache.explanation(model_id, digest, layer, m, class_index, shown)
        for m in ("gradcam", "counterfactual", "guided_backprop", "guided_gradcam")}
(gc,) = render.normalize([maps["gradcam"]["attribution"]], "per_map")
(cf,) = render.normalize([maps["counterfactual"]["attribution"]], "per_map")
gradcam_png = render.overlay(shown, gc, alpha, cmap)
pictures = {
    "Image": shown,
    "Grad-CAM": gradcam_png,
    "Counterfactual": render.overlay(shown, cf, alpha, cmap),
    "Guided Backprop": render.pixel_image(maps["guided_backprop"]["attribution"]),
    "Guided Grad-CAM": render.pixel_image(maps["guided_gradcam"]["attribution"]),
}
st.caption(f"Explaining **{loaded.categories[class_index]}** (logit {maps['gradcam']['score']:.3f}) "
           f"at layer `{layer}`. Each map normalised to its own maximum (per map).")
for col, (title, picture) in zip(st.columns(len(pictures)), pictures.items()):
    col.image(picture, caption=title, width="stretch")

layer_map = maps["gradcam"]["layer_map"]
heat = go.Figure(go.Heatmap(z=layer_map, colorscale="Jet",
                            hovertemplate="row %{y}, col %{x}: %{z:.4f}<extra></extra>"))
heat.update_layout(height=360, width=420, margin=dict(l=0, r=0, t=24, b=0),
                   yaxis=dict(autorange="reversed", scaleanchor="x", constrain="domain"),
                   xaxis=dict(constrain="domain"),
                   title=f"Grad-CAM at layer resolution ({layer_map.shape[0]}x{layer_map.shape[1]}, unnormalised)")
st.plotly_chart(heat, key="explore_layer_map")

settings = {"model": model_id, "weights": loaded.weights, "weights_sha256": loaded.sha256,
            "layer": layer, "class_index": class_index, "class_name": loaded.categories[class_index],
            "score": maps["gradcam"]["score"], "normalisation": "per_map", "alpha": alpha, "cmap": cmap}
png = io.BytesIO()
gradcam_png.save(png, format="PNG")
npy = io.BytesIO()
np.save(npy, maps["gradcam"]["attribution"])
d1, d2, d3 = st.columns(3)
d1.download_button("Grad-CAM overlay (PNG)", png.getvalue(), "gradcam.png", "image/png", key="dl_png")
d2.download_button("Grad-CAM map (.npy)", npy.getvalue(), "gradcam.npy", key="dl_npy")
d3.download_button("Settings (JSON)", json.dumps(settings, indent=2), "settings.json", "application/json",
                   key="dl_json")
