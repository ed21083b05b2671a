"""A two-arm study through AppTest (issue 30, part 2): Grad-CAM against no explanation, each
participant sees one arm only, drawn at joining and kept on resume, and the results page compares
the arms with participants as the unit."""
from collections import Counter

from studies import Store, field
from tests.ui.test_field_pages import _visit
from tests.ui.test_study_pages import _admin, _page_text, env, fresh_throttle  # noqa: F401 (fixtures)


def test_a_two_arm_study_end_to_end(env):
    at = _admin("pages/study_designer.py")
    at.checkbox(key="design_arms").check().run()
    at.multiselect(key="design_methods").set_value(["gradcam", "none"]).run()
    at.number_input(key="design_n").set_value(2).run()
    at.button(key="design_create").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    code = at.session_state["design_last_code"]
    store = Store()
    trials = store.trials(code)
    seen = {}
    for i in range(4):
        p = _visit(code, PROLIFIC_PID=f"ARM{i}")
        assert "2 short questions" in _page_text(p)  # one arm's trials, not both arms'
        p.button(key="participate_start").click().run()
        token = p.query_params["p"]
        arm = store.arm(token)
        texts = []
        while p.radio:
            texts.append(_page_text(p))
            (radio,) = p.radio
            radio.set_value(radio.options[0 if arm == "gradcam" else 2])
            p.button[0].click().run()
            assert not p.exception
        assert len(texts) == 2
        assert all(("Here is what each one looked at" in t) == (arm == "gradcam") for t in texts)
        assert {trials[r["trial_idx"]]["method"] for r in store.responses(code) if r["participant"] == token} == {arm}
        seen[token] = arm
        again = _visit(code, PROLIFIC_PID=f"ARM{i}")  # the same person back: the same participant and arm
        assert again.query_params["p"] == token and store.arm(token) == arm
    assert Counter(seen.values()) == Counter({"gradcam": 2, "none": 2})
    res = _admin("pages/study_results.py")
    res.selectbox(key="results_study").set_value(code).run()
    assert not res.exception
    (table,) = [d.value for d in res.dataframe if "against" in d.value.columns]
    row = table.iloc[0]
    assert (row["arm"], row["against"], row["participants"]) == ("gradcam", "none", "2 / 2")
    assert "none (fewer than 5 participants in an arm)" in row["95% CI"]
    assert field.arm_trials(trials, "gradcam") and field.arm_trials(trials, None) is None
