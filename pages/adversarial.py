"""Adversarial: FGSM or PGD on the sidebar's image, and whether Grad-CAM still finds the original
class's evidence once the prediction is flipped (the paper's section 6.2)."""
import numpy as np
import streamlit as st

from explainers import render
from ui import cache, prefs, routing, selection, text, views
from ui import diagnosis as diag

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Adversarial")
sel = selection.current()
model_id, shown, digest = sel.model_id, sel.image, sel.digest
loaded = cache.load_model(model_id)
names = loaded.categories
st.caption("An adversarial perturbation is a change of at most epsilon grey levels per pixel (L-infinity) "
           "chosen to change the prediction. The paper found that Grad-CAM of the original class still "
           "lies on the object although the model now says something else.")

a, b, c, d = st.columns(4)
layer = views.layer_picker(model_id, "adv_layer", a)
method = b.radio("Attack", ["pgd", "fgsm"], horizontal=True, key=prefs.bind("adv_method", "adv:method", "pgd"),
                 format_func={"pgd": "PGD (iterated)", "fgsm": "FGSM (one step)"}.get)
levels = c.slider("Epsilon (grey levels of 255)", 1, 32, key=prefs.bind("adv_eps", "adv:eps", 8))
steps = int(d.number_input("PGD steps", 1, 100, key=prefs.bind("adv_steps", "adv:steps", 10),
                           disabled=method == "fgsm"))
epsilon = levels / 255
a, b, c = st.columns(3)
step_levels = c.number_input("PGD step size (grey levels; 0: 2.5 x epsilon / steps, as Madry et al.)", 0.0, 32.0,
                             step=0.25, key=prefs.bind("adv_step", "adv:step", 0.0), disabled=method == "fgsm")
step_size = float(step_levels) / 255 if step_levels > 0 and method == "pgd" else None
targeted = a.checkbox("Targeted: push towards a class", key=prefs.bind("adv_targeted", "adv:targeted", False))
probs = cache.probabilities(model_id, digest, layer, shown)
top = [int(i) for i in np.argsort(-probs)]
target = None
if targeted:
    target = views.class_picker(names, probs, f"adv_target_{model_id}_{digest}", "Target class", top[1], b)
    if target == top[0]:
        st.info("The target is already the prediction: pick another class.")
        st.stop()

result = diag.attack(model_id, digest, shown, method, epsilon, steps if method == "pgd" else 1, step_size, target,
                     layer)
if result is None:
    st.stop()
clean, adv = result["clean_label"], result["adversarial_label"]
alpha = 0.5
m = result["maps"]
(oc, oa, aa) = render.normalize([m["original_clean"], m["original_attacked"], m["adversarial_attacked"]], "joint")
delta = result["perturbation"]
amplified = np.clip(delta / (2 * epsilon) + 0.5, 0, 1)

cols = st.columns(3)
cols[0].image(shown, caption=f"Clean: {names[clean]} ({result['clean_probs'][clean]:.1%})", width="stretch")
cols[1].image(result["image"], caption=f"Attacked: {names[adv]} ({result['adversarial_probs'][adv]:.1%})",
              width="stretch")
cols[2].image((amplified * 255).astype(np.uint8), caption=f"Perturbation, amplified (±{levels}/255 → full range)",
              width="stretch")
flipped = adv != clean
if flipped:
    st.success(f"The attack flipped the prediction: **{text.plain(names[clean])}** → **{text.plain(names[adv])}** "
               f"(max change {np.abs(delta).max() * 255:.1f} grey levels"
               + (f", {steps} steps of {result['step_size'] * 255:.2f}" if method == "pgd" else "") + ").")
else:
    st.warning(f"The prediction stayed **{text.plain(names[clean])}** at epsilon {levels}/255: raise epsilon or the steps.")

cols = st.columns(3)
cols[0].image(render.overlay(shown, oc, alpha), caption=f"Grad-CAM of {names[clean]}, clean image", width="stretch")
cols[1].image(render.overlay(result["image"], oa, alpha), caption=f"Grad-CAM of {names[clean]}, attacked image",
              width="stretch")
cols[2].image(render.overlay(result["image"], aa, alpha), caption=f"Grad-CAM of {names[adv]}, attacked image",
              width="stretch")
st.caption(f"Layer `{layer}`; the three maps on one scale (joint normalisation).")

rows = [{"class": names[i], "clean": f"{result['clean_probs'][i]:.1%}",
         "attacked": f"{result['adversarial_probs'][i]:.1%}"}
        for i in sorted(set(top[:3]) | {adv}, key=lambda i: -result["adversarial_probs"][i])]
st.dataframe(rows, hide_index=True, key="adv_table")
views.downloads("adv_dl", "adversarial",
                [("Attacked image", result["image"]), ("Perturbation, amplified", (amplified * 255).astype(np.uint8)),
                 (f"Grad-CAM of {names[clean]}, attacked", render.overlay(result["image"], oa, alpha)),
                 (f"Grad-CAM of {names[adv]}, attacked", render.overlay(result["image"], aa, alpha))],
                {"perturbation": delta, **m},
                views.settings_of(sel, loaded, layer=layer, attack=method, epsilon=epsilon, steps=steps,
                                  target=None if target is None else names[target], clean=names[clean],
                                  attacked=names[adv]),
                what="Attack", array_what="Perturbation and maps", image=shown)
