"""The participant's part of the study store: what the Take part page may do. Join or resume,
decline, give demographics, read the trials and their stimuli, and record answers. A participant
answers a trial at most once (a unique constraint, so a double submit from two tabs cannot count
twice); each answer is committed before the call returns."""
from __future__ import annotations

import secrets

from sqlalchemy import exists, func, literal, select
from sqlalchemy.exc import IntegrityError

from .database import Database, Joined, StudyClosed, StudyNotFound, closed_message, now
from .schema import (assignments_t, closures_t, declines_t, demographics_t, participants_t, recruits_t, responses_t,
                     stimuli_t, views_t)

__all__ = ["ParticipantStore", "arm_list", "arm_for"]


def arm_list(config: dict) -> list[str]:
    """A study's between-subjects arms (its methods, "none" for no explanation), or [] when every
    participant sees every method."""
    return list(config.get("methods") or []) if config.get("arms") else []


def arm_for(seq: int, arms: list[str], seed: int) -> str:
    """The arm of the study's ``seq``-th participant: permuted blocks (each block of len(arms)
    participants takes every arm once, in an order drawn from the study's seed and the block), so
    after any number of joins the arm sizes differ by at most one."""
    import numpy as np
    block, place = divmod(int(seq), len(arms))
    order = np.random.default_rng([int(seed), 7, block]).permutation(len(arms))
    return arms[int(order[place])]


