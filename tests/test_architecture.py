"""The dependency arrows of ../shared/DESIGN.md, checked from the imports, transitively: a
module's imports are followed through the project's own modules (relative imports resolved), so
a rule cannot be broken through a package in between."""
import ast
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = ["explainers", "model_zoo", "studies", "evaluation"]
FRONT = ["training", "ui", "cli", "bench", "pages"]  # front ends: above the packages they drive
PROJECT = {*PURE, *FRONT}
# the floors of ../shared/DESIGN.md: an import may go down or sideways, never up; explainers and
# model_zoo (one floor) do not import each other (tested below)
FLOORS = {"explainers": 0, "model_zoo": 0, "studies": 1, "evaluation": 1,
          "training": 2, "ui": 2, "cli": 3, "bench": 3, "pages": 3}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _path_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _from_module(node: ast.ImportFrom, package: str) -> str:
    """The absolute module of ``from ... import``, relative imports resolved against ``package``."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, *([node.module] if node.module else [])])


@lru_cache(maxsize=None)
def _direct(path: Path) -> frozenset[str]:
    """Fully qualified names this file imports at module level or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = _from_module(node, package)
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}  # `from pkg import submodule`
    return frozenset(n for n in names if n)


def _reach(path: Path) -> set[str]:
    """Every module reachable from ``path`` through the project's own files (third-party
    modules are leaves). Importing a.b.c runs a/__init__ and a/b/__init__ too."""
    seen, stack, out = set(), [path], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        for name in _direct(p):
            out.add(name)
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                target = _path_of(".".join(parts[:i]))
                if target is not None and parts[0] in PROJECT:
                    stack.append(target)
    return out


def _top(names) -> set[str]:
    return {n.split(".")[0] for n in names}


def _files(package: str):
    return sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_never_reach_streamlit(package):
    for f in _files(package):
        assert not _top(_reach(f)) & {"streamlit", "ui", "pages"}, f


def test_pages_never_import_torch_themselves():
    for f in _files("pages") + [ROOT / "dashboard.py"]:
        assert not _top(_direct(f)) & {"torch", "torchvision"}, f


def test_participant_page_never_reaches_torch():
    """A participant's page needs storage and scoring, not the model stack."""
    reached = _top(_reach(ROOT / "pages" / "participate.py"))
    assert not reached & {"torch", "torchvision", "explainers", "model_zoo", "evaluation"}, reached


def test_participant_page_imports_no_torch_at_run_time():
    code = ("import sys; import studies.participation, ui.studies; import studies; studies.Store; "
            "studies.score_answer; bad = [m for m in ('torch', 'torchvision', 'explainers', 'model_zoo') "
            "if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_explainers_library_does_not_reach_the_zoo():
    """The command lines (package cli) read the registry; the library does not."""
    for f in _files("explainers"):
        assert "model_zoo" not in _top(_reach(f)), f


def test_model_zoo_does_not_reach_explainers_or_evaluation():
    """The zoo is below both; training (whose cards carry ground-truth figures) is a front end."""
    for f in _files("model_zoo"):
        assert not _top(_reach(f)) & {"explainers", "evaluation", "studies"}, f


def _edges(path: Path) -> set[Path]:
    """The project files that importing ``path`` runs directly: ``from pkg import sub`` is an
    edge to the submodule ``pkg/sub.py`` (not to ``pkg/__init__``), ``import a.b`` to ``a/b`` and
    to the ``__init__`` of each package above it, except the file's own packages (already running
    when it is imported)."""
    own = {path.parent / "__init__.py", *[p / "__init__.py" for p in path.parents]}
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _from_module(node, package)
            subs = [f"{module}.{a.name}" for a in node.names if _path_of(f"{module}.{a.name}") is not None]
            modules += subs if len(subs) == len(node.names) else [module, *subs]
    out = set()
    for name in modules:
        parts = name.split(".")
        if parts[0] not in PROJECT:
            continue
        for i in range(1, len(parts) + 1):
            target = _path_of(".".join(parts[:i]))
            if target is not None and target not in own and target != path:
                out.add(target)
    return out


def _graph() -> dict[Path, set[Path]]:
    return {f: _edges(f) for package in [*PURE, *FRONT] for f in _files(package)}


def _circles(graph: dict[Path, set[Path]]) -> list[list[str]]:
    """The strongly connected components of more than one file (Tarjan's algorithm)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(str(w.relative_to(ROOT)))
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def _upward(graph: dict[Path, set[Path]]) -> list[str]:
    def floor(p: Path) -> int:
        return FLOORS[p.relative_to(ROOT).parts[0]]
    return [f"{a.relative_to(ROOT)} -> {b.relative_to(ROOT)}" for a, targets in graph.items() for b in targets
            if floor(b) > floor(a)]


def test_no_import_runs_back_up_a_floor():
    assert not _upward(_graph())


def test_no_files_import_each_other_in_a_circle():
    assert not _circles(_graph())


def test_the_graph_checks_can_fail(tmp_path):
    """Both checks find what they look for: an import up and a circle of two files."""
    a, b, c = (ROOT / "model_zoo" / "a.py", ROOT / "model_zoo" / "b.py", ROOT / "evaluation" / "c.py")
    graph = {a: {b}, b: {a, c}, c: set()}
    assert _circles(graph) == [["model_zoo/a.py", "model_zoo/b.py"]]
    assert _upward(graph) == ["model_zoo/b.py -> evaluation/c.py"]
    assert _edges(ROOT / "explainers" / "methods.py") >= {ROOT / "explainers" / "cams.py"}
    assert ROOT / "explainers" / "__init__.py" not in _edges(ROOT / "explainers" / "methods.py")


def test_the_checker_follows_imports_through_packages(tmp_path):
    """The transitive rule is not vacuous: studies.design reaches torch through explainers."""
    assert "torch" in _top(_reach(ROOT / "studies" / "design.py"))
    assert "model_zoo" in _top(_reach(ROOT / "evaluation" / "run.py"))


def test_library_never_prints():
    for package in PURE:
        for f in _files(package):
            calls = [n for n in ast.walk(ast.parse(f.read_text()))
                     if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
            assert not calls, f


def test_the_entry_point_reaches_the_model_stack_only_after_the_participant_route():
    """dashboard.py serves a participant's link before it imports the explaining sidebar."""
    source = (ROOT / "dashboard.py").read_text()
    assert source.index('if "study" in st.query_params') < source.index("from ui import selection")
    head = source[:source.index('if "study" in st.query_params')]
    tree = ast.parse(head)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert imported <= {"prefs"}, imported
    assert not _top(_reach(ROOT / "ui" / "prefs.py")) & {"torch", "explainers", "model_zoo"}
