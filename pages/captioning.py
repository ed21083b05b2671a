"""Captioning: what a captioner without attention looks at for each word it writes, and for any
caption you type (Grad-CAM of the caption's log-probability under teacher forcing, the paper's
section 8)."""
import streamlit as st

import explainers
from explainers import render
from model_zoo.shapes import language
from ui import cache, language_views as lv, prefs, routing, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Captioning")
model_id, loaded, scene_name, image = lv.model_and_image("caption", "caption")
if model_id is None:
    st.stop()
digest = cache.digest(image)
layer = loaded.default_layer

a, b, c = st.columns(3)
beam = a.slider("Beam width (1: greedy)", 1, 5, key=prefs.bind("caption_beam", "caption:beam", 1))
method = b.radio("Method", ["gradcam", "guided_gradcam"], format_func=views.method_title, horizontal=True,
                 key=prefs.bind("caption_method", "caption:method", "gradcam"))
alpha = views.opacity_slider("caption_alpha", c)

generated = cache.generate_caption(model_id, digest, image, beam)
caption = language.decode_caption(generated)
st.markdown(f"**The model's caption:** {caption or '(empty)'}")
typed = st.text_input("Or explain a caption of your own", key="caption_typed", max_chars=language.MAX_CHARS,
                      help=f"At most {language.MAX_CAPTION_WORDS} words of the model's vocabulary.",
                      placeholder="a large red circle left of a small blue square")
text = typed.strip() or caption
tokens = lv.tokens_or_stop(language.encode_caption, text, "Cannot explain this caption")
words = language.split(text)
targets = tuple([explainers.CaptionLogProb(tokens, name=text)]
                + [explainers.WordLogProb(tokens, i, name=w) for i, w in enumerate(words)])
maps = cache.token_maps(model_id, digest, layer, method, (tokens[:-1],), targets, image)
whole, per_word = maps[0], maps[1:]
st.caption(f"log p(caption | image) = {whole['score']:.2f} (teacher forcing, {len(words)} words and the end); "
           f"every map from one forward pass at layer `{layer}`, each normalised to its own maximum.")


def picture(attribution):
    return render.picture(image, attribution, alpha)


st.markdown("**A map per word** (pick a word below to enlarge it)")
for row in range(0, len(words), 6):
    cols = st.columns(6)
    for col, i in zip(cols, range(row, min(row + 6, len(words)))):
        col.image(picture(per_word[i]["attribution"]), caption=f"{words[i]} (log p {per_word[i]['score']:.2f})",
                  width="stretch")
options = ["the whole caption", *[f"{i + 1}. {w}" for i, w in enumerate(words)]]
chosen = st.radio("Enlarge", options, horizontal=True, key=f"caption_enlarge_{digest}_{text}")
index = options.index(chosen)
big = whole if index == 0 else per_word[index - 1]
left, right = st.columns([1, 1])
left.image(picture(big["attribution"]), caption=f"{views.method_title(method)}: {chosen}", width="stretch")
with right:
    if big["layer_map"] is not None:
        st.plotly_chart(views.heatmap(big["layer_map"], f"Grad-CAM at layer resolution "
                                      f"({big['layer_map'].shape[0]}x{big['layer_map'].shape[1]}, unnormalised)",
                                      height=320), key="caption_heatmap")
settings = {"model": model_id, "weights": loaded.weights, "weights_sha256": loaded.sha256, "image": scene_name,
            "image_digest": digest, "caption": text, "generated_caption": caption, "beam": beam, "method": method,
            "explained": chosen, "score": big["score"], "layer": layer, "normalisation": "per_map"}
views.downloads("caption_dl", "caption", picture(big["attribution"]), big["attribution"], settings,
                what=f"{views.method_title(method)} of {chosen}", image=image)
if typed.strip() and lv.scene_caption(scene_name):
    truth = lv.scene_caption(scene_name)
    st.caption(f"This scene's true caption: {truth}")
