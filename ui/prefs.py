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
WRITTEN = "studio_prefs_written"  # what bind() last gave each widget
BOUND = "studio_prefs_bound"  # widget key -> its preference


def _all() -> dict:
    if PREFS not in st.session_state:
        st.session_state[PREFS] = {}
    return st.session_state[PREFS]


def absorb() -> None:
    """At the start of a run (the entry point calls it, before any page draws): every bound
    widget the user changed since its last run passes its value to its preference, so that all
    the widgets bound to that preference show it in this very run."""
    prefs = _all()
    written = st.session_state.setdefault(WRITTEN, {})
    for key, pref in st.session_state.setdefault(BOUND, {}).items():
        if key in st.session_state and key in written and st.session_state[key] != written[key]:
            prefs[pref] = st.session_state[key]
            written[key] = st.session_state[key]


def bind(key: str, pref: str, default, options=None) -> str:
    """Prepare the widget ``key`` to show preference ``pref`` (``default`` when unset or no
    longer among ``options``); returns ``key``. Create the widget right after, with that key
    and without a default value of its own."""
    prefs = _all()
    written = st.session_state.setdefault(WRITTEN, {})
    st.session_state.setdefault(BOUND, {})[key] = pref
    if key in st.session_state and (key not in written or st.session_state[key] != written[key]):
        prefs[pref] = st.session_state[key]  # the user changed this widget: its value is the choice
    value = prefs.get(pref, default)
    if options is not None and value not in options:
        value = default
    prefs[pref] = value
    st.session_state[key] = written[key] = value  # several widgets bound to one preference agree
    return key


def get(pref: str, default=None):
    return _all().get(pref, default)


def put(pref: str, value) -> None:
    _all()[pref] = value
