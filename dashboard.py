"""Grad-CAM Studio: the Streamlit entry point. Routing and the shared sidebar only; no logic."""
import streamlit as st

st.set_page_config(page_title="Grad-CAM Studio", layout="wide")

pages = [
    st.Page("pages/explore.py", title="Explore", default=True),
    st.Page("pages/model_zoo.py", title="Model zoo"),
]
with st.sidebar:
    st.markdown("**Grad-CAM Studio**  \nwhere convolutional networks look, and why")
st.navigation(pages).run()
