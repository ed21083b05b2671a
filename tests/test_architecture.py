"""The dependency arrows of ../shared/DESIGN.md, checked from the imports."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = ["explainers", "model_zoo", "studies", "evaluation"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _files(package: str):
    return sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_never_import_streamlit(package):
    for f in _files(package):
        assert not _imports(f) & {"streamlit", "ui", "pages"}, f


def test_pages_never_import_torch():
    for f in _files("pages") + [ROOT / "dashboard.py"]:
        assert not _imports(f) & {"torch", "torchvision"}, f


def test_explainers_library_does_not_depend_on_the_zoo():
    """Only the CLI (a front end) reads the registry."""
    for f in _files("explainers"):
        if f.name not in ("cli.py", "__main__.py"):
            assert "model_zoo" not in _imports(f), f


def test_library_never_prints():
    for package in PURE:
        for f in _files(package):
            if f.name in ("cli.py", "__main__.py"):
                continue
            calls = [n for n in ast.walk(ast.parse(f.read_text()))
                     if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
            assert not calls, f
