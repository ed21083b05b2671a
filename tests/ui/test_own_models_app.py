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

ROOT = Path(__file__).resolve().parents[2]


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120)


SECRET = "zoo-admin-secret"


def _admin_app(monkeypatch) -> AppTest:
    """A session that has given the admin secret."""
    import hmac
    monkeypatch.setenv("STUDIO_ADMIN_SECRET", SECRET)
    at = _app()
    at.session_state["studio_admin"] = hmac.new(SECRET.encode(), b"ok", "sha256").hexdigest()
    return at


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
    # a visitor is told what happened, without the server's paths
    assert "cannot download" in text and "offline?" in text and str(download_entry) not in text
    assert "(a server path)" in text and str(download_entry.parent) not in text
    assert not download_entry.exists() and not list(download_entry.parent.glob("*"))
    # an admin sees where to put the file by hand
    at = _admin_app(monkeypatch).run()
    at.selectbox(key="model").set_value("test-download").run()
    [b for b in at.sidebar.button if b.key == "sidebar_download_test-download"][0].click().run()
    (err,) = at.sidebar.error
    assert str(download_entry) in err.value.replace("\\", "")


def test_download_button_gives_up_at_the_deadline(download_entry, weights_server, monkeypatch):
    """Behind the app's button, a server that drips a byte at a time is cut off at the deadline
    and the visitor is told so; nothing is left in the cache."""
    from model_zoo import fetch
    monkeypatch.setattr(fetch, "DEADLINE_S", 2.0)
    monkeypatch.setenv("STUDIO_WEIGHTS_BASE_URL", f"{weights_server.url}/drip")
    at = _app().run()
    at.selectbox(key="model").set_value("test-download").run()
    [b for b in at.sidebar.button if b.key == "sidebar_download_test-download"][0].click().run()
    assert not at.exception
    (err,) = at.sidebar.error
    assert "did not finish within 2 s" in err.value and str(download_entry.parent) not in err.value.replace("\\", "")
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
        ("vgg", saved(torchvision.models.squeezenet1_0(num_classes=3).state_dict()), None,
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

    # class names that would render as markup are refused, by line, before anything is saved
    for hostile in (b"cat\n![t](http://127.0.0.1:9/t.png)\nbird\n", b"cat\ndog\n[here](http://x.org)\n",
                    b"cat\n<img src=x>\nbird\n", b"cat\nsee https://x.org\nbird\n"):
        errors, ok = _upload(at, "hostile", good, names=hostile)
        assert not ok and any("class names are shown as plain text" in e for e in errors), errors

    # a visitor's upload: this session's alone, never written under STUDIO_MODELS_DIR
    errors, ok = _upload(at, "mine", good, names=b'["cat", "dog", "bird"]')
    assert not errors and ok and "this session alone sees it" in ok[0], (errors, ok)
    from ui import cache as ui_cache
    mine = "my:mine." + at.session_state["studio_viewer"][:6]
    assert mine in ok[0]
    assert not (tmp_path / "models" / "mine").exists()
    assert mine not in model_zoo.list_models()  # the library's listing: shared models only
    other = _app().run()  # another browser session
    assert not [m for m in other.selectbox(key="model").options if m.startswith("my:")]
    other.switch_page("pages/model_zoo.py").run()
    assert not any("mine" in m.value for m in other.markdown)
    # the upload is a model in the uploader's sidebar; its sha256 is in the settings of every download
    at.switch_page("pages/explore.py").run()
    assert [m for m in at.selectbox(key="model").options if m.startswith("my:")] == [mine]
    at.selectbox(key="model").set_value(mine).run()
    assert not at.exception, at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Settings to make it again (JSON)" in labels
    assert ui_cache.load_model(mine).categories == ("cat", "dog", "bird")
    # the count quota: three a session
    at.switch_page("pages/model_zoo.py").run()
    for k in (2, 3):
        assert _upload(at, f"mine{k}", good)[1]
    errors, ok = _upload(at, "mine4", good)
    assert not ok and any("this session has 3 uploaded models already" in e for e in errors), errors
    # the size quota
    monkeypatch.setenv("STUDIO_UPLOAD_MAX_MB", "0")
    errors, ok = _upload(at, "big", good)
    assert not ok and any("uploads of at most 0 MB are accepted" in e for e in errors), errors
    monkeypatch.delenv("STUDIO_UPLOAD_MAX_MB")
    for mid in [m for m in registry._REGISTRY if m.startswith("my:mine")]:
        registry._REGISTRY.pop(mid)
    ui_cache.load_model.clear()


def test_sharing_an_upload_needs_the_admin_secret_and_survives_a_restart(tmp_path, monkeypatch):
    import io
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("STUDIO_ADMIN_SECRET", SECRET)
    buf = io.BytesIO()
    torch.manual_seed(3)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), buf)
    good = buf.getvalue()
    at = _app().run()
    at.switch_page("pages/model_zoo.py").run()
    at.checkbox(key="zoo_upload_share").check().run()
    errors, ok = _upload(at, "shared", good)
    assert not ok and any("needs the admin secret" in e for e in errors), errors
    at.text_input(key="zoo_admin_secret").set_value("a wrong guess").run()
    assert any("that is not the admin secret" in c.value.replace("\\", "") for c in at.caption)
    at.text_input(key="zoo_admin_secret").set_value(SECRET).run()
    errors, ok = _upload(at, "shared", good, names=b"cat\ndog\nbird\n")
    assert not errors and ok and "Added my:shared: 3 classes" in ok[0] and "every visitor sees it" in ok[0]
    card = json.loads((tmp_path / "models" / "shared" / "model.json").read_text())
    assert card["categories"] == ["cat", "dog", "bird"] and card["arch"] == "resnet18"
    other = _app().run()  # every session lists a shared upload
    assert "my:shared" in other.selectbox(key="model").options
    from ui import cache as ui_cache
    assert ui_cache.load_model("my:shared").sha256 == card["sha256"]
    # it survives a restart: a fresh registry finds it on disk
    registry._REGISTRY.pop("my:shared")
    model_zoo.refresh()
    assert "my:shared" in model_zoo.list_models()
    registry._REGISTRY.pop("my:shared")
    ui_cache.load_model.clear()


