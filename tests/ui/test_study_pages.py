"""The study pages end to end through AppTest: a researcher designs a study on the shapes
models, two participants answer every trial blinded, the results page shows the score their
answers imply; and every refusal (no secret, wrong secret, unknown or closed code, database
down, a filter that leaves nothing) is a message, not a crash."""
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import model_zoo
from studies import design

ROOT = Path(__file__).resolve().parents[2]
SECRET = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fresh_throttle():
    """The wrong-secret throttle is per process: each test starts with no failures."""
    from ui import studies as ui_studies
    ui_studies.admin_throttle().succeeded()
    yield
    ui_studies.admin_throttle().succeeded()


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
    assert any(f"?study={code}" in c.value for c in at.code)
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
    parts += [re.sub(r"<[^>]+>", " ", el.proto.body) for el in at.get("html")]  # the trials' pictures
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


def test_a_trials_pictures_have_no_toolbar_over_the_words(env):
    """Streamlit's image toolbar (its fullscreen button, on hover) covered the class word beside
    a trial's picture: the pictures are plain images, with their labels."""
    code = _design(n=1, methods=("guided_gradcam",))
    at = _participant(code)
    at.button(key="participate_start").click().run()
    assert not at.exception and not at.get("image")
    bodies = [el.proto.body for el in at.get("html")]
    (pair,) = [b for b in bodies if "data:image/png;base64," in b]  # one row: Robot A, then Robot B
    # each name in bold above its own picture, and the two on one row on any screen (a phone too)
    assert pair.index("Robot A") < pair.index("base64,") < pair.index("Robot B") < pair.rindex("base64,")
    assert "flex-wrap:nowrap" in pair and pair.count("min(256px,44vw)") == 2
    import base64
    store = studies_lib_store()
    png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", pair).group(1))
    assert png.startswith(b"\x89PNG") and png in {store.stimulus(code, 0, s) for s in ("stronger", "weaker")}
    store.dispose()


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
    assert any("No study has this code" in e.value for e in at.error)
    code = _design(n=1, methods=("guided_gradcam",))
    at = _admin("pages/study_results.py")
    at.selectbox(key="results_study").set_value(code).run()
    assert any("No answers yet" in i.value for i in at.info)
    at.button(key="results_close").click().run()
    at.button(key="results_close_yes").click().run()
    at = _participant(code)
    assert any("This study is closed" in e.value for e in at.error)
    assert not at.button


def test_database_down(monkeypatch):
    monkeypatch.setenv("STUDIO_DB_URL", "postgresql+psycopg://postgres:pw@127.0.0.1:9/studies")
    at = _participant("abcd1234")
    assert not at.exception
    (err,) = at.error
    # a participant never sees the database's address or the driver's error
    assert "earlier answers are safe" in err.value
    assert "postgres" not in err.value and "127.0.0.1" not in err.value and "cannot be used" not in err.value


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


def test_crafted_study_code_is_never_rendered(env):
    """A ?study= value with a Markdown link and image used to render live (the browser fetched
    the image)."""
    crafted = "x](http://evil.example/a) ![t](http://evil.example/pixel.png) [y"
    at = _participant(crafted)
    assert not at.exception
    shown = [e.value for kind in ("title", "markdown", "caption", "info", "error", "warning", "success")
             for e in getattr(at, kind)]
    assert shown and not any("evil.example" in v or "](" in v for v in shown), shown


