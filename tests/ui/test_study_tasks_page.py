"""The simulatability and bias-discovery studies through AppTest (issue 30, part 3): designed on
the Design page, a participant walks the learning phase and the test phase of their arm, and the
results page scores them against the model, per arm and between arms."""
from studies import Store
from tests.ui.test_field_pages import _visit
from tests.ui.test_study_pages import _admin, _page_text, env, fresh_throttle  # noqa: F401 (fixtures)


def test_a_simulatability_study_end_to_end(env):
    at = _admin("pages/study_designer.py")
    at.radio(key="design_kind").set_value("simulate").run()
    assert at.selectbox(key="design_model_simulate").value == "shapes-biased"
    at.checkbox(key="design_arms").check().run()
    at.multiselect(key="design_methods").set_value(["guided_gradcam", "none"]).run()
    at.number_input(key="design_n").set_value(4).run()
    at.number_input(key="design_learn").set_value(2).run()
    at.button(key="design_create").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    code = at.session_state["design_last_code"]
    store = Store()
    trials = store.trials(code)
    for n in range(2):
        p = _visit(code, PROLIFIC_PID=f"SIM{n}")
        assert "4 short questions" in _page_text(p)
        p.button(key="participate_start").click().run()
        token = p.query_params["p"]
        arm = store.arm(token)
        for _ in range(2):  # the learning phase: the robot's answer shown, nothing to choose
            assert any("to learn how it decides" in i.value for i in p.info)
            assert "The robot says this picture shows" in _page_text(p)
            p.button[0].click().run()  # "Seen" is the only option, chosen
            assert not p.exception, p.exception
        assert any("say what you think it will answer" in i.value for i in p.info)
        answered = 0
        while p.radio and "What will the robot say" in _page_text(p):
            (radio,) = p.radio
            t = trials[next(r for r in range(len(trials)) if trials[r]["method"] == arm and trials[r]["role"] == "trial"
                            and set(trials[r]["options"]) == set(radio.options)
                            and r not in {x["trial_idx"] for x in store.responses(code) if x["participant"] == token})]
            radio.set_value(t["model_says"] if n == 0 else t["object_class"])
            p.button[0].click().run()
            assert not p.exception
            answered += 1
        assert answered == 4 and any("All your answers are saved" in s.value for s in p.success)
    res = _admin("pages/study_results.py")
    res.selectbox(key="results_study").set_value(code).run()
    assert not res.exception
    summary = res.dataframe[[i for i, d in enumerate(res.dataframe) if "accuracy" in d.value.columns][0]].value
    assert "binomial p (vs 50%)" in summary.columns
    arms = [d.value for d in res.dataframe if "against" in d.value.columns][0]
    assert arms.iloc[0]["against"] == "none"


def test_a_bias_discovery_trial_asks_what_the_model_relies_on(env):
    at = _admin("pages/study_designer.py")
    at.radio(key="design_kind").set_value("bias").run()
    at.multiselect(key="design_methods").set_value(["guided_gradcam"]).run()
    at.number_input(key="design_n").set_value(2).run()
    at.button(key="design_create").click().run()
    assert not at.exception and not at.error
    p = _visit(at.session_state["design_last_code"])
    p.button(key="participate_start").click().run()
    (radio,) = p.radio
    assert radio.label == "What does the robot rely on to decide?"
    assert set(radio.options) == {"the shape", "the small mark in a corner", "the background"}


def test_a_design_is_screened_with_simulated_participants_on_the_page(env):
    at = _admin("pages/study_designer.py")
    at.radio(key="design_kind").set_value("simulate").run()
    at.checkbox(key="design_arms").check().run()
    at.multiselect(key="design_methods").set_value(["guided_gradcam", "none"]).run()
    at.number_input(key="design_n").set_value(6).run()
    at.button(key="design_create").click().run()
    at.number_input(key="screen_n").set_value(16).run()
    at.button(key="screen_run").click().run()
    assert not at.exception
    (done,) = [s.value for s in at.success if s.value.startswith("Power ")]
    assert "with 16 participants (simulated participants who read the maps (100 studies)" in done
