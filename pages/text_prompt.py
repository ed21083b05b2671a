"""Text prompt: type a phrase and see where an image-text model finds it (Grad-CAM of the
image-text similarity), its similarity beside the scene's other phrases, what each word adds,
two phrases side by side with "why this phrase rather than that one", and zero-shot
classification with the user's own prompts."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

import explainers
from explainers import render
from explainers import text as T
from model_zoo.shapes import language, phrases
from ui import cache, language_views as lv, prefs, routing, text, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Text prompt")
model_id, loaded, scene_name, image = lv.model_and_image("text", "text")
if model_id is None:
    st.stop()
digest = cache.digest(image)
layer = loaded.default_layer
model = loaded.model
described = lv.scene(scene_name)
own = phrases.scene_phrases(described) if described is not None else list(loaded.categories)

a, b = st.columns([1, 1])
# the typed phrases and prompts outlive a visit to another page (bound to preferences)
typed = b.text_input("Or type a phrase", key=prefs.bind("text_typed", "text:typed", ""),
                     placeholder="the small red circle",
                     max_chars=language.MAX_CHARS,
                     help="It replaces the picked phrase; clear it to pick one again.")
picked = a.selectbox("A phrase about this image", own, key=f"text_pick_{digest}", disabled=bool(typed.strip()),
                     help="Greyed out while a typed phrase is explained.")
phrase = " ".join((typed.strip() or picked).split())
if typed.strip():
    st.caption(f"Explaining your phrase, not the picked one: *{text.plain(phrase)}*")
second = st.text_input("Compare with a second phrase (optional)", key=prefs.bind("text_second", "text:second", ""),
                       placeholder="the large blue square", max_chars=language.MAX_CHARS).strip()
second = " ".join(second.split())
methods = [m for m in explainers.method_names(model=model, classes=False) if not explainers.get_method(m).forward_heavy]
c1, c2, c3 = st.columns([2, 2, 1])
method = c1.selectbox("Method", methods, format_func=views.method_title,
                      key=prefs.bind("text_method", "text:method", "gradcam", methods))
alpha = views.opacity_slider("text_alpha", where=c2)

# every phrase of the page in one packed input: one forward pass, one backward per map
variants = T.word_variants(phrase)
listed = list(dict.fromkeys([phrase, *([second] if second else []), *own, *variants[1:]]))
tokens = lv.tokens_or_stop(model.tokenize, listed, "Cannot read this phrase")
at = {p: i for i, p in enumerate(listed)}
capture = cache.capture(model_id, digest, layer, image, (tokens,))
sims = capture.output[0].detach().numpy()

targets = [explainers.TextSimilarity(tokens, at[phrase], name=phrase)]
if second:
    targets += [explainers.TextSimilarity(tokens, at[second], name=second),
                explainers.TextSimilarity(tokens, at[phrase], versus=at[second], name=f"{phrase} rather than {second}")]
words = phrase.split()
if len(words) > 1:
    targets += [explainers.TextSimilarity(tokens, at[phrase], versus=at[variants[i + 1]], name=f"'{w}' in '{phrase}'")
                for i, w in enumerate(words)]
maps = cache.token_maps(model_id, digest, layer, method, (tokens,), tuple(targets), image)
main = maps[0]

left, right = st.columns([1, 1])
with left:
    shown = list(dict.fromkeys([phrase, *([second] if second else []), *own]))
    fig = go.Figure(go.Bar(x=[sims[at[p]] for p in shown][::-1], y=shown[::-1], orientation="h",
                           marker_color=["#d62728" if p == phrase else "#1f77b4" if p == second else "#9e9e9e"
                                         for p in shown][::-1],
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(height=60 + 26 * len(shown), margin=dict(l=0, r=0, t=28, b=0),
                      title="Image-text similarity (cosine)")
    st.plotly_chart(fig, key="text_sims")
    if described is not None:
        try:
            named = phrases.named_object(described, phrase)
            truth = "true" if phrases.is_true(described, phrase) else "false"
            st.caption(f"In this scene the phrase is **{truth}**"
                       + (f" and names the {described.objects[named].colour} {described.objects[named].name}."
                          if named is not None else "."))
        except (phrases.PhraseError, ValueError):
            pass  # words of the vocabulary outside the grammar: the model still scores them
with right:
    st.image(render.picture(image, main["attribution"], alpha), width="stretch",
             caption=f"{views.method_title(method)}: {phrase} (similarity {sims[at[phrase]]:.3f})")

if len(words) > 1:
    st.subheader("What each word adds")
    contributions = [sims[at[phrase]] - sims[at[v]] for v in variants[1:]]
    st.caption("The phrase's similarity minus that of the phrase without the word (one forward pass for all); "
               "each map is Grad-CAM of that difference: where the word adds similarity.")
    cols = st.columns(min(len(words), 6))
    for i, (w, c, m) in enumerate(zip(words, contributions, maps[-len(words):])):
        cols[i % len(cols)].image(render.picture(image, m["attribution"], alpha), width="stretch",
                                  caption=f"'{w}': {c:+.3f}")

if second:
    st.subheader("Two phrases side by side")
    s1, s2, s3 = st.columns(3)
    s1.image(render.picture(image, maps[0]["attribution"], alpha), width="stretch", caption=f"{phrase}")
    s2.image(render.picture(image, maps[1]["attribution"], alpha), width="stretch", caption=f"{second}")
    s3.image(render.picture(image, maps[2]["attribution"], alpha), width="stretch",
             caption=f"why '{phrase}' rather than '{second}' ({sims[at[phrase]] - sims[at[second]]:+.3f})")
    st.caption("Each map is normalised to its own maximum.")

st.subheader("Zero-shot classification")
default = "\n".join(loaded.categories)
prompts_text = st.text_area("Prompts, one per line", height=150, max_chars=phrases.MAX_PHRASES * 60,
                            key=prefs.bind(f"text_prompts_{model_id}", f"text:prompts:{model_id}", default))
prompts = list(dict.fromkeys(p.strip() for p in prompts_text.splitlines() if p.strip()))
if len(prompts) < 2:
    st.info("Give at least two prompts, one per line.")
    st.stop()
ptokens = lv.tokens_or_stop(model.tokenize, prompts, "Cannot read the prompts")
pcap = cache.capture(model_id, digest, layer, image, (ptokens,))
scale = T.temperature(model)
probs = T.probabilities(model, pcap.output[0].detach().numpy())[0]  # from the kept forward pass
order = np.argsort(-probs)
z1, z2 = st.columns([1, 1])
with z1:
    top = order[:10]
    fig = go.Figure(go.Bar(x=probs[top][::-1], y=[prompts[i] for i in top][::-1], orientation="h",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(height=60 + 26 * len(top), margin=dict(l=0, r=0, t=28, b=0),
                      title=f"Softmax of similarity x {scale:.1f} (the model's temperature)",
                      xaxis=dict(tickformat=".0%", range=[0, 1]))
    st.plotly_chart(fig, key="text_zero_shot")
with z2:
    best = int(order[0])
    (zm,) = cache.token_maps(model_id, digest, layer, method, (ptokens,),
                             (explainers.TextSimilarity(ptokens, best, name=prompts[best]),), image)
    st.image(render.picture(image, zm["attribution"], alpha), width="stretch",
             caption=f"{views.method_title(method)}: {prompts[best]} ({probs[best]:.0%})")

settings = {"model": model_id, "weights": loaded.weights, "weights_sha256": loaded.sha256, "image": scene_name,
            "image_digest": digest, "phrase": phrase, "second_phrase": second or None, "method": method,
            "layer": layer, "similarity": float(sims[at[phrase]]), "normalisation": "per_map"}
views.downloads("text_dl", "text_prompt", render.picture(image, main["attribution"], alpha), main["attribution"],
                settings, what=f"{views.method_title(method)} of '{phrase}'", image=image)