def test_a_failed_save_keeps_the_answer_and_retries(env, monkeypatch):
    code = _design(n=1, methods=("guided_gradcam",))
    at = _participant(code)
    at.button(key="participate_start").click().run()
    import studies as studies_lib
    from studies.participants import ParticipantStore
    real = ParticipantStore.record
    calls = []

    def down(self, *args, **kwargs):
        calls.append(args)
        raise studies_lib.StorageError("the study database (postgresql://admin:pw@db.internal/x) cannot be "
                                       "used: connection refused")
    monkeypatch.setattr(ParticipantStore, "record", down)
    monkeypatch.setattr("ui.studies.time.sleep", lambda s: None)
    choice = design.TRUST_SCALE[1][0]
    at.radio[0].set_value(choice)
    at.button[0].click().run()
    assert not at.exception and len(calls) == 3  # retried before giving up
    text = _page_text(at)
    assert "Saving failed, retrying: your answer is kept" in text
    assert "db.internal" not in text and "connection refused" not in text and "cannot be used" not in text
    assert at.radio[0].value == choice  # the chosen answer is kept, not discarded
    monkeypatch.setattr(ParticipantStore, "record", real)
    at.button(key="participate_retry").click().run()
    assert not at.exception
    assert "1 of 1 answered" in at.get("progress")[0].proto.text
    token = at.query_params["p"]
    store = studies_lib.Store(os.environ["STUDIO_DB_URL"])
    (row,) = store.responses(code)
    store.dispose()
    assert row["participant"] == token and row["answer"] == 1


def test_an_answer_survives_a_database_that_fails_before_the_save(env, monkeypatch):
    """The field report: the failure hit before the save (reading what was answered), the answer
    was dropped, and with the database back the trial showed nothing selected and no retry."""
    code = _design(n=1, methods=("guided_gradcam",))
    at = _participant(code)
    at.button(key="participate_start").click().run()
    import studies as studies_lib
    from studies.participants import ParticipantStore
    real_answered, real_record = ParticipantStore.answered, ParticipantStore.record
    saved = []

    def down(self, *args, **kwargs):
        raise studies_lib.StorageError("the study database (postgresql://admin:pw@db.internal/x) cannot be "
                                       "used: connection refused")
    monkeypatch.setattr(ParticipantStore, "answered", down)
    monkeypatch.setattr(ParticipantStore, "record", lambda self, *a, **k: saved.append(a) or real_record(self, *a, **k))
    choice = design.TRUST_SCALE[1][0]
    at.radio[0].set_value(choice)
    at.button[0].click().run()
    assert not at.exception and saved == []  # the save never ran
    text = _page_text(at)
    assert "earlier answers are safe" in text and "Your last answer is kept" in text and "db.internal" not in text
    monkeypatch.setattr(ParticipantStore, "answered", real_answered)  # the database is back
    at.run()
    assert not at.exception
    assert at.radio[0].value == choice  # the chosen answer, selected
    assert "Saving failed, retrying: your answer is kept" in _page_text(at)
    at.button(key="participate_retry").click().run()
    assert not at.exception and len(saved) == 1
    assert "1 of 1 answered" in at.get("progress")[0].proto.text
    store = studies_lib.Store(os.environ["STUDIO_DB_URL"])
    (row,) = store.responses(code)
    store.dispose()
    assert row["answer"] == 1


def test_wrong_admin_secrets_are_slowed(env, monkeypatch):
    from ui import studies as ui_studies
    clock = [1000.0]
    throttle = ui_studies.admin_throttle()
    monkeypatch.setattr(throttle, "clock", lambda: clock[0])
    for guess in ("a", "b", "c"):
        at = _app().run()
        at.switch_page("pages/study_designer.py").run()
        at.text_input(key="admin_secret_input").set_value(guess).run()
        assert any("not the admin secret" in e.value for e in at.error)
    at = _app().run()  # a new session does not start afresh: the count is the server's
    at.switch_page("pages/study_designer.py").run()
    at.text_input(key="admin_secret_input").set_value(SECRET).run()
    assert any("Too many wrong admin secrets: try again in 2 s" in e.value for e in at.error)
    assert not at.button
    clock[0] += 2.5
    at.text_input(key="admin_secret_input").set_value(SECRET + " ").run()  # a fourth wrong one: 4 s
    assert any("not the admin secret" in e.value for e in at.error)
    assert throttle.wait_s() == pytest.approx(4.0)
    clock[0] += 4.5
    at = _admin("pages/study_designer.py")  # the right secret, once the wait is over
    assert throttle.failures == 0


