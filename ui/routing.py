"""Every route goes through the entry point's navigation, on the first request after a start too.

Streamlit finds a ``pages/`` folder beside the entry point and, until some session has run
``st.navigation``, serves a deep link such as ``/explore`` by running ``pages/explore.py`` on its
own (the multipage apps of version 1): no sidebar, and no participant rule, so
``/model_zoo?study=CODE`` showed the whole app to a participant. :func:`turn_off_folder_pages`
switches that mode off before the server serves anyone (``ui.launch``); :func:`guard`, the first
call of every page, is the net for a start that did not go through ``ui.launch`` (``streamlit run
dashboard.py``): a page run on its own reruns at once through ``dashboard.py``, whose navigation
then picks the page (or, with ``?study=``, the study alone)."""
from __future__ import annotations

import streamlit as st


def _pages_manager():
    from streamlit.runtime.pages_manager import PagesManager  # Streamlit's own switch (1.67)
    return PagesManager


def turn_off_folder_pages() -> None:
    """Serve no page from the ``pages/`` folder by itself (Streamlit's version-1 multipage mode)."""
    _pages_manager().uses_pages_directory = False


def guard() -> None:
    """Stop a page that Streamlit ran on its own and rerun the app through ``dashboard.py``."""
    manager = _pages_manager()
    if manager.uses_pages_directory:
        manager.uses_pages_directory = False
        st.rerun()
