"""The whole app once in a real headless Chromium: start `streamlit run`, pick a model, upload an
image, change the class, see the map change; the screenshots stay in the test's tmp folder.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (dev requirements).
Without chromium the test is skipped, except where STUDIO_REQUIRE_BROWSER=1 (.ci/run sets it)."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.browser import nav_to
from model_zoo.shapes import gallery
from tests.ui.test_uploads_and_sessions import _bomb_png

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

REQUIRED = os.environ.get("STUDIO_REQUIRE_BROWSER") == "1"  # .ci/run: these tests must run, not skip
if not Path(CHROMIUM).exists():
    if REQUIRED:
        raise RuntimeError("STUDIO_REQUIRE_BROWSER=1 but chromium is missing (apt-get install -y chromium)")
    pytest.skip("chromium not installed (apt-get install -y chromium)", allow_module_level=True)
try:
    from playwright.sync_api import sync_playwright
except ImportError:
    if REQUIRED:
        raise RuntimeError("STUDIO_REQUIRE_BROWSER=1 but the playwright package is missing "
                           "(it is in requirements-dev.txt)") from None
    pytest.skip("playwright not installed (requirements-dev.txt)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def download_cache(tmp_path_factory, weights_server):
    """Where the app's 'test-download' model (tests/fixtures/download_plugin.py) puts the weights
    it downloads from the tests' local HTTP server."""
    return tmp_path_factory.mktemp("browser_cache") / weights_server.good_name


@pytest.fixture(scope="module")
def server(weights_server, download_cache):
    port = _free_port()
    env = {**os.environ, "STUDIO_MODELS": str(ROOT / "tests" / "fixtures" / "download_plugin.py"),
           "STUDIO_TEST_WEIGHTS_FILE": str(download_cache),
           "STUDIO_TEST_WEIGHTS_URL": f"https://download.example.org/models/{weights_server.good_name}",
           "STUDIO_WEIGHTS_BASE_URL": weights_server.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("streamlit did not become healthy in 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _settle(page):
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=90_000)


def _choose(page, label: str, option: str):
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label)
    box.locator("input").click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    _settle(page)


def _open_app(p, server, **context):
    """(browser, page): headless Chromium on the app's first page, its first run finished."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_context(**{"viewport": {"width": 1400, "height": 1600}, **context}).new_page()
    page.goto(server)
    _settle(page)
    return browser, page


def _gradcam_src(page) -> str:
    return page.locator('[data-testid="stImage"] img').nth(1).get_attribute("src")


def test_pick_model_upload_change_class(server, tmp_path):
    scene = next(s for name, s in gallery() if name.startswith("pair:"))  # two classes to switch between
    upload = tmp_path / "scene.png"
    scene.pil().resize((128, 128)).save(upload)
    with sync_playwright() as p:
        browser, page = _open_app(p, server)
        _choose(page, "Model", "shapes-fc")
        page.locator('[data-testid="stRadio"] label').filter(has_text="Upload").click()
        _settle(page)
        bomb = tmp_path / "bomb.png"
        bomb.write_bytes(_bomb_png())
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(bomb))
        _settle(page)
        page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=60_000)
        assert "400 MP is above the 40 MP limit" in page.locator("body").inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(upload))
        _settle(page)
        page.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        first = _gradcam_src(page)
        page.screenshot(path=str(tmp_path / "before.png"), full_page=True)
        body = page.locator("body").inner_text()
        other = next(o.name for o in scene.objects if f"Explaining {o.name}" not in body)
        _choose(page, "Class to explain", other)
        page.wait_for_function(
            "prev => document.querySelectorAll('[data-testid=\"stImage\"] img')[1].src !== prev",
            arg=first, timeout=60_000)
        assert f"Explaining {other}" in page.locator("body").inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "after.png"), full_page=True)
        # the other explaining pages work on the same model and upload (the shared sidebar)
        for title, text in (("Compare", "Two models, one image, one class"),
                            ("Counterfactual", "claims that masking its region"),
                            ("How it works", "Channel weights")):
            nav_to(page, title)
            page.wait_for_selector(f"text={text}", timeout=90_000)
            _settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0, title
            assert page.locator('[data-testid="stImage"] img').count() >= 2, title
        page.screenshot(path=str(tmp_path / "how_it_works.png"), full_page=True)
        browser.close()
    assert (tmp_path / "after.png").stat().st_size > 10_000


def _choose_now(page, label: str, option: str):
    """As _choose, without waiting for the rerun to finish."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label)
    box.locator("input").click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")


