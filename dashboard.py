"""Grad-CAM Studio: the Streamlit entry point. Routing and the shared sidebar only; no logic."""
import streamlit as st

from ui import prefs

st.set_page_config(page_title="Grad-CAM Studio", layout="wide")
prefs.absorb()  # choices the user just changed reach every widget bound to them, this run

if "study" in st.query_params:  # a participant's link: that study and nothing else (no model stack)
    st.navigation([st.Page("pages/participate.py", title="Study", default=True)], position="hidden").run()
    st.stop()

from ui import selection  # noqa: E402  (the explaining pages' sidebar: imports the model stack)

explaining = [
    st.Page("pages/explore.py", title="Explore", default=True),
    st.Page("pages/compare.py", title="Compare"),
    st.Page("pages/counterfactual.py", title="Counterfactual"),
    st.Page("pages/how_it_works.py", title="How it works"),
    st.Page("pages/evaluate.py", title="Evaluate"),
]
beyond = [  # detectors, segmenters, models that take words, agents: their own model and scene pickers
    st.Page("pages/detect.py", title="Detect"),
    st.Page("pages/segment.py", title="Segment"),
    st.Page("pages/captioning.py", title="Captioning"),
    st.Page("pages/vqa.py", title="VQA"),
    st.Page("pages/text_prompt.py", title="Text prompt"),
    st.Page("pages/agents.py", title="Agents"),
]
diagnosing = [  # the sidebar's model (and image) too
    st.Page("pages/mistakes.py", title="Mistakes"),
    st.Page("pages/adversarial.py", title="Adversarial"),
    st.Page("pages/neurons.py", title="Neurons"),
]
page = st.navigation({
    "Explain": explaining + beyond,
    "Diagnose": [*diagnosing, st.Page("pages/bias.py", title="Bias")],
    "Models": [st.Page("pages/model_zoo.py", title="Model zoo")],
    "Studies": [st.Page("pages/participate.py", title="Take part"),
                st.Page("pages/study_designer.py", title="Design a study"),
                st.Page("pages/study_results.py", title="Study results")],
}, position="top")  # the sidebar keeps the model and image pickers, in view on a laptop screen
with st.sidebar:
    st.markdown("**Grad-CAM Studio**  \nwhere convolutional networks look, and why")
if page.url_path in {p.url_path for p in explaining + diagnosing}:
    selection.sidebar()  # model and image, shared by every explaining page
page.run()
