"""Choices that outlive a widget: the colour map, the opacity, a model's layer, an image's class.

Streamlit forgets a widget's value when a run does not draw it (an upload in progress, another
page); the browser may then show the widget's default while the session still holds the old
value, so widgets and maps disagree. Every persistent widget here is bound to a preference that
lives in session state under its own name: before the widget is drawn, its value is read from
the browser (when it was drawn last run) into the preference, then written back to the widget
through the Session State API, which makes the browser show exactly the value the page uses.
Pages share preferences by name, so a choice carries across pages where it applies."""
from __future__ import annotations

import streamlit as st

PREFS = "studio_prefs"


def _all() -> dict:
    if PREFS not in st.session_state:
        st.session_state[PREFS] = {}
    return st.session_state[PREFS]


def bind(key: str, pref: str, default, options=None) -> str:
    """Prepare the widget ``key`` to show preference ``pref`` (``default`` when unset or no
    longer among ``options``); returns ``key``. Create the widget right after, with that key
    and without a default value of its own."""
    prefs = _all()
    if key in st.session_state:
        prefs[pref] = st.session_state[key]
    value = prefs.get(pref, default)
    if options is not None and value not in options:
        value = default
    prefs[pref] = value
    st.session_state[key] = value
    return key


def get(pref: str, default=None):
    return _all().get(pref, default)


def put(pref: str, value) -> None:
    _all()[pref] = value