def test_two_sessions_at_once_get_their_own_maps(server, tmp_path):
    """Two browser sessions on one server (one cached model) change scene and layer at the same
    time; each one's downloaded map is what the library gives for its own image and layer."""
    import numpy as np
    import model_zoo
    import explainers
    jobs = [("pair: square + hexagon", "layer2"), ("pair: ellipse + square", "layer3")]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pages = [browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1600}).new_page()
                 for _ in jobs]
        for page in pages:
            page.goto(server)
        for page in pages:
            _settle(page)
            _choose(page, "Model", "shapes-resnet")  # the app opens on efficientnet-lite0
        for page, (scene, _) in zip(pages, jobs):  # both sessions rerun at once
            _choose_now(page, "Sample scene", scene)
        for page in pages:
            _settle(page)
        for page, (_, layer) in zip(pages, jobs):
            _choose_now(page, "Layer", layer)
        maps = []
        for page, (scene, layer) in zip(pages, jobs):
            _settle(page)
            # a choice typed while that session was still rerunning (both run at once on two
            # cores) can be lost with the widget it went to: choose again until the page shows it
            for attempt in range(4):
                try:
                    page.wait_for_function("text => document.body.innerText.includes(text)",
                                           arg=f"at layer {layer}", timeout=20_000)
                    break
                except Exception:
                    if attempt == 3:
                        raise
                    _settle(page)
                    _choose(page, "Layer", layer)
            _settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            with page.expect_download() as download:
                page.get_by_role("button", name=re.compile(r"^Grad-CAM of .*: values, unnormalised \(\.npy")).click()
            path = tmp_path / f"{layer}.npy"
            download.value.save_as(path)
            maps.append(np.load(path))
        browser.close()
    loaded = model_zoo.load("shapes-resnet")
    scenes = dict(gallery())
    for (scene, layer), shown in zip(jobs, maps):
        x = loaded.preprocess(scenes[scene].pil()).unsqueeze(0)
        expected = explainers.explain(loaded.model, x, layer=layer).attribution
        np.testing.assert_allclose(shown, expected, rtol=1e-4, atol=1e-6)


def _widget_text(page, testid: str, label: str) -> str:
    """What the widget shows: its text and the values of its inputs."""
    box = page.locator(f'[data-testid="{testid}"]').filter(has_text=label)
    inputs = box.locator("input")
    values = [inputs.nth(i).input_value() for i in range(inputs.count())]
    return " ".join([box.inner_text(), *values])


