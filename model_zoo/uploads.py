"""Checkpoints uploaded in the app: a state dict for a registered architecture becomes a model of
its own.

Two kinds. A *shared* upload (an admin's: the app asks for the admin secret) is saved under
``STUDIO_MODELS_DIR`` (default ``data/models/``), survives a restart and is listed for every
session, as ``my:<name>``. A *session* upload (``owner`` = the app session's token) is kept in a
temporary folder of this process, listed for that session alone (``list_models(viewer=owner)``),
as ``my:<name>.<first six characters of the token>``, and is gone at the next restart: nothing one
visitor uploads is shown to another.

Each upload is a folder ``<name>/`` holding ``weights.pt`` (the file as uploaded) and
``model.json`` (its architecture, class names and sha256). The file is read with
``weights_only=True`` and checked against the architecture (missing, unexpected and mis-shaped
keys named) before anything is saved. Quotas: a checkpoint of at most ``STUDIO_UPLOAD_MAX_MB``
(default 200) MB; at most ``STUDIO_SHARED_UPLOADS_MAX`` (50) shared uploads, ``SESSION_MAX`` (3)
per session and ``STUDIO_SESSION_UPLOADS_MAX`` (20) session uploads in the process. Class names are
shown wherever the model is, so they are plain text: no ``< > [ ]`` or backquotes, no web address,
no control characters, at most 200 characters each."""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from functools import partial

from .registry import ModelSpec, add_refresher, fixed_path, get_spec, list_models, num_classes_in, register, specs
from .weights import WeightsError, ZooError, first_line, load_state_dict_checked, models_dir, read_state_dict

__all__ = ["models_dir", "save_upload", "register_saved", "parse_class_names", "check_class_names", "PREFIX",
           "errors", "QuotaExceeded", "max_upload_bytes", "SESSION_MAX"]

PREFIX = "my:"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
errors: dict[str, str] = {}  # saved uploads that could not be registered, and why
SESSION_MAX = 3  # session uploads per app session
NAMES_MAX_BYTES = 2**20  # a class names file
NAMES_MAX = 100_000
NAME_MAX_CHARS = 200
# what Markdown, HTML or Plotly would turn into a link, an image or markup
_MARKUP = re.compile(r"[<>\[\]`@]|[a-z][a-z0-9+.-]*://|\bwww\.|[\x00-\x1f\x7f]", re.IGNORECASE)
_session_lock = threading.Lock()
_session_root: list[Path] = []


class QuotaExceeded(ZooError):
    """An upload over the size or count quota (the message says which and the limit)."""


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def max_upload_bytes() -> int:
    return _env_int("STUDIO_UPLOAD_MAX_MB", 200) * 2**20


def _session_dir() -> Path:
    """This process's folder of session uploads (removed when the process exits)."""
    with _session_lock:
        if not _session_root:
            root = Path(tempfile.mkdtemp(prefix="studio-session-models-"))
            atexit.register(shutil.rmtree, root, True)
            _session_root.append(root)
        return _session_root[0]


def check_class_names(names: list[str]) -> list[str]:
    """``names`` if every one is plain text that shows as written everywhere (see the module
    docstring), else :class:`ZooError` naming the first that is not, by its line."""
    if len(names) > NAMES_MAX:
        raise QuotaExceeded(f"the class names file names {len(names):,} classes; at most {NAMES_MAX:,} are accepted")
    for line, name in enumerate(names, 1):
        if len(name) > NAME_MAX_CHARS:
            raise ZooError(f"class name {line} is {len(name):,} characters long; at most {NAME_MAX_CHARS} are accepted")
        bad = _MARKUP.search(name)
        if bad:
            what = "a web address" if "/" in bad.group(0) or "www" in bad.group(0).lower() else \
                "a control character" if bad.group(0) < " " or bad.group(0) == "\x7f" else repr(bad.group(0))
            raise ZooError(f"class name {line} holds {what}: class names are shown as plain text wherever the "
                           "model is, so they may not hold < > [ ] ` @ or a web address")
    return names


