"""What a Prolific researcher expects (issue 30, part 4), each through AppTest: participants by
their platform id in every table and CSV, the approval CSV in the platform's words, the
no-consent code, the failed-check code, the completion code not carried to the next design,
demographics really optional, the end of the practice marked, and the raw answers as JSON."""
import csv
import io
import json

from studies import Store
from tests.ui.test_field_pages import _answer, _design_field, _visit
from tests.ui.test_study_pages import _admin, _page_text, env, fresh_throttle  # noqa: F401 (fixtures)


def _consent(at):
    at.button(key="participate_consent").click().run()
    assert not at.exception


def test_optional_demographics_and_the_end_of_the_practice(env):
    code = _design_field()
    at = _visit(code, PROLIFIC_PID="p0000a")
    _consent(at)
    assert "Each is optional" in _page_text(at)
    at.button[0].click().run()  # nothing answered: that is allowed
    assert not at.exception and not at.warning
    token = at.query_params["p"]
    assert Store().demographics(code) == [{"participant": token, "age": None}]
    assert any("A practice question first" in i.value for i in at.info)
    _answer(at, 1, lambda r: r.options[0])
    assert any("That was the practice. From here on, every question counts." in i.value for i in at.info)
    _answer(at, 1, lambda r: r.options[0])
    assert not any("That was the practice" in i.value for i in at.info)  # said once, at the first that counts
    assert token


def test_a_decline_on_prolific_goes_back_with_the_no_consent_code(env):
    at = _admin("pages/study_designer.py")
    at.text_area(key="design_consent").set_value("Your answers are kept.").run()
    at.text_input(key="design_no_consent_code_0").set_value("NOCONS1").run()
    at.number_input(key="design_n").set_value(1).run()
    at.button(key="design_create").click().run()
    code = at.session_state["design_last_code"]
    # the codes belong to that study: the next design starts without them
    at.run()
    assert at.text_input(key="design_no_consent_code_1").value == ""
    at.text_input(key="design_completion_1").set_value("DONE1").run()
    at.button(key="design_create").click().run()
    at.run()
    assert at.text_input(key="design_completion_2").value == ""
    second = at.session_state["design_last_code"]
    assert Store().study(second).config["field_settings"]["completion_code"] == "DONE1"
    assert Store().study(code).config["field_settings"]["completion_code"] == ""
    p = _visit(code, PROLIFIC_PID="p0000b", STUDY_ID="s", SESSION_ID="x")
    p.button(key="participate_decline").click().run()
    assert "Your no-consent code: **NOCONS1**" in _page_text(p)
    (link,) = p.get("link_button")
    assert link.proto.url == "https://app.prolific.com/submissions/complete?cc=NOCONS1"
    assert Store().participant_tokens(code) == []  # nothing stored but the decline


def test_failing_more_checks_than_allowed_ends_with_the_failed_check_code(env):
    at = _admin("pages/study_designer.py")
    at.radio(key="design_kind").set_value("discrimination").run()
    at.number_input(key="design_n").set_value(4).run()
    at.number_input(key="design_attention").set_value(0.5).run()
    at.number_input(key="design_max_failed").set_value(0).run()
    at.text_input(key="design_failed_check_code_0").set_value("FAILCHK").run()
    at.button(key="design_create").click().run()
    code = at.session_state["design_last_code"]
    p = _visit(code, PROLIFIC_PID="p0000d")
    p.button(key="participate_start").click().run()
    for _ in range(20):
        if not p.radio:
            break
        (radio,) = p.radio
        wrong = [o for o in radio.options if o not in radio.label]  # an attention check names the right one
        radio.set_value(wrong[0] if radio.label.startswith("To show you are reading") else radio.options[0])
        p.button[0].click().run()
        assert not p.exception
    assert "The study ends here" in _page_text(p) and "Your code: **FAILCHK**" in _page_text(p)
    (link,) = p.get("link_button")
    assert link.proto.url.endswith("?cc=FAILCHK")


def test_tables_and_csvs_name_participants_by_their_platform_id(env, monkeypatch):
    from studies import field
    written = {}
    for name in ("raw_answers_csv", "csv_text"):
        original = getattr(field, name)
        monkeypatch.setattr(field, name, lambda *a, _o=original, _n=name, **k: written.setdefault(_n, _o(*a, **k)))
    code = _design_field()
    for pid in ("PIDAAA1", "PIDBBB2"):
        at = _visit(code, PROLIFIC_PID=pid)
        _consent(at)
        at.button[0].click().run()
        left = len(Store().trials(code))
        _answer(at, left, lambda r: r.options[0])
    res = _admin("pages/study_results.py")
    res.selectbox(key="results_study").set_value(code).run()
    assert not res.exception
    tables = [d.value for d in res.dataframe]
    shown = {str(v) for t in tables if "participant" in t.columns for v in t["participant"]}
    assert {"PIDAAA1", "PIDBBB2"} <= shown
    # the CSVs the page offers: the raw answers and the approval list, both by platform id
    parsed = list(csv.DictReader(io.StringIO(written["raw_answers_csv"])))
    assert {r["platform_id"] for r in parsed} == {"PIDAAA1", "PIDBBB2"}
    assert all(isinstance(json.loads(r["shown"]), dict) for r in parsed)  # JSON, not Python reprs
    approvals = list(csv.DictReader(io.StringIO(written["csv_text"])))
    store = Store()
    trials = store.trials(code)
    settings = field.FieldSettings.from_config(store.study(code).config)
    excluded = field.exclusions(store.participant_tokens(code), store.responses(code),
                                [t.get("role", "trial") for t in trials], settings)
    want = [(r["platform_id"], field.approval_action(excluded[r["token"]])) for r in store.recruits(code)]
    assert [(a["platform_id"], a["action"]) for a in approvals] == want
    assert {a for _, a in want} <= {"approve", "reject", "return"}


def test_the_raw_answers_are_offered_when_everyone_is_excluded(env):
    code = _design_field()
    at = _visit(code, PROLIFIC_PID="PIDONLY1")
    _consent(at)
    at.button[0].click().run()
    _answer(at, 2, lambda r: r.options[0])  # the practice and one trial: incomplete, so excluded
    res = _admin("pages/study_results.py")
    res.selectbox(key="results_study").set_value(code).run()
    assert any("No counted answers from included participants yet" in i.value for i in res.info)
    assert any(b.label == "Raw answers (CSV)" for b in res.get("download_button"))