def test_close_shows_at_once_and_counts_read_well(env):
    code = _design(n=1, methods=("guided_gradcam",))
    at = _participant(code)
    _answer_all(at, lambda options: options[0])
    at = _admin("pages/study_results.py")
    at.selectbox(key="results_study").set_value(code).run()
    assert "1 trial; 1 participant, 1 answer." in _page_text(at) and "(s)" not in _page_text(at)
    assert "resamples of the participants" in _page_text(at)
    # one participant: no interval, and the page says why (it used to resample their answers)
    (summary,) = [d.value for d in at.dataframe if "95% CI" in d.value.columns]
    assert list(summary["95% CI"]) == ["none (fewer than 5 participants)"]
    assert "with fewer than 5 participants no interval is given" in _page_text(at)
    at.button(key="results_close").click().run()
    assert not at.exception  # closing asks first; cancelling keeps it open
    assert any("for good?" in w.value for w in at.warning) and not any("is closed" in i.value for i in at.info)
    at.button(key="results_close_cancel").click().run()
    assert any("This study is open" in c.value for c in at.caption)
    at.button(key="results_close").click().run()
    at.button(key="results_close_yes").click().run()
    assert not at.exception
    assert any("This study is closed" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "results_close"]
    assert not any("This study is open" in c.value for c in at.caption)


def _bulk_answers(code, n_participants, per_participant, score_of):
    from sqlalchemy import insert
    from datetime import datetime, timezone
    store = studies_lib_store()
    now = datetime.now(timezone.utc)
    from studies import storage
    with store.engine.begin() as conn:
        conn.execute(insert(storage.participants_t), [
            {"token": f"tok{p:05d}", "study_code": code, "seed": p, "created_at": now} for p in range(n_participants)])
        conn.execute(insert(storage.responses_t), [
            {"study_code": code, "participant": f"tok{p:05d}", "trial_idx": t, "position": t, "shown": {},
             "answer": score_of(p, t), "score": score_of(p, t), "created_at": now}
            for p in range(n_participants) for t in range(per_participant)])
    rows = store.responses(code)
    store.dispose()
    return rows


