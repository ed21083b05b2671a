"""The researcher's part of the study store: design a study (written once with its trials,
stimuli and pre-registration record), list and close studies, and read the results."""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .database import Database, Study, StudyNotFound, now
from .field import canonical_hash
from .schema import (assignments_t, closures_t, declines_t, demographics_t, participants_t, preregistrations_t, recruits_t,
                     responses_t, stimuli_t, studies_t, trials_t)

__all__ = ["AdminStore"]


class AdminStore(Database):
    """The study database as the researcher's pages use it."""

    def save_study(self, title: str, kind: str, config: dict, trials: list[dict],
                   stimuli: dict[tuple[int, str], bytes]) -> str:
        """Write a study with its fixed trials and rendered stimuli in one transaction, with its
        pre-registration record (:meth:`preregistration`); return its new code (8 characters,
        hard to guess)."""
        code = secrets.token_hex(4)
        created = now()
        record = {"study": code, "title": title, "kind": kind, "created_at": created.isoformat(),
                  "settings": config, "trials": trials,
                  "stimuli_sha256": {f"{i}/{slot}": hashlib.sha256(png).hexdigest()
                                     for (i, slot), png in sorted(stimuli.items())},
                  "weights_sha256": config.get("weights_sha256", {})}
        record_text, record_hash = canonical_hash(record)

        def go(conn):
            conn.execute(studies_t.insert().values(code=code, title=title, kind=kind, config=config,
                                                   n_trials=len(trials), created_at=created))
            conn.execute(preregistrations_t.insert().values(study_code=code, record=record_text, sha256=record_hash))
            conn.execute(trials_t.insert(), [{"study_code": code, "idx": i, "payload": t} for i, t in enumerate(trials)])
            conn.execute(stimuli_t.insert(), [{"study_code": code, "trial_idx": i, "slot": slot, "png": png}
                                              for (i, slot), png in stimuli.items()])
            return code
        return self._write(go)

    def studies(self) -> list[Study]:
        closed = set(self._column(select(closures_t.c.study_code)))
        return [Study(r["code"], r["title"], r["kind"], r["config"], r["n_trials"], r["created_at"], r["code"] in closed)
                for r in self._rows(select(studies_t).order_by(studies_t.c.created_at.desc()))]

    def close_study(self, code: str) -> None:
        """Stop accepting participants and answers (recorded as a closure; nothing is deleted).
        The code is matched as :meth:`study` matches it (any letter case); closing twice is a
        no-op; any other database failure is a :class:`StorageError`."""
        study = self.study(code)
        is_closed = select(closures_t.c.study_code).where(closures_t.c.study_code == study.code)

        def go(conn):
            if conn.execute(is_closed).first() is None:
                conn.execute(closures_t.insert().values(study_code=study.code, closed_at=now()))
        try:
            self._write(go)
        except IntegrityError as err:  # a concurrent close won the race: fine; anything else is not
            if self._first(is_closed) is None:
                raise self._error(err) from err

    def responses(self, code: str) -> list[dict]:
        return self._rows(select(responses_t).where(responses_t.c.study_code == code).order_by(responses_t.c.id))

    def arms(self, code: str) -> dict[str, str]:
        """Each participant's between-subjects arm (empty: the study has none)."""
        rows = self._rows(select(assignments_t.c.token, assignments_t.c.arm).where(assignments_t.c.study_code == code))
        return {r["token"]: r["arm"] for r in rows}

    def participant_tokens(self, code: str) -> list[str]:
        return self._column(select(participants_t.c.token).where(participants_t.c.study_code == code)
                            .order_by(participants_t.c.created_at))

    def recruits(self, code: str) -> list[dict]:
        return self._rows(select(recruits_t).where(recruits_t.c.study_code == code).order_by(recruits_t.c.created_at))

    def declines(self, code: str) -> int:
        return self._count(declines_t, declines_t.c.study_code == code)

    def demographics(self, code: str) -> list[dict]:
        rows = self._read(lambda conn: conn.execute(
            select(demographics_t.c.token, demographics_t.c.answers)
            .join(participants_t, participants_t.c.token == demographics_t.c.token)
            .where(participants_t.c.study_code == code)).all())
        return [{"participant": t, **a} for t, a in rows]

    def preregistration(self, code: str) -> tuple[str, str]:
        """(the frozen design as canonical JSON, its sha256), written when the study was made."""
        row = self._first(select(preregistrations_t.c.record, preregistrations_t.c.sha256)
                          .where(preregistrations_t.c.study_code == code))
        if row is None:
            raise StudyNotFound(f"study {code!r} has no pre-registration record (made before they were kept)")
        return row[0], row[1]

    def counts(self, code: str) -> tuple[int, int]:
        """(participants, responses) of a study."""
        return (self._count(participants_t, participants_t.c.study_code == code),
                self._count(responses_t, responses_t.c.study_code == code))
