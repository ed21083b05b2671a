"""Field studies in real Chromium on two app processes (the entrypoint, two ports) sharing one
PostgreSQL: a participant whose requests alternate between the replicas finishes the study, each
answer stored once, each switch resuming at the next unanswered trial; a Prolific participant
resumes by PROLIFIC_PID on the other replica and gets the completion code and redirect; an MTurk
preview shows no trials and an accepted HIT ends with MTurk's external-submit form."""
import io
import re
from urllib.parse import urlencode

import pytest
from PIL import Image

from studies import Store
from tests.pgserver import free_port
from tests.ui.test_browser import ARGS, CHROMIUM, _settle, sync_playwright
from tests.test_deploy import serve, stop, wait_healthy

pytestmark = pytest.mark.slow
N = 4  # counted trials, plus one attention check


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def replicas(own_postgres):
    procs, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(serve(own_postgres.url, port))
            urls.append(f"http://127.0.0.1:{port}")
        for proc, url in zip(procs, urls):
            wait_healthy(int(url.rsplit(":", 1)[1]), proc)
        store = Store(own_postgres.url)
        trials = [{"method": "guided_gradcam", "label": "circle", "role": "trial"} for _ in range(N)]
        trials.append({"method": "guided_gradcam", "label": "circle", "role": "attention"})
        stimuli = {(i, s): _png((40 * i, 200 if s == "stronger" else 20, 90)) for i in range(N + 1)
                   for s in ("stronger", "weaker")}
        config = {"instructions": "Tell us which robot you trust.", "models": ["a", "b"], "stronger": "a",
                  "methods": ["guided_gradcam"],
                  "field_settings": {"consent": "Your answers are kept without your name.",
                                     "completion_code": "DONE77", "attention_rate": 0.25}}
        code = store.save_study("Which robot?", "trust", config, trials, stimuli)
        yield urls, store, code
        store.dispose()
    finally:
        for proc in procs:
            stop(proc)


def _progress(page) -> str:
    return page.locator('[data-testid="stProgress"]').first.inner_text()


def _answer(page):
    page.get_by_text("Robot A is slightly more reliable").click()
    page.get_by_role("button", name="Save answer and continue").click()
    _settle(page)


def _consent(page):
    page.wait_for_selector("text=Your answers are kept without your name", timeout=90_000)
    page.get_by_role("button", name="I agree and want to take part").click()
    _settle(page)


def test_a_participant_alternating_between_replicas_finishes_with_every_answer_once(replicas):
    (a, b), store, code = replicas
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1200, "height": 1400}).new_page()
        page.goto(f"{a}/?{urlencode({'study': code, 'pid': 'alt-1'})}")
        _settle(page)
        _consent(page)
        for k in range(N + 1):
            assert f"{k} of {N + 1} answered" in _progress(page)
            _answer(page)
            query = page.url.split("?", 1)[1]
            assert "p=" in query
            page.goto(f"{(b if k % 2 == 0 else a)}/?{query}")  # the next request lands on the other replica
            _settle(page)
        page.wait_for_selector("text=All your answers are saved", timeout=60_000)
        assert "DONE77" in page.locator("body").inner_text()
        browser.close()
    (token,) = store.participant_tokens(code)
    rows = store.responses(code)
    assert len(rows) == N + 1 and len({r["trial_idx"] for r in rows}) == N + 1
    assert all(r["seconds"] is not None for r in rows)
    assert store.recruits(code)[0]["platform_id"] == "alt-1"


