"""The whole app once in a real headless Chromium: start `streamlit run`, pick a model, upload an
image, change the class, see the map change; the screenshots stay in the test's tmp folder.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (dev requirements).
Without chromium the test is skipped, except where STUDIO_REQUIRE_BROWSER=1 (.ci/run sets it)."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from model_zoo.shapes import gallery

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

if not Path(CHROMIUM).exists():
    if os.environ.get("STUDIO_REQUIRE_BROWSER") == "1":
        raise RuntimeError("STUDIO_REQUIRE_BROWSER=1 but chromium is missing (apt-get install -y chromium)")
    pytest.skip("chromium not installed (apt-get install -y chromium)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def _gradcam_src(page) -> str:
    return page.locator('[data-testid="stImage"] img').nth(1).get_attribute("src")


def test_pick_model_upload_change_class(server, tmp_path):
    scene = next(s for name, s in gallery() if name.startswith("pair:"))  # two classes to switch between
    upload = tmp_path / "scene.png"
    scene.pil().resize((128, 128)).save(upload)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(server)
        _settle(page)
        _choose(page, "Model", "shapes-fc")
        page.locator('[data-testid="stRadio"] label').filter(has_text="Upload").click()
        _settle(page)
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
        browser.close()
    assert (tmp_path / "after.png").stat().st_size > 10_000
