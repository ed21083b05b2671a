"""ui.launch: ./studio dashboard's start, which imports PyTorch once the server listens."""
import socket
import sys
import threading
import time

from ui import launch


def test_the_heavy_import_waits_for_the_server_then_happens(tmp_path, monkeypatch):
    (tmp_path / "studio_warm_probe.py").write_text("IMPORTED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(launch, "HEAVY", ("studio_warm_probe",))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    from streamlit import config
    monkeypatch.setattr(config, "get_option", {"server.address": "0.0.0.0", "server.port": port}.get)
    warm = threading.Thread(target=launch._warm, daemon=True)
    warm.start()
    time.sleep(0.3)
    assert "studio_warm_probe" not in sys.modules  # nothing listens yet: no import competes with the start
    server.listen()
    warm.join(timeout=10)
    assert not warm.is_alive() and sys.modules["studio_warm_probe"].IMPORTED
    server.close()
    sys.modules.pop("studio_warm_probe", None)


def test_it_gives_up_when_no_server_comes(monkeypatch):
    monkeypatch.setattr(launch, "HEAVY", ("studio_never_imported",))
    from streamlit import config
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    monkeypatch.setattr(config, "get_option", {"server.address": "", "server.port": port}.get)
    launch._warm(deadline_s=0.2)
    assert "studio_never_imported" not in sys.modules
