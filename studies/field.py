"""Studies in the field: who a participant is on a recruitment platform, where they go when they
finish, the schedule with practice and attention checks, and the exclusion rule fixed in the
design. Plain Python and numpy (the participant's page imports it, never torch).

Platforms (the link's query parameters):

* Prolific: ``PROLIFIC_PID``, ``STUDY_ID``, ``SESSION_ID``; at the end the study's completion
  code and the redirect ``https://app.prolific.com/submissions/complete?cc=<code>``;
* Mechanical Turk: ``workerId``, ``assignmentId``, ``hitId``, ``turkSubmitTo``; an
  ``assignmentId`` of ``ASSIGNMENT_ID_NOT_AVAILABLE`` is the HIT's preview (instructions only);
  at the end the external-submit form, POSTed to ``<turkSubmitTo>/mturk/externalSubmit`` with
  the ``assignmentId`` (as MTurk's documentation asks);
* any other: ``pid``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlencode

import numpy as np

__all__ = ["Recruitment", "recruitment_from", "Completion", "completion", "FieldSettings", "plan",
           "PlanItem", "exclusions", "included_rows", "approval_rows", "approval_action", "canonical_hash",
           "MTURK_PREVIEW", "ROLES", "redirect", "platform_link", "PLATFORM_LINKS", "failed_checks", "arm_trials"]

MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
PROLIFIC_DONE = "https://app.prolific.com/submissions/complete"
ROLES = ("trial", "attention", "practice", "learn")  # learn: a simulatability study's learning phase
_MAX_ID = 128


@dataclass(frozen=True)
class Recruitment:
    platform: str | None  # "prolific" | "mturk" | "generic" | None (came without a platform id)
    platform_id: str | None
    meta: dict = field(default_factory=dict)  # every platform parameter the link carried
    preview: bool = False  # an MTurk HIT seen before it was accepted

    @property
    def identified(self) -> bool:
        return self.platform_id is not None


def _clean(v) -> str | None:
    v = (v or "").strip()
    if not v:
        return None
    if len(v) > _MAX_ID or any(not (ch.isalnum() or ch in "-_.:@") for ch in v):
        raise ValueError(f"a platform id must be at most {_MAX_ID} letters, digits or -_.:@")
    return v


def recruitment_from(params: Mapping[str, str]) -> Recruitment:
    """The platform a link came from and the participant's id there (ValueError for an id that
    is not a plain token)."""
    get = {k: params.get(k) for k in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId", "hitId",
                                      "turkSubmitTo", "pid")}
    if get["PROLIFIC_PID"]:
        meta = {k: _clean(get[k]) for k in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID") if get[k]}
        return Recruitment("prolific", meta["PROLIFIC_PID"], meta)
    if get["assignmentId"] or get["workerId"]:
        assignment = (get["assignmentId"] or "").strip()
        if assignment == MTURK_PREVIEW:
            return Recruitment("mturk", None, {"assignmentId": MTURK_PREVIEW}, preview=True)
        meta = {k: _clean(get[k]) for k in ("workerId", "assignmentId", "hitId") if get[k]}
        submit = (get["turkSubmitTo"] or "").strip()
        if submit:
            if submit.rstrip("/") not in ("https://www.mturk.com", "https://workersandbox.mturk.com"):
                raise ValueError("turkSubmitTo must be Mechanical Turk's own address (www.mturk.com or its sandbox)")
            meta["turkSubmitTo"] = submit.rstrip("/")
        if "workerId" not in meta:
            raise ValueError("a Mechanical Turk link needs its workerId")
        return Recruitment("mturk", meta["workerId"], meta)
    if get["pid"]:
        pid = _clean(get["pid"])
        return Recruitment("generic", pid, {"pid": pid})
    return Recruitment(None, None)


@dataclass(frozen=True)
class Completion:
    code: str | None
    url: str | None  # where the participant goes next (None: show the code only)
    label: str
    fields: dict = field(default_factory=dict)  # a form's fields: POSTed to ``url`` (MTurk), else a link

    def form_html(self) -> str:
        """The form that submits ``fields`` to ``url`` by POST, values escaped."""
        from html import escape
        inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(str(v))}">'
                         for k, v in self.fields.items())
        return (f'<form method="post" action="{escape(self.url or "")}" target="_top">{inputs}'
                f'<button type="submit">{escape(self.label)}</button></form>')


def redirect(code: str | None, recruitment: Recruitment, label: str) -> Completion:
    """Where a participant goes with one of the study's other codes (no consent, failed checks):
    back to Prolific with it, or the code shown (any other platform)."""
    if recruitment.platform == "prolific" and code:
        return Completion(code, f"{PROLIFIC_DONE}?{urlencode({'cc': code})}", label)
    return Completion(code or None, None, "")


PLATFORM_LINKS = {  # the query the platform fills in for each participant, ready to paste
    "prolific": "&PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}",
    "mturk": "",  # an external question: MTurk appends workerId, assignmentId, hitId and turkSubmitTo itself
    "other": "&pid=<the participant's id>",
}


def platform_link(link: str, platform: str) -> str:
    """The participants' link with ``platform``'s placeholders, to paste into the platform."""
    return link + PLATFORM_LINKS[platform]


def arm_trials(trials: list[dict], arm: str | None) -> set[int] | None:
    """The trials a participant of ``arm`` sees: that arm's counted trials and attention checks,
    and the practice trial whatever its method (None: no arms, every trial)."""
    if arm is None:
        return None
    return {i for i, t in enumerate(trials) if t.get("method") == arm or t.get("role") == "practice"}



def failed_checks(rows: list[dict], roles: list[str]) -> int:
    """How many attention checks a participant's answers (rows: trial_idx, score) failed."""
    return sum(1 for r in rows if roles[r["trial_idx"]] == "attention" and r["score"] <= 0)  # as exclusions count


