"""Study storage and admin access for the pages. The database URL comes from ``STUDIO_DB_URL``,
else ``db_url`` in Streamlit secrets, else a SQLite file in ``data/``; the admin secret from
``STUDIO_ADMIN_SECRET``, else ``admin_secret`` in Streamlit secrets."""
from __future__ import annotations

import base64
import hmac
import html
import os
import threading
import time

import streamlit as st

import studies
from studies import participation
from ui.text import plain

PARTICIPANT_TROUBLE = ("Something went wrong on our side; your earlier answers are safe. "
                       "Please try again in a moment.")


def _secret(name: str) -> str | None:
    try:
        value = st.secrets.get(name)
    except Exception:  # no secrets file: that is fine, the environment may have it
        value = None
    return str(value) if value else None


def db_url() -> str:
    return os.environ.get("STUDIO_DB_URL") or _secret("db_url") or studies.default_url()


@st.cache_resource(show_spinner=False)
def _store(url: str, participant: bool):
    return studies.ParticipantStore(url) if participant else studies.AdminStore(url)


def store(participant: bool = False):
    """The study database, or a clear message (and the page stops) when it cannot be reached: a
    participant's page gets the participant part of the store (``studies.ParticipantStore``:
    join, answer, read the trials), the researcher's pages the admin part. A participant is
    never shown the database's address or its error."""
    try:
        return _store(db_url(), participant)
    except studies.StorageError as err:
        st.error(PARTICIPANT_TROUBLE if participant else f"{err}. Nothing was lost; try again in a moment.")
        st.stop()


def guarded(fn, *args, participant: bool = False):
    """Run a storage call; show a readable message instead of a stack trace when it fails. For a
    participant the message names neither the study code they typed nor the database."""
    try:
        return fn(*args)
    except studies.StudyNotFound as err:
        st.error("No study has this code, or this link is not known: check the link you were given."
                 if participant else plain(str(err)))
        st.stop()
    except studies.StudyClosed as err:
        st.error("This study is closed and takes no more answers. Thank you!" if participant else plain(str(err)))
        st.stop()
    except studies.StorageError as err:
        st.error(PARTICIPANT_TROUBLE if participant else f"{plain(str(err))}. Answers already saved are safe; "
                 "try again in a moment.")
        st.stop()


def save_answer(store_: studies.ParticipantStore, kind: str, token: str, trial: dict, trial_idx: int, position: int,
                shown: dict, flag: bool, choice: str, attempts: int = 3, wait_s: float = 0.5) -> bool:
    """Score and commit one answer (``studies.participation.submit_answer``), retrying a failing
    database a few times; False when it still fails (the page keeps the answer and offers to
    retry). A closed study stops the page."""
    for attempt in range(attempts):
        try:
            participation.submit_answer(store_, kind, token, trial, trial_idx, position, shown, flag, choice)
            return True
        except studies.StudyClosed:
            st.error("This study has been closed; your earlier answers are saved. Thank you!")
            st.stop()
        except studies.StorageError:
            if attempt < attempts - 1:
                time.sleep(wait_s * (attempt + 1))
    return False


def participant_link(code: str) -> str:
    """The link participants open: the address this admin is using (``st.context.url``, without
    the page's path), else the Host header the browser sent, with ``?study=CODE``."""
    url = st.context.url
    if url:
        base = url.split("?", 1)[0].rstrip("/")
        for suffix in ("/study_designer",):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        return f"{base}/?study={code}"
    host = st.context.headers.get("Host") if st.context.headers else None
    if host:
        scheme = st.context.headers.get("X-Forwarded-Proto", "http")
        return f"{scheme}://{host}/?study={code}"
    return f"?study={code} (after this app's address)"


class _Throttle:
    """Wrong admin secrets, counted per process (every browser session of this server): after
    ``free`` failures each further guess must wait ``base_s`` x 2^(failures - free) seconds,
    capped at ``cap_s``; a right secret resets the count."""

    def __init__(self, free: int = 3, base_s: float = 2.0, cap_s: float = 300.0, clock=time.monotonic):
        self.free, self.base_s, self.cap_s, self.clock = free, base_s, cap_s, clock
        self.failures, self.next_try = 0, 0.0
        self._lock = threading.Lock()

    def wait_s(self) -> float:
        with self._lock:
            return max(0.0, self.next_try - self.clock())

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.free:
                delay = min(self.cap_s, self.base_s * 2 ** (self.failures - self.free))
                self.next_try = self.clock() + delay

    def succeeded(self) -> None:
        with self._lock:
            self.failures, self.next_try = 0, 0.0


