"""Weights downloads against a real HTTP server on 127.0.0.1 that this test starts: the file
carries its hash prefix in its name (as torchvision's do), the check is never relaxed, and a
dropped connection, a wrong hash or an unreachable host leave no file in the cache."""
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

import explainers
import model_zoo
from model_zoo import fetch



@pytest.fixture
def server(weights_server):
    return weights_server


@pytest.fixture
def entry(download_entry):
    return download_entry


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.parent.iterdir()) if cache.parent.exists() else []


def test_fetch_downloads_checks_and_the_model_explains(entry, server):
    assert not model_zoo.weights_available("test-download")
    seen = []
    path = model_zoo.fetch_weights("test-download", progress=lambda done, total: seen.append((done, total)))
    assert path == entry and path.is_file() and _leftovers(entry) == [entry.name]
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[0] == 0 and done[-1] == server.size
    assert {t for _, t in seen} == {server.size}
    assert len(seen) > 2  # streamed in pieces, not in one go
    loaded = model_zoo.load("test-download", download=False)
    assert loaded.sha256 == model_zoo.weights.sha256_of(entry)
    from model_zoo.shapes import gallery
    x = loaded.preprocess(gallery()[0][1].pil()).unsqueeze(0)
    e = explainers.explain(loaded.model, x, layer=loaded.default_layer, target=0)
    assert e.attribution.shape == (64, 64) and np.isfinite(e.attribution).all()
    assert model_zoo.fetch_weights("test-download") == entry  # present: no second download


def test_dropped_connection_leaves_nothing(entry, server, monkeypatch):
    monkeypatch.setenv("STUDIO_WEIGHTS_BASE_URL", f"{server.url}/drop")
    with pytest.raises(model_zoo.WeightsUnavailable) as err:
        model_zoo.fetch_weights("test-download")
    text = str(err.value)
    assert "\n" not in text and server.good_name in text
    assert "stopped after" in text or "cannot download" in text, text
    assert _leftovers(entry) == []


def test_wrong_hash_leaves_nothing(entry, server, tmp_path):
    target = tmp_path / "cache2" / server.bad_name
    with pytest.raises(model_zoo.WeightsUnavailable, match=r"is corrupt: its sha256 starts [0-9a-f]{8}, the name "
                                                            r"says deadbeef; nothing was saved"):
        fetch.download(f"{server.url}/{server.bad_name}", target)
    assert _leftovers(target) == []


def test_unreachable_host_says_so_at_once(entry, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STUDIO_WEIGHTS_BASE_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(model_zoo.WeightsUnavailable) as err:
        model_zoo.fetch_weights("test-download")
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"cannot download http://127.0.0.1:{port}/")
    assert "offline?" in text and str(entry) in text
    assert _leftovers(entry) == []


def test_connect_timeout_is_bounded(entry, monkeypatch):
    """A host that accepts nothing within the timeout: the reason says how long it waited."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # accepts the TCP connection, never answers HTTP
    try:
        with pytest.raises(model_zoo.WeightsUnavailable, match=r"no answer within 1 s"):
            fetch.download(f"http://127.0.0.1:{listener.getsockname()[1]}/x-12345678.pth",
                           entry.parent / "x-12345678.pth", timeout=1)
    finally:
        listener.close()
    assert _leftovers(entry) == []


def test_hash_prefix_of_torchvision_names():
    assert fetch.hash_prefix("https://download.pytorch.org/models/resnet50-11ad3fa6.pth") == "11ad3fa6"
    assert fetch.hash_prefix("https://x/y/vgg16_features-amdegroot-88682ab5.pth") == "88682ab5"
    assert fetch.hash_prefix("https://x/y/model.pth") is None


def test_base_url_replaces_host_and_path(monkeypatch):
    monkeypatch.setenv("STUDIO_WEIGHTS_BASE_URL", "http://mirror.local/weights/")
    assert fetch.download_url("https://download.pytorch.org/models/resnet50-11ad3fa6.pth") == \
        "http://mirror.local/weights/resnet50-11ad3fa6.pth"
    monkeypatch.delenv("STUDIO_WEIGHTS_BASE_URL")
    assert fetch.download_url("https://a/b.pth") == "https://a/b.pth"


def test_cli_download_flag(entry, server, capsys, tmp_path):
    from explainers.cli import main
    from PIL import Image
    img = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (30, 120, 200)).save(img)
    assert main([str(img), "--model", "test-download", "--out", str(tmp_path / "o")]) == 1
    assert "add --download to fetch them" in capsys.readouterr().err
    assert main([str(img), "--model", "test-download", "--download", "--out", str(tmp_path / "o")]) == 0
    assert "downloading test-download" in capsys.readouterr().err  # the tqdm bar
    assert entry.is_file() and list((tmp_path / "o").glob("a_gradcam_*.npy"))
