"""Downloading a registered model's weights: streamed to a temporary file beside the target,
checked, then renamed into place, so an interrupted or corrupt download never lands in the cache.

The check is torchvision's: a weights file is named ``<name>-<first hex digits of its
sha256>.pth`` and the downloaded bytes must hash to that prefix (``torch.hub`` checks the same).
``STUDIO_WEIGHTS_BASE_URL`` replaces the download host and path (a mirror; the tests' local
server): the file name, and so the hash prefix, stay the entry's own. Progress is reported
through a callback ``progress(done_bytes, total_bytes or None)``; the library never prints.

Every download is bounded:

- in time: ``STUDIO_DOWNLOAD_DEADLINE_S`` (default 1800 s) for the whole transfer, besides the
  per-read timeout ``STUDIO_CONNECT_TIMEOUT_S``; a server that drips a byte at a time is cut off
  at the deadline (at most one read timeout later);
- in size: the entry's known size (``weights_mb``) with 10 % and 64 kB of slack, else
  ``STUDIO_DOWNLOAD_MAX_MB`` (default 4096, above torchvision's largest ImageNet weights); a
  ``Content-Length`` above the bound is refused before a byte is written, and a stream longer than
  its bound or its own ``Content-Length`` is cut off;
- on disk: a download whose length is known is refused when the disk has less free space, and a
  full disk while writing is named as such (not "offline?").

Partial files (``.<name>.*.part``) that a killed process left behind are removed by the next
download into the same folder once they are older than the deadline (so no live download's file
is touched)."""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from .weights import WeightsUnavailable

__all__ = ["download", "download_url", "hash_prefix", "size_bound", "remove_stale_parts",
           "CONNECT_TIMEOUT_S", "DEADLINE_S", "MAX_MB"]

CONNECT_TIMEOUT_S = float(os.environ.get("STUDIO_CONNECT_TIMEOUT_S", "10"))
DEADLINE_S = float(os.environ.get("STUDIO_DOWNLOAD_DEADLINE_S", "1800"))
MAX_MB = float(os.environ.get("STUDIO_DOWNLOAD_MAX_MB", "4096"))
_CHUNK = 1 << 16
_PREFIX = re.compile(r"-([0-9a-f]{8,64})$")


class _LocalWriteError(Exception):
    """Writing the temporary file failed: this machine's fault, not the network's."""


_HUB = re.compile(r"huggingface\.co/[^/]+/([^/]+)/resolve/[^/]+/([^/]+)$")


def hash_prefix(url: str) -> str | None:
    """The sha256 prefix a torchvision-style file name carries (``resnet50-11ad3fa6.pth``)."""
    found = _PREFIX.search(Path(url.split("?", 1)[0]).stem)
    return found.group(1) if found else None


def download_url(url: str) -> str:
    """``url`` with its host and path replaced by ``STUDIO_WEIGHTS_BASE_URL`` when that is set:
    the mirror serves the file under its name, or, for a file of the Hugging Face hub (whose
    repositories name their files alike: ``open_clip_pytorch_model.bin``), under
    ``<repository>/<name>``."""
    base = os.environ.get("STUDIO_WEIGHTS_BASE_URL")
    if not base:
        return url
    path = url.split("?", 1)[0]
    hub = _HUB.search(path)
    return base.rstrip("/") + "/" + (f"{hub.group(1)}/{hub.group(2)}" if hub else Path(path).name)


def size_bound(expected_mb: float | None) -> int:
    """The most bytes a download may bring: the expected size with 10 % and 64 kB of slack when it
    is known (torchvision's ``_file_size`` is rounded), else ``STUDIO_DOWNLOAD_MAX_MB``."""
    if expected_mb:
        return int(expected_mb * 1.1 * 2**20) + 2**16
    return int(MAX_MB * 2**20)


