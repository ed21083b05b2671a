"""Weights downloads against a real HTTP server on 127.0.0.1 that this test starts: the file
carries its hash prefix in its name (as torchvision's do), the check is never relaxed, and a
dropped connection, a wrong hash or an unreachable host leave no file in the cache."""
import os
import socket
from pathlib import Path

import numpy as np
import pytest

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
    from cli.explain import main
    from PIL import Image
    img = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (30, 120, 200)).save(img)
    assert main([str(img), "--model", "test-download", "--out", str(tmp_path / "o")]) == 1
    assert "add --download to fetch them" in capsys.readouterr().err
    assert main([str(img), "--model", "test-download", "--download", "--out", str(tmp_path / "o")]) == 0
    assert "downloading test-download" in capsys.readouterr().err  # the tqdm bar
    assert entry.is_file() and list((tmp_path / "o").glob("a_gradcam_*.npy"))


def test_a_dripping_server_is_cut_off_at_the_deadline(server, tmp_path):
    """One byte every 0.25 s, the connection never idle for long: only the overall deadline ends it."""
    import time
    target = tmp_path / "cache" / server.good_name
    started = time.monotonic()
    with pytest.raises(model_zoo.WeightsUnavailable, match=r"did not finish within 2 s \(0 kB arrived\)"):
        fetch.download(f"{server.url}/drip/{server.good_name}", target, deadline_s=2)
    assert time.monotonic() - started < 2 + 5  # the deadline, plus one read at most
    assert _leftovers(target) == []


def test_a_stream_with_no_length_stops_at_the_bound(server, tmp_path):
    target = tmp_path / "cache" / server.good_name
    with pytest.raises(model_zoo.WeightsUnavailable, match=r"sent more than 2\.0 MB; the download was stopped"):
        fetch.download(f"{server.url}/endless/{server.good_name}", target, max_bytes=2 * 2**20)
    assert _leftovers(target) == []


def test_a_length_above_the_bound_is_refused_before_any_byte(server, tmp_path):
    target = tmp_path / "cache" / server.good_name
    with pytest.raises(model_zoo.WeightsUnavailable, match=r"offers 953,674\.3 MB, more than the 4,096\.0 MB"):
        fetch.download(f"{server.url}/huge/{server.good_name}", target)
    assert _leftovers(target) == []


def test_the_entrys_known_size_bounds_its_download(entry, server, monkeypatch):
    """A registered size far below the served file's: fetch_weights refuses what the server offers."""
    from dataclasses import replace
    from model_zoo import registry
    spec = registry.get_spec("test-download")
    monkeypatch.setitem(registry._REGISTRY, "test-download", replace(spec, weights_mb=0.0001))
    assert fetch.size_bound(0.0001) < server.size < fetch.size_bound(None)
    with pytest.raises(model_zoo.WeightsUnavailable, match=r"offers 97 kB, more than the 64 kB this download may bring"):
        model_zoo.fetch_weights("test-download")
    assert _leftovers(entry) == []


def test_a_full_disk_is_named_not_offline(entry, server, monkeypatch):
    """The temporary file is /dev/full, which answers every write with ENOSPC, as a full disk does."""
    real = fetch.tempfile.mkstemp

    def onto_dev_full(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(fetch.tempfile, "mkstemp", onto_dev_full)
    with pytest.raises(model_zoo.WeightsUnavailable) as err:
        model_zoo.fetch_weights("test-download")
    text = str(err.value)
    assert text.startswith(f"the disk holding {entry.parent} is full") and "offline" not in text
    assert _leftovers(entry) == []


def test_too_little_free_space_is_refused_before_downloading(entry, server, monkeypatch):
    from collections import namedtuple
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(model_zoo.WeightsUnavailable, match=r"has 1 kB free, the download of .* needs 97 kB"):
        model_zoo.fetch_weights("test-download")
    assert _leftovers(entry) == []


def test_a_killed_downloads_part_file_is_removed_by_the_next(entry, server):
    """A process killed mid-download leaves its .part: the next download into the folder removes
    it once it is older than any live download can be, and leaves a fresh one (a live download)."""
    import time
    entry.parent.mkdir(parents=True)
    stale = entry.parent / f".{entry.name}.abc123.part"
    live = entry.parent / ".other-12345678.pth.def456.part"
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    old = time.time() - fetch.DEADLINE_S - fetch.CONNECT_TIMEOUT_S - 60
    os.utime(stale, (old, old))
    model_zoo.fetch_weights("test-download")
    assert _leftovers(entry) == sorted([entry.name, live.name])


def test_a_killed_process_leaves_a_part_that_the_next_download_removes(server, tmp_path):
    """The real thing: a child process downloading from the dripping server is SIGKILLed."""
    import signal
    import subprocess
    import sys
    import time
    target = tmp_path / "cache" / server.good_name
    code = ("import sys; from pathlib import Path; from model_zoo import fetch; "
            "fetch.download(sys.argv[1], Path(sys.argv[2]))")
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", code, f"{server.url}/drip/{server.good_name}", str(target)],
                             cwd=root)
    for _ in range(300):
        if list(target.parent.glob(".*.part")):
            break
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    parts = list(target.parent.glob(".*.part"))
    assert len(parts) == 1  # what a killed download leaves
    fetch.download(f"{server.url}/{server.good_name}", target)
    assert _leftovers(target) == [parts[0].name, target.name]  # young: could still be a live download
    assert fetch.remove_stale_parts(target.parent, older_than_s=0) == 1
    assert _leftovers(target) == [target.name]