def test_prolific_resumes_on_the_other_replica_and_mturk_previews_show_no_trials(replicas):
    (a, b), store, code = replicas
    ids = {"study": code, "PROLIFIC_PID": "6500abc", "STUDY_ID": "st9", "SESSION_ID": "se9"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context().new_page()
        page.goto(f"{a}/?{urlencode(ids)}")
        _settle(page)
        _consent(page)
        _answer(page)
        _answer(page)
        # a new browser session (no token in the link) with the same PROLIFIC_PID, on replica B
        page = browser.new_context().new_page()
        page.goto(f"{b}/?{urlencode(ids)}")
        _settle(page)
        assert "2 of 5 answered" in _progress(page)
        for _ in range(3):
            _answer(page)
        page.wait_for_selector("text=Your completion code", timeout=60_000)
        assert "DONE77" in page.locator("body").inner_text()
        link = page.get_by_role("link", name="Back to Prolific")
        assert link.get_attribute("href") == "https://app.prolific.com/submissions/complete?cc=DONE77"
        # an MTurk preview: the instructions, no consent, no trials
        page = browser.new_context().new_page()
        page.goto(f"{b}/?{urlencode({'study': code, 'assignmentId': 'ASSIGNMENT_ID_NOT_AVAILABLE', 'hitId': 'H'})}")
        _settle(page)
        body = page.locator("body").inner_text()
        assert "This is a preview of the task" in body and "Robot A" not in body
        assert page.get_by_role("button", name=re.compile("I agree")).count() == 0
        # an accepted HIT: at the end, MTurk's external-submit form (POST, the assignment id in it)
        page = browser.new_context().new_page()
        page.goto(f"{a}/?{urlencode({'study': code, 'workerId': 'W1', 'assignmentId': 'A1', 'hitId': 'H', 'turkSubmitTo': 'https://workersandbox.mturk.com'})}")
        _settle(page)
        _consent(page)
        for _ in range(5):
            _answer(page)
        form = page.locator('form[action="https://workersandbox.mturk.com/mturk/externalSubmit"]')
        form.wait_for(timeout=60_000)
        assert form.get_attribute("method") == "post"
        assert form.locator('input[name="assignmentId"]').get_attribute("value") == "A1"
        assert form.get_by_role("button", name="Submit the HIT").count() == 1
        browser.close()
    prolific, mturk = store.recruits(code)
    assert prolific["meta"] == {k: v for k, v in ids.items() if k != "study"}
    assert mturk["platform"] == "mturk" and mturk["meta"]["assignmentId"] == "A1"
    assert len(store.participant_tokens(code)) == 2 and len(store.responses(code)) == 10


def test_closing_a_study_asks_first_and_the_page_says_closed(tmp_path):
    """In Chromium the study picker kept its old label "(trust, open)" after closing (a keyed
    selectbox keeps the chosen option's text when only its label changes): the state is said
    under the picker instead, and closing asks for a confirmation."""
    from tests.ui.test_security_browser import _start, _stop
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    store = Store(url)
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(png, format="PNG")
    config = {"instructions": "x", "models": ["shapes-resnet", "shapes-fc"], "stronger": "shapes-resnet",
              "methods": ["guided_gradcam"]}
    store.save_study("Which robot?", "trust", config, [{"method": "guided_gradcam", "label": "circle"}],
                     {(0, s): png.getvalue() for s in ("stronger", "weaker")})
    store.dispose()
    proc, server = _start("ui.launch", url, tmp_path / "models")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
            page.goto(f"{server}/study_results")
            _settle(page)
            page.locator("input[type=password]").first.fill("adm1n")
            page.keyboard.press("Enter")
            _settle(page)

            def said():
                return [line for line in page.inner_text("body").splitlines() if "This study is" in line
                        or "(trust" in line]
            assert "This study is open: it takes participants and answers." in said()
            page.get_by_role("button", name="Close the study").click()
            _settle(page)
            assert "for good?" in page.inner_text("body") and "This study is closed" not in page.inner_text("body")
            page.get_by_role("button", name="Yes, close it").click()
            _settle(page)
            assert said() == ["This study is closed: it takes no more participants or answers."]
            assert "open" not in page.locator('[data-testid="stSelectbox"]').first.inner_text()
            browser.close()
    finally:
        _stop(proc)


def test_a_prolific_participant_on_a_phone_walks_a_two_arm_study(own_postgres):
    """Issue 30: two Prolific participants on a phone-sized screen join a two-arm study (a map
    against no explanation): each is drawn one arm and sees only its trials; on the map arm Robot
    A and Robot B sit side by side, each named above its picture, inside the screen."""
    from studies.participants import arm_for
    port = free_port()
    proc = serve(own_postgres.url, port)
    url = f"http://127.0.0.1:{port}"
    store = Store(own_postgres.url)
    try:
        wait_healthy(port, proc)
        arms = ["guided_gradcam", "none"]
        trials = [{"method": m, "label": "circle", "role": "trial"} for m in arms for _ in range(2)]
        stimuli = {(i, s): _png((60 * i, 200 if s == "stronger" else 20, 90)) for i in range(4)
                   for s in ("stronger", "weaker")}
        config = {"instructions": "Tell us which robot you trust.", "models": ["a", "b"], "stronger": "a",
                  "methods": arms, "arms": True, "seed": 0, "field_settings": {"completion_code": "ARMS42"}}
        code = store.save_study("Which robot?", "trust", config, trials, stimuli)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for seq in range(2):
                page = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
                page.goto(f"{url}/?{urlencode({'study': code, 'PROLIFIC_PID': f'phone{seq}', 'STUDY_ID': 's'})}")
                _settle(page)
                assert "2 short questions" in page.locator("body").inner_text()
                page.get_by_role("button", name="Start").click()
                _settle(page)
                arm = arm_for(seq, arms, 0)
                for _ in range(2):
                    page.wait_for_selector("text=Which robot is more reliable?", timeout=60_000)
                    body = page.locator("body").inner_text()
                    assert ("Here is what each one looked at" in body) == (arm == "guided_gradcam")
                    a, b = (page.locator(f'img[alt="Robot {x}"]').bounding_box() for x in "AB")
                    assert abs(a["y"] - b["y"]) < 2 and a["x"] + a["width"] <= b["x"]  # side by side
                    assert b["x"] + b["width"] <= 390 and a["width"] > 120  # inside the screen, not tiny
                    names = [page.get_by_text(f"Robot {x}", exact=True).bounding_box() for x in "AB"]
                    assert all(n["y"] + n["height"] <= box["y"] + 1 for n, box in zip(names, (a, b)))  # above
                    _answer(page)
                page.wait_for_selector("text=Your completion code", timeout=60_000)
                link = page.get_by_role("link", name="Back to Prolific")
                assert link.get_attribute("href").endswith("?cc=ARMS42")
            browser.close()
        tokens = {r["platform_id"]: r["token"] for r in store.recruits(code)}
        admin_arms = store.arms(code)
        assert sorted(admin_arms[tokens[f"phone{s}"]] for s in range(2)) == sorted(arms)
        for r in store.responses(code):
            assert trials[r["trial_idx"]]["method"] == admin_arms[r["participant"]]
    finally:
        store.dispose()
        stop(proc)


def test_a_simulatability_study_runs_end_to_end_in_the_browser(own_postgres):
    """Issue 30: the learning phase (the robot's answer and its map) and then the test phase
    (predict the robot's answer from its map), in Chromium, each answer stored and scored against
    the model."""
    from studies import design
    d = design.StudyDesign("simulate", "What will the robot say?", ("shapes-biased",), methods=("guided_gradcam",),
                           n_images=2, source={"source": "shapes", "seed": 31000, "candidates": 100, "learn": 2},
                           field_settings={"completion_code": "SIMDONE"})
    config, trials, stimuli = design.build_study(d)
    port = free_port()
    proc = serve(own_postgres.url, port)
    store = Store(own_postgres.url)
    try:
        wait_healthy(port, proc)
        code = store.save_study(d.title, d.kind, config, trials, stimuli)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_context(viewport={"width": 1000, "height": 1200}).new_page()
            page.goto(f"http://127.0.0.1:{port}/?{urlencode({'study': code, 'PROLIFIC_PID': 'simweb1'})}")
            _settle(page)
            page.get_by_role("button", name="Start").click()
            _settle(page)
            for _ in range(2):
                page.wait_for_selector("text=to learn how it decides", timeout=60_000)
                assert "The robot says this picture shows" in page.locator("body").inner_text()
                page.get_by_role("button", name="Save answer and continue").click()
                _settle(page)
            for _ in range(2):
                page.wait_for_selector("text=What will the robot say this picture shows?", timeout=60_000)
                page.locator('[data-testid="stRadio"] [role="radiogroup"] label').first.click()
                page.get_by_role("button", name="Save answer and continue").click()
                _settle(page)
            page.wait_for_selector("text=Your completion code", timeout=60_000)
            assert "SIMDONE" in page.locator("body").inner_text()
            browser.close()
        rows = store.responses(code)
        assert len(rows) == 4
        for r in rows:
            t = trials[r["trial_idx"]]
            if t["role"] == "learn":
                assert r["score"] == 0
            else:
                assert r["score"] == int(t["options"][r["answer"]] == t["model_says"])
    finally:
        store.dispose()
        stop(proc)