def remove_stale_parts(folder: Path, older_than_s: float | None = None) -> int:
    """Remove the partial files (``.*.part``) in ``folder`` that are older than any live download
    can be (``DEADLINE_S`` plus one read timeout: a killed process left them); returns how many
    were removed."""
    older_than_s = DEADLINE_S + CONNECT_TIMEOUT_S if older_than_s is None else older_than_s
    removed, now = 0, time.time()
    try:
        parts = list(Path(folder).glob(".*.part"))
    except OSError:
        return 0
    for part in parts:
        try:
            if part.is_file() and now - part.stat().st_mtime > older_than_s:
                part.unlink()
                removed += 1
        except OSError:  # another process removed it first, or it is not ours to remove
            pass
    return removed


def _mb(n: int) -> str:
    return f"{n / 2**10:,.0f} kB" if n < 2**20 else f"{n / 2**20:,.1f} MB"


def _write(out, block: bytes) -> None:
    try:
        out.write(block)
    except OSError as err:
        raise _LocalWriteError(err) from None


def download(url: str, path: Path, progress: Callable[[int, int | None], None] | None = None,
             timeout: float = CONNECT_TIMEOUT_S, deadline_s: float | None = None,
             max_bytes: int | None = None) -> Path:
    """Download ``url`` to ``path`` (see the module docstring for the bounds); returns ``path``.
    ``deadline_s`` defaults to ``DEADLINE_S`` (read at each call) and ``max_bytes`` to
    :func:`size_bound` of an unknown size. Raises
    :class:`WeightsUnavailable` with a one-line reason, leaving nothing at ``path`` and no
    temporary file behind."""
    path = Path(path)
    prefix = hash_prefix(url)
    limit = size_bound(None) if max_bytes is None else int(max_bytes)
    deadline_s = DEADLINE_S if deadline_s is None else float(deadline_s)
    where = f"download {url} and save it as {path}"
    started = time.monotonic()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsUnavailable(f"cannot write weights to {path.parent}: {err.strerror or err}") from None
    remove_stale_parts(path.parent, older_than_s=deadline_s + timeout)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                if total is not None and total > limit:
                    raise WeightsUnavailable(f"{url} offers {_mb(total)}, more than the {_mb(limit)} this download "
                                             f"may bring; nothing was saved")
                if total is not None:
                    free = shutil.disk_usage(path.parent).free
                    if free < total:
                        raise WeightsUnavailable(f"the disk holding {path.parent} has {_mb(free)} free, the download "
                                                 f"of {url} needs {_mb(total)}; free some space and try again")
                done = 0
                if progress:
                    progress(0, total)
                while True:
                    if time.monotonic() - started > deadline_s:
                        raise WeightsUnavailable(f"the download of {url} did not finish within {deadline_s:,.0f} s "
                                                 f"({_mb(done)} arrived); try again later, or {where}")
                    block = response.read1(_CHUNK)  # what has arrived, not a full chunk: the deadline holds
                    if not block:
                        break
                    done += len(block)
                    if done > (limit if total is None else min(total, limit)):
                        bound = "its own Content-Length" if total is not None and total <= limit else _mb(limit)
                        raise WeightsUnavailable(f"{url} sent more than {bound}; the download was stopped and "
                                                 f"nothing was saved")
                    _write(out, block)
                    digest.update(block)
                    if progress:
                        progress(done, total)
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as err:
                    raise _LocalWriteError(err) from None
            if total is not None and done != total:
                raise WeightsUnavailable(f"the download of {url} stopped after {done:,} of {total:,} bytes; "
                                         f"try again, or {where}")
        except WeightsUnavailable:
            raise
        except _LocalWriteError as err:
            cause = err.args[0]
            if cause.errno in (errno.ENOSPC, errno.EDQUOT):
                raise WeightsUnavailable(f"the disk holding {path.parent} is full: the download of {url} could not "
                                         f"be saved; free some space and try again") from None
            raise WeightsUnavailable(f"cannot write the download of {url} to {path.parent}: "
                                     f"{cause.strerror or cause}") from None
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
