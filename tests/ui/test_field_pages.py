"""Studies in the field through AppTest: a design with consent, demographics, a practice trial,
attention checks and a completion code; Prolific participants resume by their id and are sent
back with the code; an MTurk preview shows no trials; a decline stores nothing but itself; the
results page excludes by the design's rule and counts only the included participants."""
from streamlit.testing.v1 import AppTest

from studies import Store, field
from tests.ui.test_study_pages import ROOT, _admin, _page_text, env, fresh_throttle  # noqa: F401 (fixtures)


def _design_field(n=3, rate=0.34, **extra) -> str:
    at = _admin("pages/study_designer.py")
    at.multiselect(key="design_methods").set_value(["guided_gradcam"]).run()
    at.number_input(key="design_n").set_value(n).run()
    at.text_area(key="design_consent").set_value("You agree that your answers are kept anonymously.").run()
    at.multiselect(key="design_demographics").set_value(["age"]).run()
    at.checkbox(key="design_practice").check().run()
    at.number_input(key="design_attention").set_value(rate).run()
    at.text_input(key="design_completion_0").set_value("C0DE42").run()
    at.number_input(key="design_max_failed").set_value(0).run()
    for k, v in extra.items():
        at.number_input(key=k).set_value(v).run()
    at.button(key="design_create").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "1 attention check," in _page_text(at) and "a practice trial" in _page_text(at)
    code = at.session_state["design_last_code"]
    # the Studies table counts trials as the message does: the counted ones, checks and practice apart
    table = [d.value for d in at.dataframe if "attention checks" in d.value.columns][0]
    row = table[table["code"] == code].iloc[0]
    counted = int(row["trials"])
    assert f"code **{code}**, {counted} trials from" in "\n".join(s.value for s in at.success)
    assert (int(row["attention checks"]), int(row["practice"])) == (1, 1)
    return code


def _visit(code, **params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120)
    at.query_params["study"] = code
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def _consent_and_demographics(at):
    assert "You agree that your answers are kept anonymously" in _page_text(at)
    at.button(key="participate_consent").click().run()
    assert not at.exception
    at.radio(key="demo_age").set_value("25-34")
    at.button[0].click().run()
    assert not at.exception


def _answer(at, n, pick):
    roles = []
    for _ in range(n):
        (radio,) = at.radio
        roles.append("practice" if any("practice question" in i.value for i in at.info) else
                     "attention" if radio.label.startswith("To show you are reading") else "?")
        radio.set_value(pick(radio))
        at.button[0].click().run()
        assert not at.exception
    return roles


def test_prolific_participant_consents_resumes_and_gets_the_code(env):
    code = _design_field()
    db = Store()
    ids = {"PROLIFIC_PID": "5f00aa", "STUDY_ID": "st1", "SESSION_ID": "se1"}
    at = _visit(code, **ids)
    _consent_and_demographics(at)
    token = at.query_params["p"]
    _answer(at, 2, lambda r: r.options[0])  # the practice trial and one more
    # the same PROLIFIC_PID comes back without its token (a new tab, another replica): resumed
    at = _visit(code, **ids)
    assert at.query_params["p"] == token and not at.exception
    assert db.recruits(code)[0]["meta"] == ids and len(db.participant_tokens(code)) == 1
    left = sum(1 for t in db.trials(code)) - len(db.answered(token))
    _answer(at, left, lambda r: r.options[0])
    assert any("All your answers are saved" in s.value for s in at.success)
    assert "C0DE42" in _page_text(at)
    (link,) = at.get("link_button")
    assert link.proto.url == "https://app.prolific.com/submissions/complete?cc=C0DE42"
    assert db.demographics(code) == [{"participant": token, "age": "25-34"}]
    assert all(r["seconds"] is not None and r["seconds"] >= 0 for r in db.responses(code))


def test_mturk_preview_shows_no_trials_and_accepted_hits_submit(env):
    code = _design_field()
    at = _visit(code, assignmentId=field.MTURK_PREVIEW, hitId="H1")
    assert any("preview" in i.value for i in at.info) and not at.radio
    assert not at.button  # neither consent nor start in a preview
    assert Store().participant_tokens(code) == []
    at = _visit(code, workerId="W9", assignmentId="A7", hitId="H1", turkSubmitTo="https://workersandbox.mturk.com")
    _consent_and_demographics(at)
    _answer(at, len(Store().trials(code)), lambda r: r.options[0])
    assert not at.get("link_button")
    (form,) = at.get("html")
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in form.proto.body
    assert '<input type="hidden" name="assignmentId" value="A7">' in form.proto.body


def test_a_decline_stores_nothing_but_itself(env):
    code = _design_field()
    at = _visit(code, PROLIFIC_PID="nope1")
    at.button(key="participate_decline").click().run()
    assert any("Nothing about you was stored" in i.value for i in at.info)
    db = Store()
    assert db.declines(code) == 1 and db.participant_tokens(code) == [] and db.recruits(code) == []


def test_a_bad_platform_id_is_a_message(env):
    code = _design_field()
    at = _visit(code, PROLIFIC_PID="<img src=x>")
    assert not at.exception and "This study link is not valid" in at.error[0].value


def test_attention_checks_and_exclusions_on_the_results_page(env):
    from studies import participation
    code = _design_field(n=3, rate=0.34)
    db = Store()
    roles = [t["role"] for t in db.trials(code)]
    assert roles.count("attention") == 1 and roles.count("practice") == 1 and roles.count("trial") == 3

    def careful(radio):  # prefers the real map over noise: passes the check
        return participation.TRUST_SCALE[0][0] if "Robot" in "".join(radio.options) else radio.options[0]

    tokens = {}
    for who in ("good", "bad"):
        at = _visit(code, pid=who)
        _consent_and_demographics(at)
        token = at.query_params["p"]
        tokens[who] = token
        plan = field.plan(roles, db.participant(token)[1])
        for item in plan:
            (radio,) = at.radio
            if item.role == "attention":  # where the stronger slot (the real map) is shown
                a, _ = participation.trust_slots(item.flag)
                real_is_a = a == "stronger"
                want = participation.TRUST_SCALE[0 if real_is_a == (who == "good") else 4][0]
            else:
                want = participation.TRUST_SCALE[1][0]
            radio.set_value(want)
            at.button[0].click().run()
            assert not at.exception
    at = _admin("pages/study_results.py")
    at.selectbox(key="results_study").set_value(code).run()
    assert not at.exception
    text = _page_text(at)
    assert "1 included, 1 excluded" in text
    excluded = at.dataframe[0].value
    assert list(excluded["excluded because"]) == ["failed 1 attention check"]
    summary = at.dataframe[1].value
    assert int(summary["participants"][0]) == 1 and int(summary["answers"][0]) == 3  # no check, no practice
    labels = [b.label for b in at.get("download_button")]
    assert any(lb.startswith("Pre-registration record (JSON, sha256 ") for lb in labels)
    assert any(lb.startswith("Approval list for the platform (CSV: approve / reject / return, 2 participants)")
               for lb in labels)