def completion(settings: "FieldSettings", recruitment: Recruitment) -> Completion:
    code = settings.completion_code or None
    if recruitment.platform == "prolific" and code:
        return Completion(code, f"{PROLIFIC_DONE}?{urlencode({'cc': code})}", "Back to Prolific")
    if recruitment.platform == "mturk" and recruitment.meta.get("turkSubmitTo"):
        fields = {"assignmentId": recruitment.meta.get("assignmentId", ""), "completion": code or "done"}
        return Completion(code, f"{recruitment.meta['turkSubmitTo']}/mturk/externalSubmit", "Submit the HIT",
                          fields)
    return Completion(code, None, "")


@dataclass(frozen=True)
class FieldSettings:
    """What a design fixes for the field, before any participant comes (the exclusion rule
    included, so it cannot be chosen after seeing the data)."""

    consent: str = ""  # shown before anything is stored; empty: no consent step
    demographics: tuple[str, ...] = ()  # any of "age", "gender", "vision"
    practice: bool = False  # one practice trial first (answered, never counted)
    attention_rate: float = 0.0  # attention checks per counted trial (0.1: one per ten trials)
    min_median_seconds: float = 0.0  # exclude a participant whose median answer time is below
    max_failed_checks: int = 0  # exclude a participant who fails more attention checks than this
    require_complete: bool = True  # exclude a participant who did not answer every counted trial
    completion_code: str = ""
    # Prolific's codes for the other ends of a submission (empty: none): a participant who does not
    # consent, and one who fails more attention checks than ``max_failed_checks`` (the study ends
    # for them there, with this code), each sent back to the platform with it
    no_consent_code: str = ""
    failed_check_code: str = ""

    @classmethod
    def from_config(cls, config: Mapping) -> "FieldSettings":
        f = dict(config.get("field_settings") or {})
        unknown = set(f) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown field setting(s) {', '.join(sorted(unknown))}")
        f["demographics"] = tuple(f.get("demographics") or ())
        return cls(**f)

    def check(self) -> None:
        if not 0 <= self.attention_rate <= 0.5:
            raise ValueError(f"attention checks per trial must be within 0 and 0.5, not {self.attention_rate}")
        if self.min_median_seconds < 0 or self.max_failed_checks < 0:
            raise ValueError("the exclusion floors cannot be negative")
        unknown = set(self.demographics) - set(DEMOGRAPHICS)
        if unknown:
            raise ValueError(f"unknown demographics question(s) {', '.join(sorted(unknown))}; choose among "
                             f"{', '.join(DEMOGRAPHICS)}")

    def checks_for(self, n_trials: int) -> int:
        """How many attention checks a participant meets: the rate times the counted trials,
        rounded, at least one when the rate is positive."""
        return 0 if self.attention_rate <= 0 else max(1, int(round(self.attention_rate * n_trials)))