def test_widgets_agree_with_the_maps_after_an_upload(server, tmp_path):
    """After an upload the widgets showed jet / Grad-CAM while the maps and the downloads used
    viridis / Guided Backprop: change settings, upload, then read the widgets and the settings
    JSON, which must agree; and the choices carry to another page and back."""
    scene = dict(gallery())["pair: ellipse + square"]
    upload = tmp_path / "scene.png"
    scene.pil().save(upload)
    with sync_playwright() as p:
        browser, page = _open_app(p, server, accept_downloads=True)
        _choose(page, "Colour map", "viridis")
        _choose(page, "Method in detail", "Guided Backprop")
        page.locator('[data-testid="stRadio"] label').filter(has_text="Upload").click()
        _settle(page)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(upload))
        _settle(page)
        page.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert "viridis" in _widget_text(page, "stSelectbox", "Colour map")
        assert "Guided Backprop" in _widget_text(page, "stSelectbox", "Method in detail")
        with page.expect_download() as download:
            page.get_by_role("button", name="Settings to make it again (JSON)").click()
        path = tmp_path / "settings.json"
        download.value.save_as(path)
        settings = json.loads(path.read_text())
        assert settings["cmap"] == "viridis" and settings["method"] == "guided_backprop"
        assert settings["image"] == "scene.png"
        _settle(page)  # a download button's click reruns the page: wait for it
        with page.expect_download() as figure:  # drawn on the click: the image beside the map, 512 px each
            page.get_by_role("button", name=re.compile(r"^Guided Backprop of .* with the image \(PNG, 512 px\)")).click()
        figure_path = tmp_path / "figure.png"
        figure.value.save_as(figure_path)
        from PIL import Image
        with Image.open(figure_path) as im:
            assert im.format == "PNG" and im.width == 2 * 512 + 3 * (512 // 40) and im.height > 512
        page.screenshot(path=str(tmp_path / "after_upload.png"), full_page=True)
        nav_to(page, "Counterfactual")
        page.wait_for_selector("text=claims that masking its region", timeout=90_000)
        _settle(page)
        nav_to(page, "Explore")
        page.wait_for_selector("text=Method in detail", timeout=90_000)
        _settle(page)
        assert "viridis" in _widget_text(page, "stSelectbox", "Colour map")
        assert "Guided Backprop" in _widget_text(page, "stSelectbox", "Method in detail")
        browser.close()


def test_download_weights_in_the_app(server, download_cache, weights_server, tmp_path):
    """A model whose weights are missing: the sidebar's button downloads them from the local
    server (through STUDIO_WEIGHTS_BASE_URL), with a progress bar, and the model then explains."""
    assert not download_cache.exists()
    with sync_playwright() as p:
        browser, page = _open_app(p, server)
        _choose(page, "Model", "test-download")
        assert "are not on this machine yet" in page.locator("body").inner_text()
        page.get_by_role("button", name="Download weights").click()
        page.wait_for_selector("text=Explaining", timeout=90_000)
        _settle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stImage"] img').count() >= 5
        page.screenshot(path=str(tmp_path / "downloaded.png"), full_page=True)
        browser.close()
    assert download_cache.is_file() and download_cache.stat().st_size == weights_server.size
    assert [p.name for p in download_cache.parent.iterdir()] == [download_cache.name]  # no partial file left


def test_the_first_page_paints_the_real_model_on_the_composite(server, tmp_path):
    """A new user's first page: efficientnet-lite0 on the cat beside the espresso, the paper's
    four maps with a sentence under each; choosing espresso repaints the maps."""
    with sync_playwright() as p:
        browser, page = _open_app(p, server)
        page.wait_for_selector('[data-testid="stImage"] img', timeout=90_000)
        body = page.locator("body").inner_text()
        assert "efficientnet-lite0" in _widget_text(page, "stSelectbox", "Model")
        assert "Cat beside an espresso" in _widget_text(page, "stSelectbox", "Photo")
        assert "Where the evidence for" in body and "What speaks against" in body
        assert page.locator('[data-testid="stImage"] img').count() >= 5
        widths = page.eval_on_selector_all('[data-testid="stImage"] img', "els => els.map(e => e.naturalWidth)")
        assert all(w >= 224 for w in widths[:5]), widths  # painted, at the model's input size
        first = _gradcam_src(page)
        page.screenshot(path=str(tmp_path / "first_page.png"), full_page=True)
        _choose(page, "Class to explain", "espresso (")  # not "espresso maker"
        page.wait_for_function(
            "prev => document.querySelectorAll('[data-testid=\"stImage\"] img')[1].src !== prev",
            arg=first, timeout=60_000)
        assert "Explaining espresso" in page.locator("body").inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()


def test_every_page_once(server, tmp_path):
    """Every page of the navigation opens in the real browser without an exception, on the model
    the app opens on (efficientnet-lite0, real weights, the composite photo)."""
    titles = {"Explore": "Explore", "Compare": "Compare", "Counterfactual": "Counterfactual",
              "How it works": "How it works", "Evaluate": "Evaluate", "Detect": "Detect", "Segment": "Segment",
              "Captioning": "Captioning",
              "VQA": "Visual question answering", "Text prompt": "Text prompt",
              "Agents": "Reinforcement learning agents", "Mistakes": "Mistakes", "Adversarial": "Adversarial",
              "Neurons": "Neurons", "Bias": "Bias", "Model zoo": "Model zoo", "Take part": None,
              "Design a study": "Design a study", "Study results": "Study results"}
    with sync_playwright() as p:
        browser, page = _open_app(p, server)
        for title, heading in titles.items():
            nav_to(page, title)
            page.wait_for_selector(f'h1:has-text("{heading}")' if heading else "text=Enter the study code",
                                   timeout=90_000)
            _settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0, title
            if title == "Adversarial":  # a heavy page opens at once; its work runs when asked, then shows
                assert page.get_by_role("button", name="Run the attack").count() == 1
                page.get_by_role("button", name="Run the attack").click()
                page.wait_for_selector("text=Computed in", timeout=120_000)
                _settle(page)
                assert page.get_by_role("button", name="Run the attack").count() == 0
                assert page.locator('[data-testid="stImage"] img').count() >= 6
            if title in ("Detect", "Segment"):  # the held-out scene with its boxes or labels, and maps
                page.wait_for_selector('[data-testid="stImage"] img', timeout=60_000)
                _settle(page)
                assert page.locator('[data-testid="stImage"] img').count() >= 3
            if title == "Text prompt":  # the phrase's map, each word's, and the zero-shot prompt's map
                page.wait_for_selector("text=What each word adds", timeout=60_000)
                _settle(page)
                assert page.locator('[data-testid="stImage"] img').count() >= 4
            if title == "Agents":  # the shipped agent's episode: the frame, three maps and the contrast shown
                page.wait_for_selector("text=Computed in", timeout=60_000)
                assert page.locator('[data-testid="stImage"] img').count() >= 5
                assert page.get_by_role("button", name="Play").count() == 1
        page.screenshot(path=str(tmp_path / "last_page.png"), full_page=True)
        browser.close()


def test_the_metric_agreement_panel_in_the_browser(server, tmp_path):
    """Evaluate on the shapes world: three methods, two scenes, the panel computed on demand, its
    ranks table, tau heat map, sentence and downloads drawn without an exception."""
    with sync_playwright() as p:
        browser, page = _open_app(p, server)
        _choose(page, "Model", "shapes-resnet")
        nav_to(page, "Evaluate")
        page.wait_for_selector('h1:has-text("Evaluate")', timeout=90_000)
        _settle(page)
        images = page.locator('[data-testid="stNumberInput"]').filter(has_text="Images").locator("input")
        images.fill("2")
        images.press("Enter")
        _settle(page)
        methods = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Methods")
        methods.get_by_role("button", name="Clear all").click()
        _settle(page)
        for m in ("gradcam", "finercam", "centre"):  # Enter would take "Select all" of the filtered options
            methods.locator("input").click()
            page.keyboard.type(m)
            page.get_by_role("option", name=m, exact=True).click()
            _settle(page)
        page.keyboard.press("Escape")
        assert "explanations for 2 images and 3 methods" in page.locator("body").inner_text()
        page.get_by_role("button", name="Compare the metrics").click()
        page.wait_for_selector("text=Agreement (Markdown)", timeout=180_000)
        _settle(page)
        body = page.locator("body").inner_text()
        assert re.search(r"Every metric ranks|The metrics disagree", body)
        assert page.locator('[data-testid="stPlotlyChart"]').count() == 1  # the tau heat map (no report yet)
        assert page.locator('[data-testid="stDataFrame"]').count() >= 1
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "agreement.png"), full_page=True)
        browser.close()


