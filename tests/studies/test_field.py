"""Studies in the field, in the library: platform ids from links, completion, schedules with
practice and attention checks, the exclusion rule by hand, and storage of what the field adds
(resume by platform id, declines, answer times, the pre-registration record)."""
import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from studies import field, stats
from studies.storage import Store, StudyClosed, responses_t, views_t


def test_recruitment_from_each_platform():
    r = field.recruitment_from({"PROLIFIC_PID": "5f1a", "STUDY_ID": "s1", "SESSION_ID": "x9", "study": "abc"})
    assert (r.platform, r.platform_id, r.meta) == ("prolific", "5f1a", {"PROLIFIC_PID": "5f1a", "STUDY_ID": "s1",
                                                                        "SESSION_ID": "x9"})
    m = field.recruitment_from({"workerId": "W1", "assignmentId": "A1", "hitId": "H1",
                                "turkSubmitTo": "https://workersandbox.mturk.com/"})
    assert (m.platform, m.platform_id, m.preview) == ("mturk", "W1", False)
    assert m.meta["turkSubmitTo"] == "https://workersandbox.mturk.com"
    preview = field.recruitment_from({"assignmentId": field.MTURK_PREVIEW, "hitId": "H1"})
    assert preview.preview and not preview.identified
    assert field.recruitment_from({"pid": "p-7"}).platform == "generic"
    assert not field.recruitment_from({"study": "abc"}).identified
    with pytest.raises(ValueError, match="at most 128 letters, digits or"):
        field.recruitment_from({"pid": "<script>"})  # not a plain token
    with pytest.raises(ValueError, match="Mechanical Turk's own address"):
        field.recruitment_from({"workerId": "W", "assignmentId": "A", "turkSubmitTo": "https://evil.example"})


def test_completion_goes_back_to_the_platform():
    s = field.FieldSettings(completion_code="C0DE42")
    p = field.completion(s, field.recruitment_from({"PROLIFIC_PID": "P"}))
    assert p.url == "https://app.prolific.com/submissions/complete?cc=C0DE42" and p.code == "C0DE42"
    with pytest.raises(ValueError):  # a space is not part of an assignment id
        field.recruitment_from({"workerId": "W", "assignmentId": "A 1"})
    m = field.completion(s, field.recruitment_from({"workerId": "W", "assignmentId": "A1",
                                                     "turkSubmitTo": "https://www.mturk.com"}))
    assert m.url == "https://www.mturk.com/mturk/externalSubmit"
    assert m.fields == {"assignmentId": "A1", "completion": "C0DE42"}
    assert m.form_html() == ('<form method="post" action="https://www.mturk.com/mturk/externalSubmit" target="_top">'
                             '<input type="hidden" name="assignmentId" value="A1">'
                             '<input type="hidden" name="completion" value="C0DE42">'
                             '<button type="submit">Submit the HIT</button></form>')
    assert field.completion(s, field.recruitment_from({})).url is None


@pytest.mark.parametrize("seed", range(20))
def test_attention_checks_at_the_rate_in_every_schedule(seed):
    settings = field.FieldSettings(attention_rate=0.1, practice=True)
    n = 30
    roles = ["trial"] * n + ["attention"] * settings.checks_for(n) + ["practice"]
    assert settings.checks_for(n) == 3 and field.FieldSettings(attention_rate=0.01).checks_for(5) == 1
    plan = field.plan(roles, seed)
    assert [p.position for p in plan] == list(range(len(roles)))
    assert sorted(p.trial for p in plan) == list(range(len(roles)))  # each once
    assert plan[0].role == "practice"
    assert plan[1].role == "trial"  # never a check first
    checks = [i for i, p in enumerate(plan) if p.role == "attention"]
    assert len(checks) == 3 and all(b - a > 1 for a, b in zip(checks, checks[1:]))  # never two in a row
    flags = [p.flag for p in plan if p.role == "trial"]
    assert sum(flags) == n // 2  # balanced over the counted trials