def studies_lib_store():
    import studies as studies_lib
    return studies_lib.Store(os.environ["STUDIO_DB_URL"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["trust", "discrimination"])
def test_results_page_with_5000_answers(env, kind):
    """binomial_two_sided overflowed past about 1,030 answers: the page would crash. 250
    participants x 20 trials, on both kinds of study."""
    import studies as studies_lib
    methods = ("gradcam",)
    code = _design(kind=kind, n=20, methods=methods)
    if kind == "trust":
        rows = _bulk_answers(code, 250, 20, lambda p, t: (p * 7 + t * 3) % 5 - 1)
    else:
        rows = _bulk_answers(code, 250, 20, lambda p, t: int((p * 7 + t * 3) % 5 < 3))
    assert len(rows) == 5000
    at = _admin("pages/study_results.py")
    at.selectbox(key="results_study").set_value(code).run()
    assert not at.exception, at.exception
    row = at.dataframe[0].value.iloc[0]
    assert row["answers"] == 5000 and row["participants"] == 250
    method_of = {i: "gradcam" for i in range(20)}
    if kind == "trust":
        (want,) = studies_lib.reliability_summary(rows, method_of, seed=0)
        assert row["relative reliability"] == round(want["relative_reliability"], 3)
        assert row["sign test p"] == f"{want['sign_test_p']:.3g}"
    else:
        (want,) = studies_lib.discrimination_summary(rows, method_of)
        k = sum(r["score"] for r in rows)
        assert row["accuracy"] == f"{k / 5000:.1%}"
        assert row["binomial p (vs 50%)"] == f"{want['binomial_p']:.3g}"
        assert want["binomial_p"] < 1e-40  # 60% of 5000: far from guessing, and computed


def test_design_page_says_what_it_made(env):
    folder = env / "mine"
    folder.mkdir()
    from model_zoo.shapes import world
    for i in range(4):  # scenes both models name alike (shapes-weak is right on most)
        Image.fromarray(world.make_scene(2024, i, "single", label=0).image).save(folder / f"circle{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.jpg").write_text("hello")
    at = _admin("pages/study_designer.py")
    assert at.text_input(key="design_title_trust").value == "Which robot do you trust?"
    at.radio(key="design_kind").set_value("discrimination").run()
    assert at.text_input(key="design_title_discrimination").value == "Which shape does the robot see?"
    at.radio(key="design_kind").set_value("trust").run()
    at.radio(key="design_source").set_value("folder").run()
    assert any("Enter the path of a folder" in i.value for i in at.info)
    assert at.button(key="design_create").disabled
    at.text_input(key="design_folder").set_value(str(folder)).run()
    at.checkbox(key="design_correct").set_value(False).run()
    at.number_input(key="design_n").set_value(50).run()
    at.multiselect(key="design_methods").set_value(["gradcam"]).run()
    at.button(key="design_create").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    warnings = " ".join(w.value for w in at.warning)
    config_kept = at.session_state["design_last_code"]
    assert "You asked for 50 images; only" in warnings
    assert "2 file(s) in the folder could not be read" in warnings
    from ui.studies import plain  # shown as written: the names are escaped for Markdown
    assert plain("broken.png") in warnings and plain("notes.jpg") in warnings
    code_block, prolific = at.code
    assert code_block.value.startswith("?study=" + config_kept) or f"/?study={config_kept}" in code_block.value
    # ready to paste into Prolific: the same link with Prolific's placeholders
    assert prolific.value == code_block.value + ("&PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}"
                                                 "&SESSION_ID={{%SESSION_ID%}}")


def test_participant_link_follows_the_admins_address(monkeypatch):
    import streamlit
    from ui import studies as ui_studies

    class Context:
        url = "https://studies.example.org/gradcam/study_designer"
        headers = {}
    monkeypatch.setattr(streamlit, "context", Context)
    assert ui_studies.participant_link("ab12cd34") == "https://studies.example.org/gradcam/?study=ab12cd34"

    class Behind:
        url = None
        headers = {"Host": "10.1.2.3:8600", "X-Forwarded-Proto": "https"}
    monkeypatch.setattr(streamlit, "context", Behind)
    assert ui_studies.participant_link("ab12cd34") == "https://10.1.2.3:8600/?study=ab12cd34"


def test_designer_offers_every_method_and_warns_of_class_blind_ones(env):
    import explainers
    at = _admin("pages/study_designer.py")
    box = at.multiselect(key="design_methods")
    assert box.options == [explainers.get_method(m).title for m in explainers.method_names()]
    at.radio(key="design_kind").set_value("discrimination").run()
    at.multiselect(key="design_methods").set_value(["gradcam", "eigencam"]).run()
    assert not at.exception
    assert any(w.value.startswith("Eigen-CAM: not class-discriminative") for w in at.warning)
    at.multiselect(key="design_methods").set_value(["gradcam_pp"]).run()
    assert not any("not class-discriminative" in w.value for w in at.warning)


def test_counts_read_as_english():
    """The field saw "1 participants" on the approval button: every count on the pages goes
    through ui.text.count."""
    from ui.text import count
    assert [count(n, "participant") for n in (0, 1, 2, 1200)] == \
        ["0 participants", "1 participant", "2 participants", "1,200 participants"]


def test_take_part_shows_its_title_above_the_code_box(env):
    """The Study code box sat above the page's title; with a code typed, the title is the study's."""
    code = _design(n=1, methods=("guided_gradcam",))
    at = _app().run()
    at.switch_page("pages/participate.py").run()
    kinds = [type(e).__name__ for e in at.main if type(e).__name__ in ("Title", "TextInput")]
    assert kinds[:2] == ["Title", "TextInput"], kinds
    assert at.title[0].value == "Take part in a study"
    at.text_input(key="participate_code").set_value(code).run()
    assert not at.exception and at.title[0].value == "Which robot do you trust?"  # the study's own title
    kinds = [type(e).__name__ for e in at.main if type(e).__name__ in ("Title", "TextInput")]
    assert kinds[:2] == ["Title", "TextInput"], kinds
