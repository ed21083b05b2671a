"""The only Streamlit-aware code besides pages/: cached loaders, widgets, views."""