def test_a_time_below_the_bound_never_reads_as_the_bound():
    """The field saw "median answer time 1.0 s, below 1 s": 0.96 s rounded to one decimal."""
    settings = field.FieldSettings(min_median_seconds=1.0, require_complete=False)
    for seconds, shown in ((0.96, "0.96"), (0.999, "0.999"), (0.5, "0.5"), (0.94, "0.9")):
        rows = [{"participant": "p", "trial_idx": 0, "score": 1, "seconds": seconds}]
        assert field.exclusions(["p"], rows, ["trial"], settings) == {"p": f"median answer time {shown} s, below 1 s"}


def test_exclusions_and_statistics_by_hand():
    roles = ["trial", "trial", "trial", "attention"]
    settings = field.FieldSettings(max_failed_checks=0, min_median_seconds=2.0)
    rows = [  # p1: fine; p2: failed the check; p3: too fast; p4: incomplete
        *[{"participant": "p1", "trial_idx": t, "score": s, "seconds": 4.0} for t, s in ((0, 2), (1, 1), (2, 1), (3, 1))],
        *[{"participant": "p2", "trial_idx": t, "score": s, "seconds": 5.0} for t, s in ((0, 2), (1, 2), (2, 2), (3, -2))],
        *[{"participant": "p3", "trial_idx": t, "score": s, "seconds": 0.5} for t, s in ((0, -2), (1, -2), (2, -1), (3, 1))],
        *[{"participant": "p4", "trial_idx": t, "score": s, "seconds": 3.0} for t, s in ((0, 1), (3, 2))],
    ]
    out = field.exclusions(["p1", "p2", "p3", "p4", "p5"], rows, roles, settings)
    assert out == {"p1": None, "p2": "failed 1 attention check",
                   "p3": "median answer time 0.5 s, below 2 s", "p4": "incomplete (1 of 3 trials)",
                   "p5": "incomplete (0 of 3 trials)"}
    used = field.included_rows(rows, roles, out)
    assert [(r["participant"], r["trial_idx"]) for r in used] == [("p1", 0), ("p1", 1), ("p1", 2)]  # no check
    (summary,) = stats.reliability_summary(used, {0: "m", 1: "m", 2: "m"})
    assert summary["relative_reliability"] == pytest.approx(4 / 3) and summary["participants"] == 1
    recruits = [{"platform": "prolific", "platform_id": f"PID{p}", "token": p} for p in ("p1", "p2", "p3", "p4")]
    approvals = field.approval_rows(recruits, out)
    # the platform's own words: approve the included, reject by the pre-registered rule, ask the
    # participant who did not finish to return the study
    assert [(a["platform_id"], a["action"]) for a in approvals] == [
        ("PIDp1", "approve"), ("PIDp2", "reject"), ("PIDp3", "reject"), ("PIDp4", "return")]
    assert approvals[1] == {"platform_id": "PIDp2", "platform": "prolific", "action": "reject",
                            "reason": "failed 1 attention check", "participant": "p2"}
    assert list(approvals[0]) [:3] == ["platform_id", "platform", "action"]
    assert field.approval_action("incomplete (1 of 3 trials); failed 1 attention check") == "reject"


def _study(store, n=3):
    trials = [{"method": "m", "label": "circle", "role": "trial"} for _ in range(n)]
    stimuli = {(i, s): bytes([i]) * 8 for i in range(n) for s in ("stronger", "weaker")}
    return store.save_study("t", "trust", {"weights_sha256": {"a": "11", "b": "22"}}, trials, stimuli), stimuli