@st.cache_resource(show_spinner=False)
def admin_throttle() -> _Throttle:
    return _Throttle()


def admin_secret() -> str | None:
    return os.environ.get("STUDIO_ADMIN_SECRET") or _secret("admin_secret")


def _token(secret: str) -> str:
    return hmac.new(secret.encode(), b"ok", "sha256").hexdigest()


def is_admin() -> bool:
    """True when an admin secret is configured and this session has given it."""
    secret = admin_secret()
    return bool(secret) and st.session_state.get("studio_admin") == _token(secret)


def admin_login(key: str = "admin_secret_input", label: str = "Admin secret") -> str | None:
    """A password field for the admin secret: None once this session is admin, else why not
    (no secret configured, nothing given, a wrong guess, the wait after wrong guesses). Wrong
    guesses are throttled per process, on every page that asks."""
    secret = admin_secret()
    if not secret:
        return ("no admin secret is configured. Set the environment variable STUDIO_ADMIN_SECRET (or "
                "admin_secret in .streamlit/secrets.toml) and restart")
    if is_admin():
        return None
    given = st.text_input(label, type="password", key=key)
    if not given:
        return "give the admin secret"
    throttle = admin_throttle()
    wait = throttle.wait_s()
    if wait > 0:
        return f"too many wrong admin secrets: try again in {wait:.0f} s"
    if hmac.compare_digest(given.encode(), secret.encode()):
        throttle.succeeded()
        st.session_state["studio_admin"] = _token(secret)
        return None
    throttle.failed()
    return "that is not the admin secret"


def require_admin() -> None:
    """Admin pages: refused unless the admin secret is configured and given in this session."""
    if not admin_secret():
        st.error("Admin pages are locked: no admin secret is configured. Set the environment "
                 "variable STUDIO_ADMIN_SECRET (or admin_secret in .streamlit/secrets.toml) and restart.")
        st.stop()
    why = admin_login()
    if why is None:
        return
    if why != "give the admin secret":
        st.error(f"{why[0].upper()}{why[1:]}.")
    st.stop()


def stimulus_pair(where, first: bytes, second: bytes, labels=("Robot A", "Robot B"), width: int = 256) -> None:
    """Two trial pictures side by side, each with its name above it in bold, on any screen: on a
    phone each takes at most 44% of the screen's width, so the two stay on one row (in two
    Streamlit columns a phone stacked them, and the name under the first picture read as the title
    of the second)."""
    figures = []
    for png, label in zip((first, second), labels):
        data = base64.b64encode(png).decode("ascii")
        name = html.escape(label)
        figures.append(f'<figure style="margin:0;width:min({int(width)}px,44vw)">'
                       f'<figcaption style="font-weight:600;text-align:center;margin-bottom:0.25rem">{name}'
                       f'</figcaption><img src="data:image/png;base64,{data}" style="width:100%;height:auto" '
                       f'alt="{name}"></figure>')
    where.html('<div class="studio-pair" style="display:flex;flex-wrap:nowrap;gap:4vw;justify-content:center">'
               + "".join(figures) + "</div>")


def stimulus(where, png: bytes, caption: str | None = None, width: int = 256) -> None:
    """A trial's picture, without Streamlit's image toolbar: its fullscreen button, shown on
    hover, covered the words beside the picture, and a participant has no use for it. The PNG
    travels inline (a data URI), as ``st.image`` sends its bytes too."""
    data = base64.b64encode(png).decode("ascii")
    label = html.escape(caption or "the picture")
    under = f'<div style="text-align:center;font-size:0.875rem;opacity:0.7">{html.escape(caption)}</div>' \
        if caption else ""
    where.html(f'<figure style="margin:0;width:{int(width)}px"><img src="data:image/png;base64,{data}" '
               f'width="{int(width)}" alt="{label}">{under}</figure>')