def parse_class_names(data: bytes) -> list[str]:
    """Class names from a text file (one per line) or a JSON list of strings, checked by
    :func:`check_class_names` (at most 1 MB)."""
    if len(data) > NAMES_MAX_BYTES:
        raise QuotaExceeded(f"the class names file is {len(data) / 2**20:.1f} MB; at most 1 MB is accepted")
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
    return check_class_names([str(n) for n in names])


def _model_id(name: str, owner: str | None) -> str:
    return PREFIX + name if owner is None else f"{PREFIX}{name}.{owner[:6]}"


def _register(folder: Path, owner: str | None = None) -> str:
    card = json.loads((folder / "model.json").read_text())
    arch = get_spec(card["arch"])
    categories = [str(c) for c in card["categories"]]
    if tuple(categories) != arch.categories:  # the user's names (a card edited by hand too)
        check_class_names(categories)
    model_id = _model_id(card["name"], owner)
    where = "your" if owner is None else "this session's"
    register(ModelSpec(
        id=model_id, title=f"{card['name']} ({where} {card['arch']})", family="upload", build=arch.build,
        categories=tuple(categories), preprocess=arch.preprocess, default_layer=arch.default_layer,
        weights_file=partial(fixed_path, folder / "weights.pt"), prepare=arch.prepare, owner=owner,
        description=f"{where} checkpoint of {arch.title}, {len(categories)} classes, sha256 {card['sha256'][:12]}"
                    + ("" if owner is None else "; shown to this browser session only, until the app restarts")))
    return model_id


def _check_quota(data: bytes, owner: str | None) -> None:
    limit = max_upload_bytes()
    if len(data) > limit:
        raise QuotaExceeded(f"the checkpoint is {len(data) / 2**20:.0f} MB; uploads of at most "
                            f"{limit / 2**20:.0f} MB are accepted (STUDIO_UPLOAD_MAX_MB)")
    uploads = specs("upload")
    if owner is None:
        most = _env_int("STUDIO_SHARED_UPLOADS_MAX", 50)
        if sum(s.owner is None for s in uploads) >= most:
            raise QuotaExceeded(f"{most} shared uploads are saved already, the most this studio keeps "
                                "(STUDIO_SHARED_UPLOADS_MAX); remove one from STUDIO_MODELS_DIR first")
        return
    if sum(s.owner == owner for s in uploads) >= SESSION_MAX:
        raise QuotaExceeded(f"this session has {SESSION_MAX} uploaded models already, the most a session may add")
    most = _env_int("STUDIO_SESSION_UPLOADS_MAX", 20)
    if sum(s.owner is not None for s in uploads) >= most:
        raise QuotaExceeded(f"visitors have uploaded {most} models since the app started, the most it keeps "
                            "(STUDIO_SESSION_UPLOADS_MAX); try again after a restart")


def save_upload(name: str, arch: str, data: bytes, class_names: list[str] | None = None,
                filename: str = "the checkpoint", owner: str | None = None) -> str:
    """Check an uploaded checkpoint against ``arch``, save it, register it; returns its id.
    ``filename`` names the upload in messages. ``owner``: None for a shared upload (saved under
    :func:`models_dir`), else the app session's token (kept for that session alone, until the
    process ends). Over a quota: :class:`QuotaExceeded`."""
    name = (name or "").strip().lower()
    if not _NAME.match(name):
        raise ZooError("name the model with 1-40 lower-case letters, digits, '-' or '_' (starting with a "
                       "letter or digit)")
    if _model_id(name, owner) in list_models(viewer=owner) or PREFIX + name in list_models():
        raise ZooError(f"a model called {name!r} exists already; choose another name")
    if class_names is not None:
        check_class_names(class_names)
    _check_quota(data, owner)
    spec = get_spec(arch)
    if spec.family in ("upload",):
        raise ZooError("choose a built-in or plugin architecture, not another upload")
    root = models_dir() if owner is None else _session_dir() / owner
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        weights = work / "weights.pt"
        weights.write_bytes(data)
        state, sha = read_state_dict(weights, label=filename)
        found = num_classes_in(spec, state)
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
            raise ZooError(f"a saved model called {name!r} exists already; choose another name")
        os.replace(work, folder)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return _register(folder, owner)


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


add_refresher(register_saved)
