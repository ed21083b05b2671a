"""ui.launch: ./studio dashboard's start, which imports PyTorch once the server listens."""
import os
import socket
import sys
import threading
import time
from pathlib import Path

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


def test_the_dashboard_runs_no_pip_after_the_tests_installed_everything(tmp_path):
    """The dev requirements include the runtime's: once ./studio test has installed them, the
    first ./studio dashboard (here: cli, which checks the same file) ran pip for 2.5 s to install
    nothing. A stand-in venv's python logs how it is called."""
    import subprocess
    root = Path(__file__).resolve().parents[2]
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    want = subprocess.run("cat requirements*.txt | sha256sum | cut -d' ' -f1", shell=True, cwd=root,
                          capture_output=True, text=True, check=True).stdout.strip()  # as ./studio computes it
    (venv / ".installed-requirements-dev.txt").write_text(want + "\n")
    done = subprocess.run([str(root / "studio"), "cli", "--help"], env={**os.environ, "STUDIO_VENV": str(venv)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls and not any("pip" in c for c in calls), calls
