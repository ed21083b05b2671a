"""The model zoo: every registered model, its default layer and whether its weights are here."""
import streamlit as st

import model_zoo
from ui import routing, zoo

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Model zoo")
st.caption("Every model the studio can explain. The shapes-world models ship with the project "
           "and work offline; ImageNet weights download once into torchvision's cache (the buttons below, "
           "or the sidebar), and a download that cannot happen says where to put the file by hand.")

rows = []
for model_id in zoo.listed():
    spec = model_zoo.get_spec(model_id)
    present = model_zoo.weights_available(model_id)
    rows.append({
        "id": model_id,
        "model": spec.title,
        "family": spec.family,
        "task": spec.task,
        "classes": spec.num_classes,
        "default layer": spec.default_layer or "found automatically",
        "input": f"{spec.preprocess.crop}x{spec.preprocess.crop}",
        "weights": "untrained (declared)" if spec.untrained else "present" if present else "missing",
        "about": spec.description,
    })
st.markdown("\n".join(f"- **{r['id']}**: {r['about'] or r['model']}" for r in rows))
# the descriptions are in full in the list above; in the table they were cut to the column's width
st.dataframe([{k: v for k, v in r.items() if k != "about"} for r in rows], hide_index=True, width="stretch",
             key="zoo_table")

zoo.plugin_notices()
missing = [r["id"] for r in rows if r["weights"] == "missing"]
if missing:
    st.subheader(f"Weights not here yet ({len(missing)})")
    for model_id in missing:
        left, right = st.columns([1, 2])
        left.markdown(f"**{model_id}**")
        zoo.weights_button(model_id, f"zoo_download_{model_id}", right)

st.subheader("Your own model")
st.caption("Three routes (README: Explain your own model): upload a checkpoint of a registered "
           "architecture here; register an architecture of your own from code (a plugin named in "
           "STUDIO_MODELS, or a package's gradcam_studio.models entry point); or, with timm installed, "
           "any timm:<name>. An upload is this session's alone until the app restarts; an admin (the admin "
           "secret) can share one with every visitor, kept under STUDIO_MODELS_DIR (default data/models/).")
zoo.upload_form()
zoo.timm_form()
