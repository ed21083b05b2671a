"""Reading weights safely: ``torch.load(..., weights_only=True)`` always, the file's sha256
recorded, and every mismatch between a state dict and an architecture named."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

__all__ = ["ZooError", "WeightsError", "WeightsUnavailable", "sha256_of", "read_state_dict",
           "load_state_dict_checked"]


class ZooError(ValueError):
    """A model could not be provided; the message says why and what to do."""


class WeightsError(ZooError):
    """A weights file is unreadable, unsafe, or does not fit the architecture."""


class WeightsUnavailable(ZooError):
    """The weights are not on this machine and could not be fetched."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def read_state_dict(path) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, sha256) from a checkpoint file. Accepts a plain state dict or a dict that
    holds one under ``state_dict`` or ``model``; strips a ``module.`` (DataParallel) prefix.
    Never unpickles anything but tensors and plain containers."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    digest = sha256_of(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ... here
        if "Unsupported global" in str(err):
            raise WeightsError(
                f"refused to load {path.name}: it references Python objects other than tensors "
                "(could execute code when unpickled); only plain state dicts are accepted "
                "(save with torch.save(model.state_dict(), path))"
            ) from None
        raise WeightsError(f"{path.name} is not a readable PyTorch weights file "
                           f"(corrupt or truncated?): {_first_line(err)}") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightsError(f"{path.name} does not hold a state dict (a mapping of parameter "
                           f"names to tensors); found {type(obj).__name__}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
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
