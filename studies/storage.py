"""Study storage through SQLAlchemy Core: SQLite file by default, any database URL (PostgreSQL:
``postgresql+psycopg://...``) by configuration. The schema is created on first use.

Append-only: studies, their trials and rendered stimuli are written once at design time;
participants, responses and closures are inserted, never updated or deleted. A participant
answers a trial at most once (a unique constraint, so a double submit from two tabs cannot
count twice); each answer is committed before the call returns."""
from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (JSON, Column, DateTime, Float, ForeignKey, Integer, LargeBinary, MetaData,
                        PrimaryKeyConstraint, String, Table, Text, UniqueConstraint, create_engine,
                        event, exists, func, inspect, literal, select, text)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from .field import canonical_hash

__all__ = ["Store", "StorageError", "StudyNotFound", "StudyClosed", "default_url", "Study", "Joined"]

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


class StorageError(RuntimeError):
    """The study database cannot be used (down, unreachable, refused)."""


class StudyNotFound(LookupError):
    pass


class StudyClosed(RuntimeError):
    pass


def default_url() -> str:
    """``STUDIO_DB_URL`` if set, else a SQLite file ``data/studies.sqlite`` in the project."""
    url = os.environ.get("STUDIO_DB_URL")
    if url:
        return url
    path = Path(__file__).resolve().parents[1] / "data" / "studies.sqlite"
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Joined:
    token: str
    resumed: bool  # the platform id had joined before: their own token, not a new participant


