"""The study pages end to end through AppTest: a researcher designs a study on the shapes
models, two participants answer every trial blinded, the results page shows the score their
answers imply; and every refusal (no secret, wrong secret, unknown or closed code, database
down, a filter that leaves nothing) is a message, not a crash."""
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import model_zoo
from studies import design

ROOT = Path(__file__).resolve().parents[1]
SECRET = "correct horse battery staple"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_ADMIN_SECRET", SECRET)
    monkeypatch.setenv("STUDIO_DB_URL", f"sqlite:///{tmp_path / 'studies.sqlite'}")
    return tmp_path


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120)


def _admin(page: str) -> AppTest:
    at = _app().run()
    at.switch_page(page).run()
    at.text_input(key="admin_secret_input").set_value(SECRET).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def _design(kind="trust", n=3, methods=("guided_backprop", "guided_gradcam")) -> str:
    at = _admin("pages/study_designer.py")
    at.radio(key="design_kind").set_value(kind).run()
    at.multiselect(key="design_methods").set_value(list(methods)).run()
    at.number_input(key="design_n").set_value(n).run()
    at.button(key="design_create").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    code = at.session_state["design_last_code"]
    assert any(f"?study={code}" in m.value for m in at.markdown)
    return code


def _participant(code: str, token: str | None = None) -> AppTest:
    at = _app()
    at.query_params["study"] = code
    if token:
        at.query_params["p"] = token
    return at.run()


def _page_text(at) -> str:
    parts = [e.value for kind in ("title", "markdown", "caption", "info", "success", "error", "warning")
             for e in getattr(at, kind)]
    parts += [img.caption for el in at.get("image") for img in el.proto.imgs]
    parts += [o for r in at.radio for o in r.options]
    return " ".join(parts)


def _answer_all(at, pick) -> list[tuple[int, bool, str]]:
    """Answer every trial with ``pick(options) -> option``; return what was answered where."""
    at.button(key="participate_start").click().run()
    assert not at.exception
    token = at.query_params["p"]
    answered = []
    while at.radio:
        text = _page_text(at)
        assert not [m for m in model_zoo.list_models() if m in text]  # blinded on every trial
        assert "stronger" not in text and "weaker" not in text
        (radio,) = at.radio
        choice = pick(radio.options)
        radio.set_value(choice)
        at.button[0].click().run()  # the form's submit button
        assert not at.exception
        answered.append(choice)
    assert any("All your answers are saved" in s.value for s in at.success)
    return token, answered


def test_trust_study_end_to_end(env):
    code = _design(n=3)
    a_clearly, b_slightly = design.TRUST_SCALE[0][0], design.TRUST_SCALE[3][0]
    tokens = []
    for pick in (lambda options: a_clearly, lambda options: b_slightly):
        at = _participant(code)
        text = _page_text(at)
        for model_id in model_zoo.list_models():  # blinded: no model identity anywhere
            assert model_id not in text
        token, answered = _answer_all(at, pick)
        assert len(answered) == 6  # 3 images x 2 methods
        tokens.append(token)

    # the score those answers imply, from each participant's own blinded schedule
    from studies import Store
    import os
    store = Store(os.environ["STUDIO_DB_URL"])
    trials = store.trials(code)
    expected = {}
    for token, value in zip(tokens, (2, -1)):
        _, seed = store.participant(token)
        for t, a_is_stronger in design.schedule(len(trials), seed):
            expected.setdefault(trials[t]["method"], []).append(value if a_is_stronger else -value)
    store.dispose()

    at = _admin("pages/study_results.py")
    at.selectbox(key="results_study").set_value(code).run()
    assert not at.exception
    table = at.dataframe[0].value
    for method, scores in expected.items():
        row = table[table["method"] == method].iloc[0]
        assert row["relative reliability"] == round(sum(scores) / len(scores), 3)
        assert row["answers"] == 6 and row["participants"] == 2
    assert len(at.get("plotly_chart")) == 2
    csv = [b for b in at.get("download_button") if b.proto.label == "Raw answers (CSV)"]
    assert csv


