"""Start the dashboard: ``python -m ui.launch [streamlit options]`` is ``streamlit run
dashboard.py [options]`` (what ``./studio dashboard`` and the container's entrypoint run), with the
heavy library the first page needs (PyTorch, 1.2 s to import here) imported in a background
thread as soon as the server listens, while the browser loads the app's JavaScript, instead of
after the first session connects. Started before the server listens, the import held the GIL
against the server's own start and delayed it by as much (``./studio bench browser`` measures
the cold start; ``--plain`` starts ``streamlit run`` directly).

Only a third-party leaf is imported here: the page's own import of ``ui.selection`` then finds it
loaded, or waits on its module lock while this thread finishes it, so the two threads never hold
each other's modules."""
from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard.py"
# PyTorch (efficientnet-lite0, the model the first page opens on, is plain PyTorch: neither timm
# nor torchvision is imported for it)
HEAVY = ("torch",)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _warm(deadline_s: float = 60.0) -> None:
    import importlib

    from streamlit import config

    started = time.monotonic()
    while True:
        time.sleep(0.02)
        # read each time: the command line's --server.port and --server.address are applied after
        # this thread starts
        host = config.get_option("server.address") or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if _listening(host, int(config.get_option("server.port"))):
            break
        if time.monotonic() - started > deadline_s:  # the page imports it itself, as without this
            return
    for name in HEAVY:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  the page's own import reports it, with its message
            return


def main(argv: list[str] | None = None) -> int:
    from streamlit.web import cli

    from ui import routing
    routing.turn_off_folder_pages()  # a deep link on a fresh server goes through the navigation too
    threading.Thread(target=_warm, name="studio-warm-imports", daemon=True).start()
    sys.argv = ["streamlit", "run", str(DASHBOARD), *(sys.argv[1:] if argv is None else argv)]
    return cli.main()


if __name__ == "__main__":
    raise SystemExit(main())
