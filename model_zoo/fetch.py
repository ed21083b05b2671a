"""Downloading a registered model's weights: streamed to a temporary file beside the target,
checked, then renamed into place, so an interrupted or corrupt download never lands in the cache.

The check is torchvision's: a weights file is named ``<name>-<first hex digits of its
sha256>.pth`` and the downloaded bytes must hash to that prefix (``torch.hub`` checks the same).
``STUDIO_WEIGHTS_BASE_URL`` replaces the download host and path (a mirror; the tests' local
server): the file name, and so the hash prefix, stay the entry's own. Progress is reported
through a callback ``progress(done_bytes, total_bytes or None)``; the library never prints."""
from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from .weights import WeightsUnavailable

__all__ = ["fetch_weights", "download", "download_url", "hash_prefix", "CONNECT_TIMEOUT_S"]

CONNECT_TIMEOUT_S = float(os.environ.get("STUDIO_CONNECT_TIMEOUT_S", "10"))
_CHUNK = 1 << 16
_PREFIX = re.compile(r"-([0-9a-f]{8,64})$")


def hash_prefix(url: str) -> str | None:
    """The sha256 prefix a torchvision-style file name carries (``resnet50-11ad3fa6.pth``)."""
    found = _PREFIX.search(Path(url.split("?", 1)[0]).stem)
    return found.group(1) if found else None


def download_url(url: str) -> str:
    """``url`` with its host and path replaced by ``STUDIO_WEIGHTS_BASE_URL`` when that is set."""
    base = os.environ.get("STUDIO_WEIGHTS_BASE_URL")
    if not base:
        return url
    return base.rstrip("/") + "/" + Path(url.split("?", 1)[0]).name


def download(url: str, path: Path, progress: Callable[[int, int | None], None] | None = None,
             timeout: float = CONNECT_TIMEOUT_S) -> Path:
    """Download ``url`` to ``path`` (see the module docstring); returns ``path``. Raises
    :class:`WeightsUnavailable` with a one-line reason, leaving nothing at ``path`` and no
    temporary file behind."""
    path = Path(path)
    prefix = hash_prefix(url)
    where = f"download {url} and save it as {path}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsUnavailable(f"cannot write weights to {path.parent}: {err.strerror or err}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                if progress:
                    progress(0, total)
                while True:
                    block = response.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
            if total is not None and done != total:
                raise WeightsUnavailable(f"the download of {url} stopped after {done:,} of {total:,} bytes; "
                                         f"try again, or {where}")
        except WeightsUnavailable:
            raise
        except urllib.error.HTTPError as err:
            raise WeightsUnavailable(f"{url} answered HTTP {err.code} ({err.reason}); {where}") from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            text = str(reason) or type(reason).__name__
            if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in text:
                text = f"no answer within {timeout:.0f} s"
            raise WeightsUnavailable(f"cannot download {url} ({text}): offline? {where[0].upper()}{where[1:]}"
                                     ) from None
        got = digest.hexdigest()
        if prefix is not None and not got.startswith(prefix):
            raise WeightsUnavailable(f"the file downloaded from {url} is corrupt: its sha256 starts {got[:len(prefix)]}, "
                                     f"the name says {prefix}; nothing was saved")
        os.replace(tmp, path)  # only a complete, verified file gets the real name
        return path
    finally:
        if tmp.exists():
            tmp.unlink()


def fetch_weights(model_id: str, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """The registered model's own weights file, downloaded when missing (through
    ``STUDIO_WEIGHTS_BASE_URL`` when set); returns its path."""
    from .registry import get_spec  # the registry imports this module

    spec = get_spec(model_id)
    path = spec.weights_file()
    if path.is_file():
        return path
    if spec.pretrained is not None:  # timm downloads into its own cache (its own progress, not ours)
        from .registry import load
        if progress:
            progress(0, None)
        load(model_id)
        path = spec.weights_file()
        if progress:
            progress(1, 1)
        return path
    if spec.weights_url is None:
        raise WeightsUnavailable(f"weights for {model_id!r} are missing and have no download address: "
                                 f"expected {path}")
    return download(download_url(spec.weights_url), path, progress)