def test_reload_continues_at_the_next_trial(env):
    code = _design(n=2)
    at = _participant(code)
    at.button(key="participate_start").click().run()
    token = at.query_params["p"]
    for _ in range(2):
        at.radio[0].set_value(design.TRUST_SCALE[2][0])
        at.button[0].click().run()
    again = _participant(code, token)  # a reload: same link, new session
    assert not again.exception
    progress = again.get("progress")[0].proto
    assert "2 of 4 answered" in progress.text
    assert again.radio  # the next trial is shown, not the instructions


def test_submit_without_a_choice_is_refused(env):
    code = _design(n=1, methods=("guided_gradcam",))
    at = _participant(code)
    at.button(key="participate_start").click().run()
    at.button[0].click().run()
    assert any("Pick an answer first" in w.value for w in at.warning)
    assert at.radio  # still on the same trial


def test_discrimination_study_end_to_end(env):
    code = _design(kind="discrimination", n=3, methods=("gradcam",))
    at = _participant(code)
    assert "The picture itself is hidden" in _page_text(at)
    token, answered = _answer_all(at, lambda options: options[0])
    at = _admin("pages/study_results.py")
    at.selectbox(key="results_study").set_value(code).run()
    row = at.dataframe[0].value.iloc[0]
    from studies import Store
    import os
    store = Store(os.environ["STUDIO_DB_URL"])
    correct = sum(r["score"] for r in store.responses(code))
    store.dispose()
    assert row["answers"] == 3 and row["accuracy"] == f"{correct / 3:.1%}"


def test_admin_pages_need_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DB_URL", f"sqlite:///{tmp_path / 's.sqlite'}")
    monkeypatch.delenv("STUDIO_ADMIN_SECRET", raising=False)
    for page in ("pages/study_designer.py", "pages/study_results.py"):
        at = _app().run()
        at.switch_page(page).run()
        assert not at.exception
        assert any("Admin pages are locked" in e.value for e in at.error), page
        assert not at.button and not at.dataframe
    monkeypatch.setenv("STUDIO_ADMIN_SECRET", SECRET)
    at = _app().run()
    at.switch_page("pages/study_designer.py").run()
    at.text_input(key="admin_secret_input").set_value("guess").run()
    assert any("not the admin secret" in e.value for e in at.error)
    assert not at.button


def test_unknown_and_closed_codes(env):
    at = _participant("zzzz9999")
    assert not at.exception
    assert any("no study has the code 'zzzz9999'" in e.value for e in at.error)
    code = _design(n=1, methods=("guided_gradcam",))
    at = _admin("pages/study_results.py")
    at.selectbox(key="results_study").set_value(code).run()
    assert any("No answers yet" in i.value for i in at.info)
    at.button(key="results_close").click().run()
    at = _participant(code)
    assert any("This study is closed" in e.value for e in at.error)
    assert not at.button


def test_database_down(monkeypatch):
    monkeypatch.setenv("STUDIO_DB_URL", "postgresql+psycopg://postgres:pw@127.0.0.1:9/studies")
    at = _participant("abcd1234")
    assert not at.exception
    (err,) = at.error
    assert "cannot be used" in err.value and "Nothing was lost" in err.value and ":pw@" not in err.value


def test_a_filter_that_leaves_nothing_is_named_at_design_time(env):
    folder = env / "images"
    folder.mkdir()
    Image.new("RGB", (64, 64), (120, 120, 120)).save(folder / "flat.png")
    (folder / "labels.csv").write_text("file,label\nflat.png,circle\n")
    at = _admin("pages/study_designer.py")
    at.radio(key="design_source").set_value("folder").run()
    at.text_input(key="design_folder").set_value(str(folder)).run()
    at.button(key="design_create").click().run()
    assert not at.exception
    assert any("The study cannot be made: no image left" in e.value for e in at.error)
