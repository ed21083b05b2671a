"""The study store: the participant's part (``studies.participants``) and the researcher's part
(``studies.admin``) over one database and its shared query helpers (``studies.database``), through
SQLAlchemy Core: SQLite file by default, any database URL (PostgreSQL: ``postgresql+psycopg://...``)
by configuration. The schema (``studies.schema``) is created on first use.

Append-only: studies, their trials and rendered stimuli are written once at design time;
participants, responses and closures are inserted, never updated or deleted. A participant
answers a trial at most once (a unique constraint, so a double submit from two tabs cannot
count twice); each answer is committed before the call returns."""
from __future__ import annotations

from .admin import AdminStore
from .database import Joined, StorageError, Study, StudyClosed, StudyNotFound, default_url
from .participants import ParticipantStore
from .schema import (closures_t, declines_t, demographics_t, meta, participants_t, preregistrations_t,  # noqa: F401
                     recruits_t, responses_t, stimuli_t, studies_t, trials_t, views_t)

__all__ = ["Store", "ParticipantStore", "AdminStore", "StorageError", "StudyNotFound", "StudyClosed",
           "default_url", "Study", "Joined"]


class Store(ParticipantStore, AdminStore):
    """Both parts on one connection pool: the tools and tests that play both roles (the field
    load test, a researcher trying their own study)."""
