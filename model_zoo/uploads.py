"""Checkpoints uploaded in the app: a state dict for a registered architecture becomes a model of
its own, saved under ``STUDIO_MODELS_DIR`` (default ``data/models/``) so it survives a restart.

Each upload is a folder ``<name>/`` holding ``weights.pt`` (the file as uploaded) and
``model.json`` (its architecture, class names and sha256); it is registered as ``my:<name>``. The
file is read with ``weights_only=True`` and checked against the architecture (missing,
unexpected and mis-shaped keys named) before anything is saved."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from .weights import WeightsError, ZooError, first_line, load_state_dict_checked, read_state_dict

__all__ = ["models_dir", "save_upload", "register_saved", "parse_class_names", "PREFIX", "errors"]

PREFIX = "my:"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
errors: dict[str, str] = {}  # saved uploads that could not be registered, and why


def models_dir() -> Path:
    return Path(os.environ.get("STUDIO_MODELS_DIR") or Path(__file__).resolve().parents[1] / "data" / "models")


def parse_class_names(data: bytes) -> list[str]:
    """Class names from a text file (one per line) or a JSON list of strings."""
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ZooError("the class names file is not UTF-8 text") from None
    if text.startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as err:
            raise ZooError(f"the class names file looks like JSON but is not valid ({err.msg})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ZooError("the class names JSON must be a list of strings")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ZooError("the class names file holds no names")
    return [str(n) for n in names]


def _register(folder: Path) -> str:
    from .registry import ModelSpec, _fixed_path, get_spec, register
    from functools import partial

    card = json.loads((folder / "model.json").read_text())
    arch = get_spec(card["arch"])
    model_id = PREFIX + card["name"]
    register(ModelSpec(
        id=model_id, title=f"{card['name']} (your {card['arch']})", family="upload", build=arch.build,
        categories=tuple(card["categories"]), preprocess=arch.preprocess, default_layer=arch.default_layer,
        weights_file=partial(_fixed_path, folder / "weights.pt"), prepare=arch.prepare,
        description=f"your checkpoint of {arch.title}, {len(card['categories'])} classes, sha256 {card['sha256'][:12]}"))
    return model_id


def save_upload(name: str, arch: str, data: bytes, class_names: list[str] | None = None,
                filename: str = "the checkpoint") -> str:
    """Check an uploaded checkpoint against ``arch``, save it, register it; returns its id.
    ``filename`` names the upload in messages."""
    from .registry import _num_classes_in, get_spec, list_models

    name = (name or "").strip().lower()
    if not _NAME.match(name):
        raise ZooError("name the model with 1-40 lower-case letters, digits, '-' or '_' (starting with a "
                       "letter or digit)")
    if PREFIX + name in list_models():
        raise ZooError(f"a model called {name!r} exists already; choose another name")
    spec = get_spec(arch)
    if spec.family in ("upload",):
        raise ZooError("choose a built-in or plugin architecture, not another upload")
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        weights = work / "weights.pt"
        weights.write_bytes(data)
        state, sha = read_state_dict(weights, label=filename)
        found = _num_classes_in(spec, state)
        n = found if found is not None else spec.num_classes
        if class_names is not None and len(class_names) != n:
            raise WeightsError(f"the checkpoint has {n} classes but the class names file names "
                               f"{len(class_names)}")
        categories = class_names or (list(spec.categories) if n == spec.num_classes else
                                     [f"class {i}" for i in range(n)])
        model = spec.build(n)
        if spec.prepare is not None:
            spec.prepare(model, state)
        load_state_dict_checked(model, state, filename, spec.id)
        (work / "model.json").write_text(json.dumps(
            {"name": name, "arch": arch, "categories": categories, "sha256": sha}, indent=2))
        folder = root / name
        if folder.exists():
            raise ZooError(f"{folder} exists already; choose another name")
        os.replace(work, folder)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return _register(folder)


def register_saved() -> None:
    """Register every upload saved under :func:`models_dir` (idempotent); a broken one is kept in
    :data:`errors` with its reason, not raised."""
    root = models_dir()
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            _register(folder)
            errors.pop(folder.name, None)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            errors[folder.name] = first_line(err)
