"""The model zoo: every registered model, its default layer and whether its weights are here."""
import streamlit as st

import model_zoo

st.title("Model zoo")
st.caption("Every model the studio can explain. The shapes-world models ship with the project "
           "and work offline; ImageNet weights come through torchvision's cache, and a model whose "
           "weights are missing says where to put them.")

rows = []
for model_id in model_zoo.list_models():
    spec = model_zoo.get_spec(model_id)
    present = model_zoo.weights_available(model_id)
    rows.append({
        "id": model_id,
        "model": spec.title,
        "family": spec.family,
        "classes": spec.num_classes,
        "default layer": spec.default_layer,
        "input": f"{spec.preprocess.crop}x{spec.preprocess.crop}",
        "weights": "present" if present else "missing",
        "about": spec.description,
    })
st.markdown("\n".join(f"- **{r['id']}**: {r['about'] or r['model']}" for r in rows))
st.dataframe(rows, hide_index=True, width="stretch", key="zoo_table")

missing = [r["id"] for r in rows if r["weights"] == "missing"]
if missing:
    with st.expander(f"How to get the missing weights ({len(missing)})"):
        for model_id in missing:
            spec = model_zoo.get_spec(model_id)
            st.markdown(f"- **{model_id}**: download `{spec.weights_url}` and save it as "
                        f"`{spec.weights_file()}` (or run the app once with internet access).")
