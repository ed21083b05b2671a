"""The study database's connection and the query helpers both parts of the store share (the
participant part, ``studies.participants``; the admin part, ``studies.admin``): SQLite file by
default, any database URL (PostgreSQL: ``postgresql+psycopg://...``) by configuration; the schema
(``studies.schema``) is created on first use. Every helper turns a database failure into a
:class:`StorageError` with a readable reason."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, event, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from .schema import closures_t, meta, studies_t, trials_t

__all__ = ["Database", "StorageError", "StudyNotFound", "StudyClosed", "default_url", "Study", "Joined", "now"]


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


def now() -> datetime:
    return datetime.now(timezone.utc)


def closed_message(code: str) -> str:
    return f"the study {code!r} is closed and takes no more answers; thank you"


class Database:
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
                text_ = str(err).lower()
                if attempt == attempts - 1 or not ("already exists" in text_ or "duplicate" in text_
                                                   or "locked" in text_):
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

    def _error(self, err: BaseException) -> StorageError:
        reason = str(getattr(err, "orig", err) or err).strip().splitlines()[0][:200]
        return StorageError(f"the study database ({self.where}) cannot be used: {reason}")

    def dispose(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ shared query helpers

    def _read(self, fn):
        """``fn(connection)`` on a connection of its own."""
        def go():
            with self.engine.connect() as conn:
                return fn(conn)
        return self._run(go)

    def _write(self, fn):
        """``fn(connection)`` in one transaction, committed when it returns."""
        def go():
            with self.engine.begin() as conn:
                return fn(conn)
        return self._run(go)

    def _rows(self, stmt) -> list[dict]:
        return self._read(lambda conn: [dict(r) for r in conn.execute(stmt).mappings()])

    def _column(self, stmt) -> list:
        """The first column of every row."""
        return self._read(lambda conn: [r[0] for r in conn.execute(stmt)])

    def _first(self, stmt):
        """The first row, or None."""
        return self._read(lambda conn: conn.execute(stmt).first())

    def _count(self, table, *where) -> int:
        return self._read(lambda conn: conn.execute(select(func.count()).select_from(table).where(*where))
                          .scalar_one())

    def _insert(self, table, rows) -> None:
        """Insert a row (a dict) or rows (a list of dicts) in one transaction; a constraint
        violation comes back as ``IntegrityError`` for the caller to judge."""
        self._write(lambda conn: conn.execute(table.insert(), rows))

    # ------------------------------------------------------------------ what both parts read

    def study(self, code: str) -> Study:
        """The study of a code (any letter case, spaces trimmed), with whether it is closed."""
        code = (code or "").strip().lower()

        def go(conn):
            row = conn.execute(select(studies_t).where(studies_t.c.code == code)).mappings().first()
            if row is None:
                raise StudyNotFound(f"no study has the code {code!r}; check the link or the code you were given")
            closed = conn.execute(select(closures_t.c.study_code).where(closures_t.c.study_code == code)).first()
            return Study(row["code"], row["title"], row["kind"], row["config"], row["n_trials"],
                         row["created_at"], closed is not None)
        return self._read(go)

    def trials(self, code: str) -> list[dict]:
        """A study's trials (their payloads), in order."""
        return self._column(select(trials_t.c.payload).where(trials_t.c.study_code == code).order_by(trials_t.c.idx))