def test_broken_plugin_is_a_message_in_the_app(tmp_path, monkeypatch):
    bad = tmp_path / "broken_models.py"
    bad.write_text("raise RuntimeError('the plugin is broken')\n")
    monkeypatch.setenv("STUDIO_MODELS", str(bad))
    at = _app().run()
    assert not at.exception
    # a visitor: a sentence, no plugin path
    (warning,) = at.sidebar.warning
    assert "1 model plugin could not be loaded; every other model works" in warning.value
    assert str(tmp_path) not in warning.value and "broken_models" not in warning.value
    assert at.get("image")  # the app goes on
    at = _admin_app(monkeypatch).run()  # an admin: the plugin by name and why
    assert any("broken_models.py could not be loaded: RuntimeError: the plugin is broken" in w.value.replace("\\", "")
               for w in at.sidebar.warning)


def test_a_damaged_saved_upload_is_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models" / "broken").mkdir(parents=True)
    (tmp_path / "models" / "broken" / "model.json").write_text("{not json")
    model_zoo.refresh()
    at = _app().run()
    assert not at.exception
    assert any("1 saved model could not be loaded" in w.value and str(tmp_path) not in w.value
               for w in at.sidebar.warning)
    at = _admin_app(monkeypatch).run()
    assert any("The saved model broken" in w.value.replace("\\", "") and "JSONDecodeError" in w.value
               for w in at.sidebar.warning)
    model_zoo.uploads.errors.clear()


def test_a_plugin_model_that_cannot_be_explained_is_a_message_and_the_rest_works(tmp_path, monkeypatch):
    """A plugin model with no spatial layer crashed every explaining page; one whose builder
    calls sys.exit() blanked the page."""
    plugin = tmp_path / "flat_models.py"
    plugin.write_text(
        "import sys\n"
        "from torch import nn\n"
        "import model_zoo\n"
        "model_zoo.register_model('flat-net', lambda n: nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, n)),\n"
        "                         categories=['a', 'b'], weights='untrained',\n"
        "                         preprocess=model_zoo.Preprocess(resize=32, crop=32))\n"
        "def _leave(n):\n"
        "    sys.exit(4)\n"
        "model_zoo.register_model('exit-net', _leave, categories=['a', 'b'], weights='untrained')\n")
    monkeypatch.setenv("STUDIO_MODELS", str(plugin))
    model_zoo.load_plugins()
    try:
        at = _app().run()
        for model_id, why in (("flat-net", "ValueError"), ("exit-net", "its code called sys.exit(4)")):
            at.selectbox(key="model").set_value(model_id).run()
            assert not at.exception, at.exception
            (error,) = at.sidebar.error
            shown = error.value.replace("\\", "")  # as the browser shows it
            assert shown.startswith(f"{model_id} cannot be explained: ") and why in shown, shown
            assert any(f"{model_id} cannot be explained" in i.value for i in at.info)
            for page in ("pages/compare.py", "pages/how_it_works.py", "pages/counterfactual.py"):
                at.switch_page(page).run()
                assert not at.exception, (page, at.exception)
            at.switch_page("pages/explore.py").run()
        at.selectbox(key="model").set_value("shapes-resnet").run()  # the rest of the app works
        assert not at.exception and not at.sidebar.error and at.get("image")
    finally:
        for mid in ("flat-net", "exit-net"):
            registry._REGISTRY.pop(mid, None)