def test_the_pickers_are_in_view_on_a_laptop_screen(server):
    """On 1366 x 768 the sidebar's model and image pickers are visible without scrolling (they
    sat below 15 navigation links): the navigation is in the top bar."""
    with sync_playwright() as p:
        browser, page = _open_app(p, server, viewport={"width": 1366, "height": 768})
        for title in ("Explore", "Neurons"):
            nav_to(page, title)
            _settle(page)
            for label in ("Model", "Photo"):
                box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(
                    has_text=label).first.bounding_box()
                assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 768, (title, label, box)
        browser.close()


_CUT_LABELS = """() => Array.from(document.querySelectorAll('[data-testid="stDownloadButton"] button')).map(b => [
  b.innerText, Array.from(b.querySelectorAll('*')).some(e => e.scrollWidth > e.clientWidth + 1)])"""


def test_download_labels_are_not_cut_on_a_laptop_screen(server):
    """On 1366 x 768 every download button shows its whole label (in four fixed columns
    Streamlit cut them: "Grad-CAM of Egyptian cat: values, unnor...")."""
    with sync_playwright() as p:
        browser, page = _open_app(p, server, viewport={"width": 1366, "height": 768})
        for title in ("Explore", "Compare", "Counterfactual"):
            nav_to(page, title)
            _settle(page)
            page.wait_for_selector('[data-testid="stDownloadButton"]', timeout=90_000)
            labels = page.evaluate(_CUT_LABELS)
            assert labels and not [text for text, cut in labels if cut], (title, labels)
        browser.close()
