"""Opening images safely: size limits, decompression-bomb guard, EXIF orientation, any mode to
8-bit RGB, and one clear message for anything that is not a readable image."""
from __future__ import annotations

import io
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageError", "open_image", "MAX_PIXELS", "MAX_DRAFT_PIXELS", "MAX_BYTES", "MAX_ASPECT",
           "IMAGE_SUFFIXES"]

MAX_PIXELS = 40_000_000  # decoded in full up to 40 megapixels: above what a CNN needs, far below a bomb
MAX_DRAFT_PIXELS = 170_000_000  # a JPEG up to this is decoded reduced (DCT scaling) to <= MAX_PIXELS
MAX_BYTES = 50 * 1024 * 1024
MAX_ASPECT = 20.0  # a 60000 x 1 strip resized to 224 px on its short side would be 13 million px long
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageError(ValueError):
    """The input is not an image we can use; the message says why."""


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            a = a / 257.0
        else:
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def open_image(source, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES,
               name: str | None = None) -> Image.Image:
    """An 8-bit RGB PIL image from a path, bytes or a binary file object.

    Checks the byte size, the aspect ratio (at most ``MAX_ASPECT`` : 1) and the declared pixel
    count before decoding: a 20000 x 20000 PNG is refused without being decompressed; a JPEG
    above ``max_pixels`` (a 48 MP phone photo) is decoded reduced by Pillow's ``draft`` (DCT
    scaling by 1/2, 1/4 or 1/8, so the full-size pixels are never held) and, if still above,
    ``reduce``; ``info["reduced_from"]`` then holds the original (width, height). Applies the EXIF
    orientation, converts palette, grey, 16-bit, CMYK and alpha images to RGB (alpha composited on
    white). Raises :class:`ImageError` with a specific message otherwise."""
    label = name
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = label or path.name
        if not path.is_file():
            raise ImageError(f"{label}: no such file")
        if path.stat().st_size > max_bytes:
            raise ImageError(f"{label}: file is {path.stat().st_size / 2**20:.1f} MB; the limit "
                             f"is {max_bytes / 2**20:.0f} MB")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(max_bytes + 1)
    else:
        raise TypeError(f"cannot open an image from {type(source).__name__}")
    label = label or "image"
    if len(data) > max_bytes:
        raise ImageError(f"{label}: file is larger than the {max_bytes / 2**20:.0f} MB limit")
    if not data:
        raise ImageError(f"{label}: file is empty")
    try:
        with warnings.catch_warnings():
            # our own limits below replace Pillow's warning; its hard error (a bomb) stays
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w < 1 or h < 1:
                raise ImageError(f"{label}: image has no pixels ({w} x {h})")
            if max(w, h) / min(w, h) > MAX_ASPECT:
                raise ImageError(
                    f"{label}: {w} x {h} pixels is a strip (aspect ratio {max(w, h) / min(w, h):.0f}:1); "
                    f"images up to {MAX_ASPECT:.0f}:1 are accepted, crop it first")
            reduced_from = None
            if w * h > max_pixels:
                if im.format != "JPEG" or w * h > MAX_DRAFT_PIXELS:
                    raise ImageError(
                        f"{label}: {w} x {h} pixels ({w * h / 1e6:.0f} MP) is above the "
                        f"{max_pixels / 1e6:.0f} MP limit (decompression-bomb guard); downscale it first"
                    )
                factor = math.sqrt(w * h / max_pixels)
                im.draft("RGB", (math.ceil(w / factor), math.ceil(h / factor)))
                reduced_from = (w, h)
            im.load()
            if reduced_from is not None and im.width * im.height > max_pixels:
                im = im.reduce(math.ceil(math.sqrt(im.width * im.height / max_pixels)))
            im = _to_rgb(ImageOps.exif_transpose(im))
            if reduced_from is not None:
                im.info["reduced_from"] = reduced_from
            return im
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image file (format not recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # Pillow refuses at open time, before we can read the size: take it from its message
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found.group(1)) / 1e6:.0f} MP" if found else "the image"
        raise ImageError(f"{label}: {size} is above the {max_pixels / 1e6:.0f} MP limit "
                         "(decompression-bomb guard); downscale it first") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{label}: image data is damaged or truncated ({err})") from None