class ParticipantStore(Database):
    """The study database as a participant's page uses it."""

    def stimulus(self, code: str, trial_idx: int, slot: str) -> bytes:
        row = self._first(select(stimuli_t.c.png).where(stimuli_t.c.study_code == code,
                                                         stimuli_t.c.trial_idx == trial_idx, stimuli_t.c.slot == slot))
        if row is None:
            raise StudyNotFound(f"study {code!r} has no stimulus {slot!r} for trial {trial_idx}")
        return bytes(row[0])

    def _new_participant(self, code: str, recruit: dict | None = None) -> str:
        """A participant row (and its recruit row, and their arm when the study has between-subjects
        arms) in one transaction; their token."""
        token, seed = secrets.token_urlsafe(12), secrets.randbelow(2**31)
        study = self.study(code)
        arms = arm_list(study.config)

        def go(conn):
            conn.execute(participants_t.insert().values(token=token, study_code=code, seed=seed, created_at=now()))
            if recruit is not None:
                conn.execute(recruits_t.insert().values(study_code=code, token=token, created_at=now(), **recruit))
            if arms:
                seq = conn.execute(select(func.count()).select_from(assignments_t)
                                   .where(assignments_t.c.study_code == code)).scalar_one()
                conn.execute(assignments_t.insert().values(token=token, study_code=code, seq=seq,
                                                           arm=arm_for(seq, arms, study.config.get("seed", 0))))
            return token
        for attempt in range(50):  # another replica took the same seq: count again (unique per study)
            try:
                return self._write(go)
            except IntegrityError:
                if recruit is not None and self.recruit_token(code, recruit["platform"], recruit["platform_id"]):
                    raise  # the same platform id joined meanwhile: enrol resolves it
                if attempt == 49:
                    raise
        raise AssertionError("unreachable")

    def arm(self, token: str) -> str | None:
        """The participant's between-subjects arm (None: the study has no arms)."""
        row = self._first(select(assignments_t.c.arm).where(assignments_t.c.token == token))
        return None if row is None else row[0]

    def join(self, code: str) -> str:
        """A new participant of an open study: returns their token (keep it to resume)."""
        study = self.study(code)
        if study.closed:
            raise StudyClosed(closed_message(study.code))
        return self._new_participant(study.code)

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
            raise StudyClosed(closed_message(study.code))
        try:
            return Joined(self._new_participant(study.code, {"platform": platform, "platform_id": platform_id,
                                                             "meta": dict(platform_meta or {})}), False)
        except IntegrityError as err:  # the same id joined at the same moment in another tab
            known = self.recruit_token(study.code, platform, platform_id)
            if known is None:
                raise self._error(err) from err
            return Joined(known, True)

    def recruit_token(self, code: str, platform: str | None, platform_id: str | None) -> str | None:
        """The token of a platform id in a study, if it has joined."""
        if platform_id is None:
            return None
        row = self._first(select(recruits_t.c.token).where(recruits_t.c.study_code == code,
                                                           recruits_t.c.platform == platform,
                                                           recruits_t.c.platform_id == platform_id))
        return None if row is None else row[0]

    def decline(self, code: str) -> None:
        """Record that someone declined consent: the study and the time, nothing else."""
        self._insert(declines_t, {"study_code": self.study(code).code, "created_at": now()})

    def save_demographics(self, token: str, answers: dict) -> None:
        """Once per participant; a second save (a double submit) keeps the first."""
        self.participant(token)
        try:
            self._insert(demographics_t, {"token": token, "answers": dict(answers), "created_at": now()})
        except IntegrityError:
            pass  # already saved

    def has_demographics(self, token: str) -> bool:
        return self._first(select(demographics_t.c.token).where(demographics_t.c.token == token)) is not None

    def mark_shown(self, token: str, trial_idx: int) -> None:
        """The first time a trial is shown to a participant (a reload keeps the first time)."""
        def go(conn):
            seen = conn.execute(select(views_t.c.token).where(views_t.c.token == token,
                                                              views_t.c.trial_idx == int(trial_idx))).first()
            if seen is None:
                conn.execute(views_t.insert().values(token=token, trial_idx=int(trial_idx), shown_at=now()))
        try:
            self._write(go)
        except IntegrityError:
            pass  # another replica marked it first

    def participant(self, token: str) -> tuple[str, int]:
        """(study code, schedule seed) of a participant token."""
        row = self._first(select(participants_t.c.study_code, participants_t.c.seed)
                          .where(participants_t.c.token == token))
        if row is None:
            raise StudyNotFound("this participant link is not known; start again from the study link")
        return row[0], row[1]

    def answered(self, token: str) -> set[int]:
        return set(self._column(select(responses_t.c.trial_idx).where(responses_t.c.participant == token)))

    def own_scores(self, token: str) -> list[dict]:
        """This participant's answers as (trial_idx, score): what counting their failed attention
        checks needs, and nothing of anyone else's."""
        return self._rows(select(responses_t.c.trial_idx, responses_t.c.score)
                          .where(responses_t.c.participant == token))

    def record(self, token: str, trial_idx: int, position: int, shown: dict, answer: int, score: int) -> bool:
        """Append one answer and commit it. False (and nothing written) when this participant has
        already answered this trial; :class:`StudyClosed` when the study is closed. The closed
        check is part of the insert (one statement in one transaction: an answer lands only if no
        closure exists when it is written)."""
        code, _ = self.participant(token)
        values = {"study_code": code, "participant": token, "trial_idx": int(trial_idx),
                  "position": int(position), "answer": int(answer), "score": int(score)}

        def go(conn):
            columns = [*values, "shown", "created_at", "seconds"]
            open_now = ~exists(select(closures_t.c.study_code).where(closures_t.c.study_code == code))
            shown_at = conn.execute(select(views_t.c.shown_at).where(
                views_t.c.token == token, views_t.c.trial_idx == int(trial_idx))).scalar()
            t = now()
            if shown_at is not None and shown_at.tzinfo is None:  # SQLite gives naive UTC back
                shown_at = shown_at.replace(tzinfo=t.tzinfo)
            seconds = None if shown_at is None else max(0.0, (t - shown_at).total_seconds())
            row = select(*[literal(v) for v in values.values()],
                         literal(shown, type_=responses_t.c.shown.type),
                         literal(t, type_=responses_t.c.created_at.type),
                         literal(seconds, type_=responses_t.c.seconds.type)).where(open_now)
            return conn.execute(responses_t.insert().from_select(columns, row).returning(responses_t.c.id)).first()
        try:
            written = self._write(go)
        except IntegrityError as err:
            if self._first(select(responses_t.c.id).where(responses_t.c.participant == token,
                                                          responses_t.c.trial_idx == int(trial_idx))) is not None:
                return False  # the unique (participant, trial) constraint: a double submit
            raise self._error(err) from err
        if written is None:
            raise StudyClosed(closed_message(code))
        return True