DEMOGRAPHICS = {
    "age": ("Your age", ("18-24", "25-34", "35-44", "45-54", "55-64", "65 or over", "I prefer not to say")),
    "gender": ("Your gender", ("woman", "man", "non-binary", "another", "I prefer not to say")),
    "vision": ("Do you have normal or corrected-to-normal vision, and normal colour vision?",
               ("yes", "no", "I prefer not to say")),
}


@dataclass(frozen=True)
class PlanItem:
    position: int
    trial: int  # index into the study's trial list
    flag: bool  # the stronger model is Robot A / options in stored order
    role: str  # "trial" | "attention" | "practice"


def plan(roles: list[str], seed: int, only=None) -> list[PlanItem]:
    """A participant's schedule: practice trials first (in stored order), then the counted
    trials in a random order with the attention checks at random places among them (never first,
    never two in a row when there are enough trials). The flag is balanced over the counted
    trials (exactly half, rounding at random) and random for the others. ``only``: the trials this
    participant sees (their between-subjects arm's); None: all."""
    rng = np.random.default_rng(seed)
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown trial role(s) {', '.join(sorted(unknown))}")
    mine = set(range(len(roles))) if only is None else set(only)
    counted = [i for i, r in enumerate(roles) if r == "trial" and i in mine]
    checks = [i for i, r in enumerate(roles) if r == "attention" and i in mine]
    practice = [i for i, r in enumerate(roles) if r in ("practice", "learn") and i in mine]
    order = [counted[j] for j in rng.permutation(len(counted))]
    n_a = len(order) // 2 + (int(rng.integers(0, 2)) if len(order) % 2 else 0)
    flags = np.zeros(len(order), bool)
    flags[:n_a] = True
    rng.shuffle(flags)
    flag_of = {t: bool(f) for t, f in zip(order, flags)}
    # checks go into distinct gaps after the first counted trial
    gaps = list(range(1, len(order) + 1))
    chosen = sorted(rng.choice(gaps, size=min(len(checks), len(gaps)), replace=False).tolist()) if gaps else []
    sequence, k = [], 0
    for pos, t in enumerate(order, start=1):
        sequence.append(t)
        while k < len(chosen) and chosen[k] == pos:
            sequence.append(checks[k])
            k += 1
    sequence += checks[k:]
    out = [PlanItem(p, t, bool(rng.integers(0, 2)), roles[t]) for p, t in enumerate(practice)]
    for t in sequence:
        role = roles[t]
        out.append(PlanItem(len(out), t, flag_of[t] if role == "trial" else bool(rng.integers(0, 2)), role))
    return out


def _median(v):
    return float(np.median(v)) if len(v) else float("nan")


def _shown_below(value: float, bound: float) -> str:
    """``value`` (below ``bound``) with the fewest decimals, from one, that still read below it:
    0.96 against 1 s is "0.96", not "1.0"."""
    for decimals in range(1, 7):
        text = f"{value:.{decimals}f}"
        if float(text) < bound:
            return text
    return f"{value:.6g}"


def exclusions(participants: list[str], rows: list[dict], roles: list[str], settings: FieldSettings,
               sees: dict | None = None) -> dict:
    """{participant: None (included) or the reason(s) for excluding them}. ``rows``: their
    responses (participant, trial_idx, score, seconds). An attention check passes when its
    score is positive (the real map preferred; the instructed option chosen). ``sees``:
    participant -> the trials they are shown (their between-subjects arm's, ``arm_trials``);
    complete means every counted trial of those."""
    counted_all = {i for i, r in enumerate(roles) if r == "trial"}
    checks = {i for i, r in enumerate(roles) if r == "attention"}
    by: dict[str, list[dict]] = {p: [] for p in participants}
    for r in rows:
        by.setdefault(r["participant"], []).append(r)
    out = {}
    for p, rs in by.items():
        reasons = []
        mine = (sees or {}).get(p)
        counted = counted_all if mine is None else counted_all & set(mine)
        answered = [r for r in rs if r["trial_idx"] in counted]
        if settings.require_complete and len(answered) < len(counted):
            reasons.append(f"incomplete ({len(answered)} of {len(counted)} trials)")
        failed = sum(1 for r in rs if r["trial_idx"] in checks and r["score"] <= 0)
        if failed > settings.max_failed_checks:
            reasons.append(f"failed {failed} attention check{'s' if failed != 1 else ''}")
        times = [r["seconds"] for r in answered if r.get("seconds") is not None]
        if settings.min_median_seconds > 0 and times and _median(times) < settings.min_median_seconds:
            reasons.append(f"median answer time {_shown_below(_median(times), settings.min_median_seconds)} s, "
                           f"below {settings.min_median_seconds:g} s")
        out[p] = "; ".join(reasons) or None
    return out


