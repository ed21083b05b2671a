"""Your own model in the app, through AppTest: the weights download button (against the tests'
local HTTP server), offline, an uploaded checkpoint (good and bad), a plugin's model in the
sidebar, a broken plugin as a message."""
import json
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from streamlit.testing.v1 import AppTest

import model_zoo
from model_zoo import registry

ROOT = Path(__file__).resolve().parents[1]


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120)


@pytest.fixture(autouse=True)
def _forget_cached_models():
    yield
    from ui import cache as ui_cache
    ui_cache.load_model.clear()


def test_download_button_fetches_the_weights_and_the_model_explains(download_entry):
    at = _app().run()
    options = at.selectbox(key="model").options
    assert "test-download (weights not here yet)" in options and "example-cifar" in options
    at.selectbox(key="model").set_value("test-download").run()
    assert not at.exception
    assert any("weights of test-download are not on this machine yet" in i.value for i in at.info)
    (button,) = [b for b in at.sidebar.button if b.key == "sidebar_download_test-download"]
    assert button.label == "Download weights"
    button.click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert download_entry.is_file()
    assert at.selectbox(key="model").value == "test-download"
    assert len(at.get("image")) >= 1 and any("Explaining" in c.value for c in at.caption)
    settings = [b for b in at.get("download_button") if b.proto.label.startswith("Settings")]
    assert settings  # the downloads carry the weights' sha256 (checked in the upload test)


def test_download_button_offline_says_so(download_entry, monkeypatch):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STUDIO_WEIGHTS_BASE_URL", f"http://127.0.0.1:{port}")
    at = _app().run()
    at.selectbox(key="model").set_value("test-download").run()
    [b for b in at.sidebar.button if b.key == "sidebar_download_test-download"][0].click().run()
    assert not at.exception
    (err,) = at.sidebar.error
    text = err.value.replace("\\", "")
    assert "cannot download" in text and "offline?" in text and str(download_entry) in text
    assert not download_entry.exists() and not list(download_entry.parent.glob("*"))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def _upload(at, name, data, arch="resnet18", names=None):
    at.selectbox(key="zoo_upload_arch").set_value(arch)
    at.text_input(key="zoo_upload_name").set_value(name)
    at.file_uploader(key="zoo_upload_weights").set_value((f"{name}.pth", data, "application/octet-stream"))
    if names is not None:
        at.file_uploader(key="zoo_upload_names").set_value(("names.txt", names, "text/plain"))
    next(b for b in at.button if b.label == "Add the model").click()  # the form's submit
    at.run()
    assert not at.exception
    return [e.value.replace("\\", "") for e in at.error], [s.value.replace("\\", "") for s in at.success]


def test_uploaded_checkpoints_are_checked_and_become_models(tmp_path, monkeypatch):
    import io
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    marker = tmp_path / "marker.txt"
    at = _app().run()
    at.switch_page("pages/model_zoo.py").run()

    def saved(obj, **kw):
        buf = io.BytesIO()
        torch.save(obj, buf, **kw)
        return buf.getvalue()

    torch.manual_seed(3)
    good = saved(torchvision.models.resnet18(num_classes=3).state_dict())
    cases = [
        ("evil", saved({"fc.weight": torch.zeros(1), "x": _Exploit(str(marker))}), None,
         "refused to load evil.pth: it would import"),
        ("evilraw", pickle.dumps(_Exploit(str(marker))), None, "refused to load evilraw.pth: it would import"),
        ("vgg", saved(torchvision.models.alexnet(num_classes=3).state_dict()), None,
         "vgg.pth does not fit the resnet18 architecture; missing keys: conv1.weight"),
        ("cut", good[:4000], None, "cut.pth is not a readable PyTorch weights file"),
        ("names", good, b"cat\ndog\n", "the checkpoint has 3 classes but the class names file names 2"),
    ]
    for name, data, names, message in cases:
        errors, ok = _upload(at, name, data, names=names)
        assert any(message in e for e in errors), (name, errors)
        assert not ok
    assert not marker.exists()  # the exploit's code never ran
    assert not [p for p in (tmp_path / "models").iterdir() if not p.name.startswith(".")] \
        if (tmp_path / "models").exists() else True

    errors, ok = _upload(at, "mine", good, names=b'["cat", "dog", "bird"]')
    assert not errors and ok and "Added my:mine: 3 classes" in ok[0]
    card = json.loads((tmp_path / "models" / "mine" / "model.json").read_text())
    assert card["categories"] == ["cat", "dog", "bird"] and card["arch"] == "resnet18"
    # the upload is a model in the sidebar; its sha256 is in the settings of every download
    at.switch_page("pages/explore.py").run()
    at.selectbox(key="model").set_value("my:mine").run()
    assert not at.exception, at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Settings to make it again (JSON)" in labels
    from ui import cache as ui_cache
    assert ui_cache.load_model("my:mine").sha256 == card["sha256"]
    # it survives a restart: a fresh registry finds it on disk
    registry._REGISTRY.pop("my:mine")
    model_zoo.refresh()
    assert "my:mine" in model_zoo.list_models()
    registry._REGISTRY.pop("my:mine")
    ui_cache.load_model.clear()


def test_broken_plugin_is_a_message_in_the_app(tmp_path, monkeypatch):
    bad = tmp_path / "broken_models.py"
    bad.write_text("raise RuntimeError('the plugin is broken')\n")
    monkeypatch.setenv("STUDIO_MODELS", str(bad))
    at = _app().run()
    assert not at.exception
    assert any("broken_models.py could not be loaded: RuntimeError: the plugin is broken" in w.value.replace("\\", "")
               for w in at.sidebar.warning)
    assert at.get("image")  # the app goes on


def test_a_damaged_saved_upload_is_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models" / "broken").mkdir(parents=True)
    (tmp_path / "models" / "broken" / "model.json").write_text("{not json")
    model_zoo.refresh()
    at = _app().run()
    assert not at.exception
    assert any("The saved model broken" in w.value.replace("\\", "") and "JSONDecodeError" in w.value
               for w in at.sidebar.warning)
    model_zoo.uploads.errors.clear()
