"""Planning on the Design page (issue 30): the participants needed and the cost shown as the
library computes them, the minimum-pay warning, a pilot study's answers as the effect, and the
plan stored in the new study's pre-registration record."""
import json

import pytest

import studies as studies_lib
from studies import plan as P
from tests.ui.test_study_pages import SECRET, _admin, _answer_all, _design, _participant, fresh_throttle  # noqa: F401


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_ADMIN_SECRET", SECRET)
    monkeypatch.setenv("STUDIO_DB_URL", f"sqlite:///{tmp_path / 'studies.sqlite'}")
    return tmp_path


def test_the_plan_is_shown_warned_and_pre_registered(env):
    at = _admin("pages/study_designer.py")
    at.radio(key="design_kind").set_value("discrimination").run()
    at.number_input(key="design_n").set_value(3).run()
    at.number_input(key="plan_accuracy").set_value(0.75).run()
    at.number_input(key="plan_pay").set_value(0.2).run()
    at.button(key="plan_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    n, power, how = P.participants_needed("binomial", 6, P.Effect(accuracy=0.75), 0.05, 0.8)
    assert any(f"**{n} participants** for a power of {power:.2f}" in s.value and "exact" in s.value
               for s in at.success)
    assert any("The pay is too low" in w.value and "below the platform's minimum of 9.00" in w.value
               for w in at.warning)
    at.button(key="design_create").click().run()
    assert not at.exception
    code = at.session_state["design_last_code"]
    record, _ = studies_lib.AdminStore().preregistration(code)
    planned = json.loads(record)["settings"]["plan"]
    assert planned["participants"] == n and planned["analysis"] == "binomial" and planned["how"] == "exact"
    assert planned["cost"]["warning"].startswith("the pay is")


def test_a_pilot_study_gives_the_effect_and_the_minutes(env):
    code = _design("trust", n=2)
    for k in (0, 4, 1):  # three participants: clearly A, clearly B, A
        _answer_all(_participant(code), lambda options, k=k: options[k])
    store = studies_lib.AdminStore()
    rows = store.responses(code)
    methods = {i: t["method"] for i, t in enumerate(store.trials(code))}
    effect = P.effect_from_pilot("sign", rows, methods, sorted(set(methods.values()))[0])
    minutes = P.minutes_per_participant(rows)
    assert len(minutes) == 3 and all(m > 0 for m in minutes)
    at = _admin("pages/study_designer.py")
    at.radio(key="plan_effect_source").set_value("pilot").run()
    assert not at.exception and not at.error
    assert any(f"The pilot: 3 participants; share of non-zero answers favouring the stronger model "
               f"{effect.favour:.2f}, ties {effect.ties:.2f}" in c.value for c in at.caption)
    at.button(key="plan_run").click().run()
    assert not at.exception
    trials = 20 * 2  # the design being planned (the page's defaults: 20 images, two methods), not the pilot's
    want = P.plan("sign", trials, effect, pay=1.5, fee_share=0.333, minimum_hourly=9.0, pilot_minutes=minutes)
    if want.participants is None:
        assert any(f"Even {P.MAX_PARTICIPANTS} participants" in w.value for w in at.warning)
    else:
        assert any(f"**{want.participants} participants**" in s.value and "pilot median of 3 (measured)" in s.value
                   for s in at.success)
