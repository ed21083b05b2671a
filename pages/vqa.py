"""VQA: ask a question about the image; the model's top answers, and where it looks for any
answer (Grad-CAM of the answer's logit for this question), or for one answer rather than
another ("why yes rather than no")."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

import explainers
from explainers import render
from model_zoo.shapes import language
from ui import cache, language_views as lv, prefs, routing, text, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Visual question answering")
model_id, loaded, scene_name, image = lv.model_and_image("vqa", "vqa")
if model_id is None:
    st.stop()
digest = cache.digest(image)
layer = loaded.default_layer
answers = list(loaded.categories)

described = lv.scene(scene_name)
asked = [q.text for q in language.questions(described)] if described is not None else []
a, b = st.columns([1, 1])
typed = b.text_input("Or type a question", key="vqa_typed", placeholder="what colour is the circle",
                     max_chars=language.MAX_CHARS,
                     help=f"At most {language.MAX_QUESTION_WORDS} words of the model's vocabulary. It replaces the "
                          "picked question; clear it to pick one again.")
picked = a.selectbox("A question about this scene", asked or ["what shape is the red object"], key=f"vqa_q_{digest}",
                     disabled=bool(typed.strip()), help="Greyed out while a typed question is asked.")
tokens = lv.tokens_or_stop(language.encode_question, typed.strip() or picked, "Cannot ask this question")
question = " ".join(language.split(typed.strip() or picked))  # as the model reads it: "what colour is the square"
if typed.strip():
    st.caption(f"Asking your question, not the picked one: *{text.plain(question)}?*")

capture = cache.capture(model_id, digest, layer, image, (tokens,))
logits = capture.output[0].numpy()
probs = np.exp(logits - logits.max())
probs /= probs.sum()
top = [int(i) for i in np.argsort(-probs)[:5]]
left, right = st.columns([1, 1])
with left:
    fig = go.Figure(go.Bar(x=probs[top][::-1], y=[answers[i] for i in top][::-1], orientation="h",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(height=230, margin=dict(l=0, r=0, t=24, b=0), title=f"Q: {question}?",
                      xaxis=dict(tickformat=".0%", range=[0, 1]))
    st.plotly_chart(fig, key="vqa_answers")
    if described is not None:
        truth = {q.text: q.answer for q in language.questions(described)}.get(question)
        if truth is not None:
            st.caption(f"True answer: **{truth}**; the model says **{answers[top[0]]}** ({probs[top[0]]:.0%}).")
with right:
    answer = st.selectbox("Answer to explain", range(len(answers)), index=top[0],
                          format_func=lambda i: f"{answers[i]} ({probs[i]:.1%})", key=f"vqa_answer_{digest}_{question}")
    versus = st.selectbox("... rather than (optional)", [None, *range(len(answers))],
                          format_func=lambda i: "no other answer" if i is None else answers[i],
                          key=f"vqa_versus_{digest}_{question}")
    method = st.radio("Method", ["gradcam", "guided_gradcam"], format_func=views.method_title, horizontal=True,
                      key=prefs.bind("vqa_method", "vqa:method", "gradcam"))
    alpha = views.opacity_slider("vqa_alpha")
if versus == answer:
    st.warning("An answer rather than itself explains nothing: pick another answer to contrast with.")
    st.stop()
target = explainers.Answer(tokens, answer, versus=versus,
                           name=answers[answer] if versus is None else f"{answers[answer]} rather than {answers[versus]}")
(e,) = cache.token_maps(model_id, digest, layer, method, (tokens,), (target,), image)
what = target.name
c1, c2, c3 = st.columns(3)
c1.image(image, caption="Image", width="stretch")
c2.image(render.picture(image, e["attribution"], alpha), caption=f"{views.method_title(method)}: {what}",
         width="stretch")
if e["layer_map"] is not None:
    c3.plotly_chart(views.heatmap(e["layer_map"], f"Grad-CAM at layer resolution ({e['layer_map'].shape[0]}x"
                                  f"{e['layer_map'].shape[1]}, unnormalised)", height=300), key="vqa_heatmap")
st.caption(f"Score explained: {'logit' if versus is None else 'logit difference'} {e['score']:.3f}, "
           f"layer `{layer}`, normalised to its own maximum.")
settings = {"model": model_id, "weights": loaded.weights, "weights_sha256": loaded.sha256, "image": scene_name,
            "image_digest": digest, "question": question, "answer": answers[answer],
            "versus": None if versus is None else answers[versus], "method": method, "score": e["score"],
            "layer": layer, "normalisation": "per_map"}
views.downloads("vqa_dl", "vqa", render.picture(image, e["attribution"], alpha), e["attribution"], settings,
                what=f"{views.method_title(method)} of {what}", image=image)
