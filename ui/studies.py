"""Study storage and admin access for the pages. The database URL comes from ``STUDIO_DB_URL``,
else ``db_url`` in Streamlit secrets, else a SQLite file in ``data/``; the admin secret from
``STUDIO_ADMIN_SECRET``, else ``admin_secret`` in Streamlit secrets."""
from __future__ import annotations

import hmac
import os

import streamlit as st

import studies


def _secret(name: str) -> str | None:
    try:
        value = st.secrets.get(name)
    except Exception:  # no secrets file: that is fine, the environment may have it
        value = None
    return str(value) if value else None


def db_url() -> str:
    return os.environ.get("STUDIO_DB_URL") or _secret("db_url") or studies.default_url()


@st.cache_resource(show_spinner=False)
def _store(url: str) -> studies.Store:
    return studies.Store(url)


def store() -> studies.Store:
    """The study database, or a clear message (and the page stops) when it cannot be reached."""
    try:
        return _store(db_url())
    except studies.StorageError as err:
        st.error(f"{err}. Nothing was lost; try again in a moment, or tell the researcher.")
        st.stop()


def guarded(fn, *args):
    """Run a storage call; show a readable message instead of a stack trace when it fails."""
    try:
        return fn(*args)
    except (studies.StudyNotFound, studies.StudyClosed) as err:
        st.error(str(err).strip("'\""))
        st.stop()
    except studies.StorageError as err:
        st.error(f"{err}. Answers already saved are safe; try again in a moment.")
        st.stop()


def require_admin() -> None:
    """Admin pages: refused unless the admin secret is configured and given in this session."""
    secret = os.environ.get("STUDIO_ADMIN_SECRET") or _secret("admin_secret")
    if not secret:
        st.error("Admin pages are locked: no admin secret is configured. Set the environment "
                 "variable STUDIO_ADMIN_SECRET (or admin_secret in .streamlit/secrets.toml) and restart.")
        st.stop()
    if st.session_state.get("studio_admin") == hmac.new(secret.encode(), b"ok", "sha256").hexdigest():
        return
    given = st.text_input("Admin secret", type="password", key="admin_secret_input")
    if given and hmac.compare_digest(given.encode(), secret.encode()):
        st.session_state["studio_admin"] = hmac.new(secret.encode(), b"ok", "sha256").hexdigest()
        return
    if given:
        st.error("That is not the admin secret.")
    st.stop()

