"""Security in real Chromium (issue 25): a participant's deep link on a freshly started server
shows the study alone; a deep link to a page runs through the navigation (the sidebar is there);
nothing one visitor uploads or types is rendered live for another.

A local HTTP server counts requests: every hostile string below points its images and links at
it, so a single request means something rendered live. The servers are started fresh for each
first request, both as ``streamlit run dashboard.py`` (the pages' guard) and as ``python -m
ui.launch`` (what ./studio dashboard and the container run)."""
import http.server
import io
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from PIL import Image

import model_zoo
from studies import Store
from tests.ui.test_browser import ARGS, CHROMIUM, _choose, _free_port, _settle, sync_playwright

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802  (http.server's name)
        _Counter.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def tracker():
    _Counter.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Counter.hits
    server.shutdown()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    db = tmp_path_factory.mktemp("security_db") / "studies.db"
    url = f"sqlite:///{db}"
    store = Store(url)
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(png, format="PNG")
    trials = [{"method": "guided_gradcam", "label": "circle", "role": "trial"}]
    stimuli = {(0, s): png.getvalue() for s in ("stronger", "weaker")}
    config = {"instructions": "Tell us which robot you trust.", "models": ["shapes-resnet", "shapes-fc"],
              "stronger": "shapes-resnet", "methods": ["guided_gradcam"]}
    code = store.save_study("Which robot?", "trust", config, trials, stimuli)
    store.dispose()
    return url, code


def _start(how: str, db_url: str, models_dir: Path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "STREAMLIT_"))}
    env.update(STUDIO_DB_URL=db_url, STUDIO_ADMIN_SECRET="adm1n", STUDIO_MODELS_DIR=str(models_dir),
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    command = [sys.executable, "-m", "streamlit", "run", "dashboard.py"] if how == "streamlit run" else \
        [sys.executable, "-m", "ui.launch"]
    proc = subprocess.Popen([*command, "--server.headless", "true", "--server.port", str(port),
                             "--server.address", "127.0.0.1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{how}: the app did not become healthy in 120 s")


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _page(browser):
    page = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
    return page


def _no_live_content(page, tracker_url: str):
    """No image or link on the page points at the tracker; no error page."""
    assert page.locator(f'img[src^="{tracker_url}"]').count() == 0
    assert page.locator(f'a[href^="{tracker_url}"]').count() == 0
    assert page.locator('a[href*="evil.example"]').count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.parametrize("how", ["streamlit run", "ui.launch"])
def test_a_participant_link_on_a_fresh_server_shows_the_study_alone(study, tmp_path, how):
    db_url, code = study
    proc, url = _start(how, db_url, tmp_path / "models")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = _page(browser)
            page.goto(f"{url}/model_zoo?study={code}")  # the first request this server serves
            _settle(page)
            page.wait_for_selector("text=Tell us which robot you trust", timeout=90_000)
            body = page.locator("body").inner_text()
            assert "Which robot?" in body
            for leak in ("Model zoo", "shapes-resnet", "shapes-fc", "Explore", "Design a study", str(ROOT),
                         "STUDIO_MODELS_DIR"):
                assert leak not in body, (how, leak)
            assert page.locator('[data-testid="stSidebarNav"], [data-testid="stTopNav"]').count() == 0
            browser.close()
    finally:
        _stop(proc)


def test_a_deep_link_on_a_fresh_server_runs_through_the_navigation(study, tmp_path):
    """``/how_it_works`` as the first request of a ``streamlit run`` start ran the page file alone,
    with no sidebar; now the page guard reruns it through dashboard.py."""
    proc, url = _start("streamlit run", study[0], tmp_path / "models")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = _page(browser)
            page.goto(f"{url}/how_it_works")
            _settle(page)
            page.wait_for_selector('[data-testid="stSidebar"] [data-testid="stSelectbox"]', timeout=90_000)
            assert "Model" in page.locator('[data-testid="stSidebar"]').inner_text()
            sections = page.locator('[data-testid="stTopNav"]').inner_text()  # the navigation
            assert all(s in sections for s in ("Explain", "Diagnose", "Models", "Studies")), sections
            page.wait_for_selector("text=Channel weights", timeout=90_000)  # the page asked for
            assert page.locator('[data-testid="stException"]').count() == 0
            browser.close()
    finally:
        _stop(proc)


def test_nothing_one_visitor_uploads_or_types_renders_live_for_another(study, tmp_path, tracker):
    tracker_url, hits = tracker
    state = tmp_path / "shapes_resnet.pt"
    torch.save(model_zoo.load("shapes-resnet").model.state_dict(), state)
    hostile_names = tmp_path / "names.txt"
    hostile_names.write_text("\n".join([f"![t]({tracker_url}/names.png)", f"[click]({tracker_url}/n)", "c", "d",
                                        "e", "f", "g", "h"]))
    plain_names = tmp_path / "plain.txt"
    plain_names.write_text("\n".join("abcdefgh"))
    scene = Image.new("RGB", (96, 96), (20, 120, 200))
    buf = io.BytesIO()
    scene.save(buf, format="PNG")
    proc, url = _start("ui.launch", study[0], tmp_path / "models")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            a, b = _page(browser), _page(browser)  # two visitors: two browser contexts, two sessions
            a.goto(f"{url}/model_zoo")
            _settle(a)

            def upload(name: str, names: Path):
                form = a.locator('[data-testid="stForm"]').first
                _choose(a, "Architecture", "shapes-resnet")
                form.locator('[data-testid="stTextInput"] input').fill(name)
                form.locator('[data-testid="stTextInput"] input').press("Enter")
                uploaders = form.locator('[data-testid="stFileUploaderDropzoneInput"]')
                uploaders.nth(0).set_input_files(str(state))
                uploaders.nth(1).set_input_files(str(names))
                _settle(a)
                form.get_by_role("button", name="Add the model").click()
                _settle(a)

            upload("planted", hostile_names)  # refused: class names that would render as markup
            a.wait_for_selector('[data-testid="stAlertContentError"]', timeout=60_000)
            assert "class names are shown as plain text" in a.locator("body").inner_text()
            _no_live_content(a, tracker_url)
            upload("mine", plain_names)  # accepted, for this session alone
            a.wait_for_selector('[data-testid="stAlertContentSuccess"]', timeout=60_000)
            assert "this session alone sees it" in a.locator("body").inner_text()
            assert "my:mine." in a.locator("body").inner_text()
            # visitor A types a caption that is a tracking image and a link, and uploads an image
            # whose file name is one
            a.goto(f"{url}/captioning")
            _settle(a)
            box = a.locator('[data-testid="stTextInput"] input').first
            box.fill(f"a ![x]({tracker_url}/caption.png) [y](http://evil.example)")
            box.press("Enter")
            _settle(a)
            a.wait_for_selector('[data-testid="stAlertContentError"]', timeout=60_000)
            _no_live_content(a, tracker_url)
            a.goto(url)  # Explore, the default page, lives at the root
            _settle(a)
            a.locator('[data-testid="stRadio"] label').filter(has_text="Upload").first.click()
            _settle(a)
            a.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(
                {"name": f"![f]({tracker_url}/file.png).png", "mimeType": "image/png", "buffer": buf.getvalue()})
            _settle(a)
            _no_live_content(a, tracker_url)

            # visitor B: none of it
            for path in ("model_zoo", "", "how_it_works", "counterfactual", "captioning"):
                b.goto(f"{url}/{path}")
                _settle(b)
                body = b.locator("body").inner_text()
                assert "my:mine" not in body and "planted" not in body and "caption.png" not in body, path
                _no_live_content(b, tracker_url)
            b.goto(f"{url}/model_zoo")
            _settle(b)
            assert "my:" not in b.locator("body").inner_text()
            browser.close()
    finally:
        _stop(proc)
    assert hits == [], hits  # nothing fetched the tracker: no hostile string rendered live anywhere