@dataclass(frozen=True)
class Study:
    code: str
    title: str
    kind: str
    config: dict
    n_trials: int
    created_at: datetime
    closed: bool


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Store:
    """One database. Every method raises :class:`StorageError` with a readable reason when the
    database cannot be used."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        parsed = make_url(self.url)
        self.where = parsed.render_as_string(hide_password=True)
        kwargs = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                try:
                    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise StorageError(f"the study database ({self.where}) cannot be used: {err}") from err
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        elif parsed.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": 5}
        self.engine = create_engine(self.url, **kwargs)
        if parsed.get_backend_name() == "sqlite":
            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):  # many readers, one writer, waits instead of failing
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()
        try:
            self._run(self._create_schema)
        except IntegrityError as err:
            raise self._error(err) from err

    def _create_schema(self, attempts: int = 8) -> None:
        """``create_all`` checks, then creates: two processes opening a fresh database at once
        can both find a table missing, and one of them fails with "already exists" (SQLite) or a
        duplicate key in the catalogue (PostgreSQL). The loser retries: on its next check the
        tables are there, so it creates nothing."""
        for attempt in range(attempts):
            try:
                meta.create_all(self.engine)
                self._add_missing_columns()
                return
            except (OperationalError, ProgrammingError, IntegrityError) as err:
                text = str(err).lower()
                if attempt == attempts - 1 or not ("already exists" in text or "duplicate" in text
                                                   or "locked" in text):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _add_missing_columns(self) -> None:
        """A database made by an earlier version lacks the columns added since (``create_all``
        makes missing tables, not missing columns): add them, nullable. Two processes may race
        here; the loser's "already exists" / "duplicate column" is retried by the caller."""
        have = {c["name"] for c in inspect(self.engine).get_columns("responses")}
        if "seconds" not in have:
            with self.engine.begin() as conn:
                kind = "DOUBLE PRECISION" if self.engine.dialect.name == "postgresql" else "FLOAT"
                conn.execute(text(f"ALTER TABLE responses ADD COLUMN seconds {kind}"))

    def _run(self, fn):
        try:
            return fn()
        except (StudyNotFound, StudyClosed, IntegrityError):
            raise  # IntegrityError: the caller decides what a constraint violation means
        except SQLAlchemyError as err:
            raise self._error(err) from err

    def _error(self, err: BaseException) -> "StorageError":
        reason = str(getattr(err, "orig", err) or err).strip().splitlines()[0][:200]
        return StorageError(f"the study database ({self.where}) cannot be used: {reason}")

    def dispose(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ studies (admin)

    def save_study(self, title: str, kind: str, config: dict, trials: list[dict],
                   stimuli: dict[tuple[int, str], bytes]) -> str:
        """Write a study with its fixed trials and rendered stimuli in one transaction, with its
        pre-registration record (:meth:`preregistration`); return its new code (8 characters,
        hard to guess)."""
        code = secrets.token_hex(4)
        created = _now()
        record = {"study": code, "title": title, "kind": kind, "created_at": created.isoformat(),
                  "settings": config, "trials": trials,
                  "stimuli_sha256": {f"{i}/{slot}": hashlib.sha256(png).hexdigest()
                                     for (i, slot), png in sorted(stimuli.items())},
                  "weights_sha256": config.get("weights_sha256", {})}
        record_text, record_hash = canonical_hash(record)

        def go():
            with self.engine.begin() as conn:
                conn.execute(studies_t.insert().values(code=code, title=title, kind=kind, config=config,
                                                       n_trials=len(trials), created_at=created))
                conn.execute(preregistrations_t.insert().values(
                    study_code=code, record=record_text, sha256=record_hash))
                conn.execute(trials_t.insert(), [{"study_code": code, "idx": i, "payload": t}
                                                 for i, t in enumerate(trials)])
                conn.execute(stimuli_t.insert(), [{"study_code": code, "trial_idx": i, "slot": slot, "png": png}
                                                  for (i, slot), png in stimuli.items()])
            return code
        return self._run(go)

    def study(self, code: str) -> Study:
        code = (code or "").strip().lower()

        def go():
            with self.engine.connect() as conn:
                row = conn.execute(select(studies_t).where(studies_t.c.code == code)).mappings().first()
                if row is None:
                    raise StudyNotFound(f"no study has the code {code!r}; check the link or the code you were given")
                closed = conn.execute(select(closures_t.c.study_code).where(closures_t.c.study_code == code)).first()
            return Study(row["code"], row["title"], row["kind"], row["config"], row["n_trials"],
                         row["created_at"], closed is not None)
        return self._run(go)

    def studies(self) -> list[Study]:
        def go():
            with self.engine.connect() as conn:
                closed = {r[0] for r in conn.execute(select(closures_t.c.study_code))}
                rows = conn.execute(select(studies_t).order_by(studies_t.c.created_at.desc())).mappings().all()
            return [Study(r["code"], r["title"], r["kind"], r["config"], r["n_trials"], r["created_at"],
                          r["code"] in closed) for r in rows]
        return self._run(go)

    def close_study(self, code: str) -> None:
        """Stop accepting participants and answers (recorded as a closure; nothing is deleted).
        The code is matched as :meth:`study` matches it (any letter case); closing twice is a
        no-op; any other database failure is a :class:`StorageError`."""
        study = self.study(code)

        def closed(conn) -> bool:
            return conn.execute(select(closures_t.c.study_code)
                                .where(closures_t.c.study_code == study.code)).first() is not None

        def go():
            try:
                with self.engine.begin() as conn:
                    if not closed(conn):
                        conn.execute(closures_t.insert().values(study_code=study.code, closed_at=_now()))
            except IntegrityError as err:  # a concurrent close won the race: fine; anything else is not
                with self.engine.connect() as conn:
                    if not closed(conn):
                        raise self._error(err) from err
        self._run(go)

    def trials(self, code: str) -> list[dict]:
        def go():
            with self.engine.connect() as conn:
                rows = conn.execute(select(trials_t.c.payload).where(trials_t.c.study_code == code)
                                    .order_by(trials_t.c.idx)).all()
            return [r[0] for r in rows]
        return self._run(go)

    def stimulus(self, code: str, trial_idx: int, slot: str) -> bytes:
        def go():
            with self.engine.connect() as conn:
                row = conn.execute(select(stimuli_t.c.png).where(
                    stimuli_t.c.study_code == code, stimuli_t.c.trial_idx == trial_idx,
                    stimuli_t.c.slot == slot)).first()
            if row is None:
                raise StudyNotFound(f"study {code!r} has no stimulus {slot!r} for trial {trial_idx}")
            return bytes(row[0])
        return self._run(go)

    # ------------------------------------------------------------------ participants

    def join(self, code: str) -> str:
        """A new participant of an open study: returns their token (keep it to resume)."""
        study = self.study(code)
        if study.closed:
            raise StudyClosed(f"the study {study.code!r} is closed and takes no more answers; thank you")
        token = secrets.token_urlsafe(12)
        seed = secrets.randbelow(2**31)

        def go():
            with self.engine.begin() as conn:
                conn.execute(participants_t.insert().values(token=token, study_code=study.code, seed=seed,
                                                            created_at=_now()))
            return token
        return self._run(go)

    def enrol(self, code: str, platform: str | None = None, platform_id: str | None = None,
              platform_meta: dict | None = None) -> Joined:
        """A participant of an open study, recorded with their platform id when they came from
        one. The same (platform, id) coming back gets its own token again (``resumed``), never a
        second participant: the id is a primary key, so two tabs racing to join make one."""
        if platform_id is None:
            return Joined(self.join(code), False)
        study = self.study(code)
        known = self.recruit_token(study.code, platform, platform_id)
        if known is not None:
            return Joined(known, True)
        if study.closed:
            raise StudyClosed(f"the study {study.code!r} is closed and takes no more answers; thank you")
        token, seed = secrets.token_urlsafe(12), secrets.randbelow(2**31)

        def go():
            with self.engine.begin() as conn:
                conn.execute(participants_t.insert().values(token=token, study_code=study.code, seed=seed,
                                                            created_at=_now()))
                conn.execute(recruits_t.insert().values(study_code=study.code, platform=platform,
                                                        platform_id=platform_id, token=token,
                                                        meta=dict(platform_meta or {}), created_at=_now()))
            return Joined(token, False)
        try:
            return self._run(go)
        except IntegrityError as err:  # the same id joined at the same moment in another tab
            known = self.recruit_token(study.code, platform, platform_id)
            if known is None:
                raise self._error(err) from err
            return Joined(known, True)

    def recruit_token(self, code: str, platform: str | None, platform_id: str | None) -> str | None:
        """The token of a platform id in a study, if it has joined."""
        if platform_id is None:
            return None

        def go():
            with self.engine.connect() as conn:
                row = conn.execute(select(recruits_t.c.token).where(
                    recruits_t.c.study_code == code, recruits_t.c.platform == platform,
                    recruits_t.c.platform_id == platform_id)).first()
            return None if row is None else row[0]
        return self._run(go)

    def decline(self, code: str) -> None:
        """Record that someone declined consent: the study and the time, nothing else."""
        study = self.study(code)

        def go():
            with self.engine.begin() as conn:
                conn.execute(declines_t.insert().values(study_code=study.code, created_at=_now()))
        self._run(go)

    def save_demographics(self, token: str, answers: dict) -> None:
        """Once per participant; a second save (a double submit) keeps the first."""
        self.participant(token)

        def go():
            with self.engine.begin() as conn:
                conn.execute(demographics_t.insert().values(token=token, answers=dict(answers), created_at=_now()))
        try:
            self._run(go)
        except IntegrityError:
            pass  # already saved

    def has_demographics(self, token: str) -> bool:
        def go():
            with self.engine.connect() as conn:
                return conn.execute(select(demographics_t.c.token).where(demographics_t.c.token == token)).first() \
                    is not None
        return self._run(go)

    def mark_shown(self, token: str, trial_idx: int) -> None:
        """The first time a trial is shown to a participant (a reload keeps the first time)."""
        def go():
            with self.engine.begin() as conn:
                seen = conn.execute(select(views_t.c.token).where(views_t.c.token == token,
                                                                  views_t.c.trial_idx == int(trial_idx))).first()
                if seen is None:
                    conn.execute(views_t.insert().values(token=token, trial_idx=int(trial_idx), shown_at=_now()))
        try:
            self._run(go)
        except IntegrityError:
            pass  # another replica marked it first

    def participant(self, token: str) -> tuple[str, int]:
        """(study code, schedule seed) of a participant token."""
        def go():
            with self.engine.connect() as conn:
                row = conn.execute(select(participants_t.c.study_code, participants_t.c.seed)
                                   .where(participants_t.c.token == token)).first()
            if row is None:
                raise StudyNotFound("this participant link is not known; start again from the study link")
            return row[0], row[1]
        return self._run(go)

    def answered(self, token: str) -> set[int]:
        def go():
            with self.engine.connect() as conn:
                rows = conn.execute(select(responses_t.c.trial_idx).where(responses_t.c.participant == token))
                return {r[0] for r in rows}
        return self._run(go)

    def record(self, token: str, trial_idx: int, position: int, shown: dict, answer: int, score: int) -> bool:
        """Append one answer and commit it. False (and nothing written) when this participant has
        already answered this trial; :class:`StudyClosed` when the study is closed. The closed
        check is part of the insert (one statement in one transaction: an answer lands only if no
        closure exists when it is written)."""
        code, _ = self.participant(token)
        values = {"study_code": code, "participant": token, "trial_idx": int(trial_idx),
                  "position": int(position), "answer": int(answer), "score": int(score)}

        def go():
            columns = [*values, "shown", "created_at", "seconds"]
            open_now = ~exists(select(closures_t.c.study_code).where(closures_t.c.study_code == code))
            with self.engine.begin() as conn:
                shown_at = conn.execute(select(views_t.c.shown_at).where(
                    views_t.c.token == token, views_t.c.trial_idx == int(trial_idx))).scalar()
                now = _now()
                if shown_at is not None and shown_at.tzinfo is None:  # SQLite gives naive UTC back
                    shown_at = shown_at.replace(tzinfo=timezone.utc)
                seconds = None if shown_at is None else max(0.0, (now - shown_at).total_seconds())
                row = select(*[literal(v) for v in values.values()],
                             literal(shown, type_=responses_t.c.shown.type),
                             literal(now, type_=responses_t.c.created_at.type),
                             literal(seconds, type_=responses_t.c.seconds.type)).where(open_now)
                written = conn.execute(responses_t.insert().from_select(columns, row)
                                       .returning(responses_t.c.id)).first()
            if written is None:
                raise StudyClosed(f"the study {code!r} is closed and takes no more answers; thank you")
            return True
        try:
            return self._run(go)
        except IntegrityError as err:
            def duplicate():
                with self.engine.connect() as conn:
                    return conn.execute(select(responses_t.c.id).where(
                        responses_t.c.participant == token, responses_t.c.trial_idx == int(trial_idx))).first()
            if self._run(duplicate) is not None:
                return False  # the unique (participant, trial) constraint: a double submit
            raise self._error(err) from err

    # ------------------------------------------------------------------ results (admin)

    def responses(self, code: str) -> list[dict]:
        def go():
            with self.engine.connect() as conn:
                rows = conn.execute(select(responses_t).where(responses_t.c.study_code == code)
                                    .order_by(responses_t.c.id)).mappings().all()
            return [dict(r) for r in rows]
        return self._run(go)

    def participant_tokens(self, code: str) -> list[str]:
        def go():
            with self.engine.connect() as conn:
                rows = conn.execute(select(participants_t.c.token).where(participants_t.c.study_code == code)
                                    .order_by(participants_t.c.created_at))
                return [r[0] for r in rows]
        return self._run(go)

    def recruits(self, code: str) -> list[dict]:
        def go():
            with self.engine.connect() as conn:
                rows = conn.execute(select(recruits_t).where(recruits_t.c.study_code == code)
                                    .order_by(recruits_t.c.created_at)).mappings().all()
            return [dict(r) for r in rows]
        return self._run(go)

    def declines(self, code: str) -> int:
        def go():
            with self.engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(declines_t)
                                    .where(declines_t.c.study_code == code)).scalar_one()
        return self._run(go)

    def demographics(self, code: str) -> list[dict]:
        def go():
            with self.engine.connect() as conn:
                rows = conn.execute(select(demographics_t.c.token, demographics_t.c.answers)
                                    .join(participants_t, participants_t.c.token == demographics_t.c.token)
                                    .where(participants_t.c.study_code == code)).all()
            return [{"participant": t, **a} for t, a in rows]
        return self._run(go)

    def preregistration(self, code: str) -> tuple[str, str]:
        """(the frozen design as canonical JSON, its sha256), written when the study was made."""
        def go():
            with self.engine.connect() as conn:
                row = conn.execute(select(preregistrations_t.c.record, preregistrations_t.c.sha256)
                                   .where(preregistrations_t.c.study_code == code)).first()
            if row is None:
                raise StudyNotFound(f"study {code!r} has no pre-registration record (made before they were kept)")
            return row[0], row[1]
        return self._run(go)

    def counts(self, code: str) -> tuple[int, int]:
        """(participants, responses) of a study."""
        def go():
            with self.engine.connect() as conn:
                p = conn.execute(select(func.count()).select_from(participants_t)
                                 .where(participants_t.c.study_code == code)).scalar_one()
                r = conn.execute(select(func.count()).select_from(responses_t)
                                 .where(responses_t.c.study_code == code)).scalar_one()
            return p, r
        return self._run(go)
