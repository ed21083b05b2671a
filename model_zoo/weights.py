"""Reading weights safely: ``torch.load(..., weights_only=True)`` always, the file's sha256
recorded, and every mismatch between a state dict and an architecture named."""
from __future__ import annotations

import hashlib
import os
import pickletools
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

__all__ = ["ZooError", "WeightsError", "WeightsUnavailable", "first_line", "sha256_of", "read_state_dict",
           "load_state_dict_checked", "models_dir"]


def models_dir() -> Path:
    """Where models saved from the app and notes about models live: ``STUDIO_MODELS_DIR``, else
    ``data/models`` in the checkout."""
    return Path(os.environ.get("STUDIO_MODELS_DIR") or Path(__file__).resolve().parents[1] / "data" / "models")


class ZooError(ValueError):
    """A model could not be provided; the message says why and what to do."""


class WeightsError(ZooError):
    """A weights file is unreadable, unsafe, or does not fit the architecture."""


class WeightsUnavailable(ZooError):
    """The weights are not on this machine and could not be fetched."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """``"TypeName: first line of the message"`` (the type alone for an empty message)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:limit]}" if text else type(err).__name__


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
               "STRING"}
_SAFE_CONTAINERS = {"collections.OrderedDict", "collections.Counter", "builtins.set", "builtins.frozenset",
                    "builtins.bytearray", "builtins.complex", "_codecs.encode", "torch.Size", "torch.device"}


def _safe_global(name: str) -> bool:
    """A global that ``torch.load(weights_only=True)`` itself allows: tensor and storage
    rebuilders, dtypes, plain containers. Any other function, ``torch.*`` ones included
    (``torch.hub.load``, ``torch.manual_seed``), is unsafe and is named."""
    if name in _SAFE_CONTAINERS or name.startswith(("torch._utils._rebuild_", "torch._tensor._rebuild_")):
        return True
    module, _, leaf = name.rpartition(".")
    if module in ("torch", "torch.cuda") and (leaf.endswith("Storage") or leaf.endswith("Tensor")):
        return True
    return module == "torch" and isinstance(getattr(torch, leaf, None), torch.dtype)


def _globals_of(stream, limit: int = 6) -> list[str]:
    """The ``module.name`` globals that the pickles at the start of ``stream`` would import (up
    to ``limit`` pickles one after another, as torch's legacy format writes them). A reading of
    the opcodes only (:mod:`pickletools`): nothing is unpickled."""
    found: list[str] = []
    for _ in range(limit):
        strings: list[str] = []
        memo: dict[int, str] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name in _STRING_OPS:
                    strings.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
                elif name == "MEMOIZE" and strings:
                    memo[len(memo)] = strings[-1]
                elif name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                    memo[int(arg)] = strings[-1]
                elif name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                    strings.append(memo[int(arg)])
                elif name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif name == "STOP":
                    break
        except Exception:  # not (or no more) pickle data: what was read so far is the answer
            break
    return found


def _unsafe_globals(path: Path) -> list[str]:
    """Globals outside torch's tensor rebuilders and plain containers that ``path`` references."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("data.pkl")] or zf.namelist()[:1]
                found = []
                for n in names:
                    with zf.open(n) as f:
                        found += _globals_of(f)
        else:
            with open(path, "rb") as f:
                found = _globals_of(f)
    except (OSError, zipfile.BadZipFile):
        return []
    return list(dict.fromkeys(g for g in found if not _safe_global(g)))


def _looks_like_text(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def read_state_dict(path, label: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, sha256) from a checkpoint file. Accepts a plain state dict or a dict that
    holds one under ``state_dict`` or ``model``; strips a ``module.`` (DataParallel) prefix.
    Never unpickles anything but tensors and plain containers (``weights_only=True``). A file
    that would import other Python objects is named as such (its globals read with
    :mod:`pickletools`, nothing executed); a state dict with NaN or infinite values is refused.
    ``label`` names the file in messages (default: its name; an upload's own name, say)."""
    path = Path(path)
    name = label or path.name
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise WeightsError(f"{name} is empty: not a PyTorch weights file")
    digest = sha256_of(path)
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not for users
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises UnpicklingError, RuntimeError, KeyError, EOFError, ... here
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise WeightsError(
                f"refused to load {name}: it would import {_listing(unsafe, 3)} when unpickled, "
                "which could execute code; only plain state dicts of tensors are accepted "
                "(save with torch.save(model.state_dict(), path))"
            ) from None
        if _looks_like_text(path):
            raise WeightsError(f"{name} is a text file, not a PyTorch weights file") from None
        raise WeightsError(f"{name} is not a readable PyTorch weights file (corrupt or "
                           "truncated, or not saved with torch.save)") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightsError(f"{name} does not hold a state dict (a mapping of parameter "
                           f"names to tensors); found {type(obj).__name__}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    broken = [k for k, v in obj.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise WeightsError(f"{name} holds NaN or infinite values in {_listing(broken)}: a model "
                           "with such weights gives meaningless outputs and maps")
    return obj, digest


def _listing(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def load_state_dict_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str,
                            arch: str) -> None:
    """Load ``state`` into ``model`` after checking that keys and shapes match exactly; on a
    mismatch, raise :class:`WeightsError` naming missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listing(unexpected)}")
        if mis_shaped:
            parts.append(f"shape mismatches (file != model): {_listing(mis_shaped)}")
        raise WeightsError(f"{source} does not fit the {arch} architecture; " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