def included_rows(rows: list[dict], roles: list[str], excluded: dict) -> list[dict]:
    """The responses the statistics use: counted trials of included participants only."""
    counted = {i for i, r in enumerate(roles) if r == "trial"}
    return [r for r in rows if r["trial_idx"] in counted and excluded.get(r["participant"]) is None]


INCOMPLETE = "incomplete"  # how the reason for an unfinished study begins (see exclusions)


def approval_action(reason: str | None) -> str:
    """The platform's word for what to do with a submission: ``approve`` (included), ``return``
    (it did not finish: Prolific asks such participants to return the study, not to be rejected)
    or ``reject`` (excluded by the pre-registered rule: failed checks, answers too fast)."""
    if not reason:
        return "approve"
    return "return" if all(part.startswith(INCOMPLETE) for part in reason.split("; ")) else "reject"


def approval_rows(recruits: list[dict], excluded: dict) -> list[dict]:
    """The platform's approval list: one row per recruited participant, by their platform id, with
    the action in the platform's words (approve / reject / return) and the reason."""
    return [{"platform_id": r["platform_id"], "platform": r["platform"],
             "action": approval_action(excluded.get(r["token"])), "reason": excluded.get(r["token"]) or "",
             "participant": r["token"]} for r in recruits]


def canonical_hash(record: dict) -> tuple[str, str]:
    """(the record as canonical JSON: sorted keys, no spaces; its sha256)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return text, hashlib.sha256(text.encode()).hexdigest()


RAW_COLUMNS = ("response_id", "participant", "platform_id", "trial", "role", "position", "method", "image", "shown", "answer",
               "score", "seconds", "excluded_because", "created_at")


def raw_answers_csv(rows: list[dict], trials: list[dict], excluded: dict, platform_ids: dict | None = None) -> str:
    """Every stored answer as CSV (``RAW_COLUMNS``), for analysis elsewhere: the participant's
    platform id beside the studio's token (``platform_ids``: token -> id; empty for a link without
    one), what was shown as JSON (keys sorted), times in seconds to the millisecond, the exclusion
    reason or empty."""
    platform_ids = platform_ids or {}
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(RAW_COLUMNS)
    for r in rows:
        t = trials[r["trial_idx"]]
        created = r["created_at"]
        writer.writerow([r["id"], r["participant"], platform_ids.get(r["participant"]) or "", r["trial_idx"], t.get("role", "trial"), r["position"], t["method"],
                         t["image"].get("index", t["image"].get("file")), json.dumps(r["shown"], sort_keys=True),
                         r["answer"], r["score"], "" if r.get("seconds") is None else f"{r['seconds']:.3f}",
                         excluded.get(r["participant"]) or "",
                         created.isoformat() if hasattr(created, "isoformat") else created])
    return buf.getvalue()


def csv_text(rows: list[dict]) -> str:
    """Rows of one shape (the approval list) as CSV, with a header from the first row's keys."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def trial_counts(trials: list[dict]) -> dict[str, int]:
    """How a study's trials divide: counted ``trials``, ``attention`` checks and ``practice``
    trials, and ``shown`` (all of them). Every page counts them with this, so "trials" means the
    counted ones everywhere."""
    roles = [t.get("role", "trial") for t in trials]
    return {"trials": roles.count("trial"), "attention": roles.count("attention"),
            "practice": roles.count("practice"), "learn": roles.count("learn"), "shown": len(roles)}
