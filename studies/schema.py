"""The study database's tables (SQLAlchemy Core). Append-only: studies, their trials and rendered
stimuli are written once at design time; participants, responses and closures are inserted, never
updated or deleted."""
from __future__ import annotations

from sqlalchemy import (JSON, Column, DateTime, Float, ForeignKey, Integer, LargeBinary, MetaData,
                        PrimaryKeyConstraint, String, Table, Text, UniqueConstraint)

__all__ = ["meta", "studies_t", "trials_t", "stimuli_t", "participants_t", "responses_t", "recruits_t",
           "declines_t", "demographics_t", "views_t", "preregistrations_t", "closures_t", "assignments_t"]

meta = MetaData()
studies_t = Table(
    "studies", meta,
    Column("code", String(16), primary_key=True),
    Column("title", Text, nullable=False),
    Column("kind", String(16), nullable=False),  # "trust" | "discrimination"
    Column("config", JSON, nullable=False),
    Column("n_trials", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
trials_t = Table(
    "trials", meta,
    Column("study_code", String(16), ForeignKey("studies.code"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("payload", JSON, nullable=False),
    PrimaryKeyConstraint("study_code", "idx"),
)
stimuli_t = Table(
    "stimuli", meta,
    Column("study_code", String(16), nullable=False),
    Column("trial_idx", Integer, nullable=False),
    Column("slot", String(16), nullable=False),  # "stronger" | "weaker" | "map"
    Column("png", LargeBinary, nullable=False),
    PrimaryKeyConstraint("study_code", "trial_idx", "slot"),
)
participants_t = Table(
    "participants", meta,
    Column("token", String(40), primary_key=True),
    Column("study_code", String(16), ForeignKey("studies.code"), nullable=False),
    Column("seed", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
responses_t = Table(
    "responses", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_code", String(16), nullable=False, index=True),
    Column("participant", String(40), ForeignKey("participants.token"), nullable=False),
    Column("trial_idx", Integer, nullable=False),
    Column("position", Integer, nullable=False),  # where in the participant's order it came
    Column("shown", JSON, nullable=False),  # what was shown where (e.g. which model was Robot A)
    Column("answer", Integer, nullable=False),  # the participant's choice as given
    Column("score", Integer, nullable=False),  # in favour of the stronger model / 1 if correct
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seconds", Float, nullable=True),  # from the trial's first showing to this commit (server clocks)
    UniqueConstraint("participant", "trial_idx", name="one_answer_per_trial"),
)
recruits_t = Table(  # a participant's id on a recruitment platform: the same id resumes the same token
    "recruits", meta,
    Column("study_code", String(16), ForeignKey("studies.code"), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("platform_id", String(128), nullable=False),
    Column("token", String(40), ForeignKey("participants.token"), nullable=False, unique=True),
    Column("meta", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("study_code", "platform", "platform_id"),
)
declines_t = Table(  # a declined consent: the study and the time, nothing about the person
    "declines", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_code", String(16), ForeignKey("studies.code"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
demographics_t = Table(
    "demographics", meta,
    Column("token", String(40), ForeignKey("participants.token"), primary_key=True),
    Column("answers", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
views_t = Table(  # when a trial was first shown to a participant (answer times are measured from it)
    "views", meta,
    Column("token", String(40), ForeignKey("participants.token"), nullable=False),
    Column("trial_idx", Integer, nullable=False),
    Column("shown_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("token", "trial_idx"),
)
preregistrations_t = Table(  # the frozen design, written with the study: settings, trials, stimuli hashes
    "preregistrations", meta,
    Column("study_code", String(16), ForeignKey("studies.code"), primary_key=True),
    Column("record", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
)
closures_t = Table(
    "closures", meta,
    Column("study_code", String(16), ForeignKey("studies.code"), primary_key=True),
    Column("closed_at", DateTime(timezone=True), nullable=False),
)
assignments_t = Table(  # a participant's between-subjects arm, drawn once at joining, never again
    "assignments", meta,
    Column("token", String(40), ForeignKey("participants.token"), primary_key=True),
    Column("study_code", String(16), ForeignKey("studies.code"), nullable=False),
    Column("seq", Integer, nullable=False),  # the n-th assignment of the study, from 0: one per n
    Column("arm", String(64), nullable=False),
    UniqueConstraint("study_code", "seq"),
)
