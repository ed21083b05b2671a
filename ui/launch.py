"""Start the dashboard: ``python -m ui.launch [streamlit options]`` is ``streamlit run
dashboard.py [options]`` (what ``./studio dashboard`` and the container's entrypoint run), with the
heavy libraries the first page needs imported in a background thread while the server starts and
the browser loads the app's JavaScript, instead of after the first session connects.

Only third-party leaves are imported here (PyTorch, torchvision, Plotly): the page's own import of
``ui.selection`` then finds them loaded, or waits on their module lock while this thread finishes
them, so the two threads never hold each other's modules. ``./studio bench browser`` measures the
cold start both ways (``--plain`` starts ``streamlit run`` directly)."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard.py"
HEAVY = ("torch", "torchvision", "plotly.graph_objects")


def _warm() -> None:
    import importlib
    for name in HEAVY:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  the page's own import reports it, with its message
            return


def main(argv: list[str] | None = None) -> int:
    threading.Thread(target=_warm, name="studio-warm-imports", daemon=True).start()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(DASHBOARD), *(sys.argv[1:] if argv is None else argv)]
    return cli.main()


if __name__ == "__main__":
    raise SystemExit(main())