def test_storage_of_the_field(db_url):
    store = Store(db_url)
    code, stimuli = _study(store)
    a = store.enrol(code, "prolific", "PID1", {"PROLIFIC_PID": "PID1"})
    again = store.enrol(code, "prolific", "PID1", {"PROLIFIC_PID": "PID1"})
    assert not a.resumed and again.resumed and again.token == a.token
    assert store.enrol(code, "mturk", "PID1").token != a.token  # another platform, another person
    assert [r["platform_id"] for r in store.recruits(code)] == ["PID1", "PID1"]
    store.decline(code)
    assert store.declines(code) == 1 and len(store.participant_tokens(code)) == 2  # a decline adds no one
    store.save_demographics(a.token, {"age": "25-34"})
    store.save_demographics(a.token, {"age": "65 or over"})  # a double submit keeps the first
    assert store.demographics(code) == [{"participant": a.token, "age": "25-34"}]
    # answer times: from the first showing to the commit, measured by the server
    store.mark_shown(a.token, 0)
    with store.engine.begin() as conn:  # pretend it was shown 3 s ago
        (shown,) = conn.execute(select(views_t.c.shown_at).where(views_t.c.token == a.token)).one()
        conn.execute(views_t.update().where(views_t.c.token == a.token).values(shown_at=shown - timedelta(seconds=3)))
    store.mark_shown(a.token, 0)  # a reload keeps the first time
    assert store.record(a.token, 0, 0, {}, 2, 2)
    assert not store.record(a.token, 0, 0, {}, 2, 2)  # once
    assert store.record(a.token, 1, 1, {}, 1, 1)  # never shown: no time
    rows = {r["trial_idx"]: r for r in store.responses(code)}
    assert 3.0 <= rows[0]["seconds"] < 10 and rows[1]["seconds"] is None
    # the pre-registration record: canonical JSON with its own hash and the stimuli's
    text, digest = store.preregistration(code)
    assert hashlib.sha256(text.encode()).hexdigest() == digest
    record = json.loads(text)
    assert record["stimuli_sha256"]["0/stronger"] == hashlib.sha256(stimuli[(0, "stronger")]).hexdigest()
    assert record["weights_sha256"] == {"a": "11", "b": "22"} and len(record["trials"]) == 3
    store.close_study(code)
    with pytest.raises(StudyClosed):
        store.enrol(code, "prolific", "NEW")
    assert store.enrol(code, "prolific", "PID1").resumed  # a returning participant still finds their token


def test_an_old_database_gains_the_new_column(tmp_path):
    import sqlite3
    path = tmp_path / "old.sqlite"
    Store(f"sqlite:///{path}")
    con = sqlite3.connect(path)  # make it look like a database of the previous version
    con.executescript("ALTER TABLE responses DROP COLUMN seconds;")
    con.close()
    store = Store(f"sqlite:///{path}")
    code, _ = _study(store)
    token = store.join(code)
    assert store.record(token, 0, 0, {}, 1, 1)
    assert "seconds" in {c.name for c in responses_t.columns}
    assert store.responses(code)[0]["seconds"] is None


def test_the_raw_answers_csv_is_json_not_python():
    """The field found Python reprs ({'robot_a': 'stronger'}) in the shown column: JSON now."""
    import csv
    import io
    import json
    from datetime import datetime, timezone
    trials = [{"method": "gradcam", "image": {"index": 7}, "role": "trial"},
              {"method": "gradcam", "image": {"file": "a.png"}, "role": "attention"}]
    when = datetime(2026, 12, 5, tzinfo=timezone.utc)
    rows = [{"id": 1, "participant": "p1", "trial_idx": 0, "position": 0, "shown": {"robot_a": "stronger", "x": None},
             "answer": 2, "score": 2, "seconds": 1.23456, "created_at": when},
            {"id": 2, "participant": "p2", "trial_idx": 1, "position": 3, "shown": {"options": ["a", "b"]},
             "answer": 0, "score": -1, "seconds": None, "created_at": when}]
    table = list(csv.DictReader(io.StringIO(field.raw_answers_csv(rows, trials, {"p2": "too fast"}))))
    assert tuple(table[0]) == field.RAW_COLUMNS
    assert json.loads(table[0]["shown"]) == {"robot_a": "stronger", "x": None}
    assert json.loads(table[1]["shown"]) == {"options": ["a", "b"]}
    assert [t["role"] for t in table] == ["trial", "attention"] and [t["image"] for t in table] == ["7", "a.png"]
    assert table[0]["seconds"] == "1.235" and table[1]["seconds"] == "" and table[1]["excluded_because"] == "too fast"
    assert table[0]["created_at"] == "2026-12-05T00:00:00+00:00"
    assert field.csv_text([{"a": 1, "b": "x"}]) == "a,b\r\n1,x\r\n" and field.csv_text([]) == ""
