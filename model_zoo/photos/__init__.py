"""Real photos for the ImageNet models, offline: scikit-image's bundled photographs (each one's
credit and licence from scikit-image's data documentation) and a two-object composite, the cat
beside the espresso, for the paper's class-discrimination demo (its Fig. 1: a dog beside a cat).

The boxes of the main objects were drawn by hand once, by looking at the photos
(``boxes.json`` says how); with them pointing can be measured on real photos. The composite's
boxes are the photos' own boxes moved by the same crop and scale as their pixels."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Photo", "PhotoObject", "COMPOSITE", "photos", "photo", "names"]

BOXES = Path(__file__).with_name("boxes.json")
COMPOSITE = "cat and espresso"


@dataclass(frozen=True)
class PhotoObject:
    name: str
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in the photo's pixels, x1 and y1 excluded
    classes: tuple[int, ...]  # the ImageNet-1k indices that name it


@dataclass(frozen=True, eq=False)
class Photo:
    name: str
    title: str
    image: np.ndarray  # H x W x 3 uint8
    credit: str
    licence: str
    objects: tuple[PhotoObject, ...]

    def object_for(self, class_index: int) -> PhotoObject | None:
        """The object that ``class_index`` names, if any."""
        return next((o for o in self.objects if class_index in o.classes), None)


def _config() -> dict:
    return json.loads(BOXES.read_text())


def _load(function: str) -> np.ndarray:
    import skimage.data
    image = getattr(skimage.data, function)()
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def _composite(cfg: dict, singles: dict[str, Photo]) -> Photo:
    """Each tile a square crop of a photo, scaled to ``tile`` px, side by side in the middle
    band of a square ``canvas``; above and below, the grey (127) that both ImageNet
    normalisations map to about zero (so the model sees the two objects and nothing else)."""
    size, canvas_size = cfg["tile"], cfg["canvas"]
    canvas = np.full((canvas_size, canvas_size, 3), 127, np.uint8)
    top = (canvas_size - size) // 2
    objects, credits = [], []
    for i, tile in enumerate(cfg["tiles"]):
        src = singles[tile["photo"]]
        x0, y0, x1, y1 = tile["crop"]
        piece = Image.fromarray(src.image).crop((x0, y0, x1, y1)).resize((size, size), Image.BICUBIC)
        left = i * size
        canvas[top:top + size, left:left + size] = np.asarray(piece)
        sx, sy = size / (x1 - x0), size / (y1 - y0)
        for o in src.objects:
            bx0, by0 = max(o.box[0], x0), max(o.box[1], y0)
            bx1, by1 = min(o.box[2], x1), min(o.box[3], y1)
            if bx1 <= bx0 or by1 <= by0:
                continue
            box = (left + int(np.floor((bx0 - x0) * sx)), top + int(np.floor((by0 - y0) * sy)),
                   left + int(np.ceil((bx1 - x0) * sx)), top + int(np.ceil((by1 - y0) * sy)))
            objects.append(PhotoObject(o.name, box, o.classes))
        credits.append(f"{src.title}: {src.credit}, {src.licence}")
    return Photo(COMPOSITE, cfg["title"], canvas, "; ".join(credits), "as its two photos", tuple(objects))


@lru_cache(maxsize=1)
def _all() -> tuple[Photo, ...]:
    cfg = _config()
    singles = {}
    for name, p in cfg["photos"].items():
        objects = tuple(PhotoObject(o["name"], tuple(o["box"]), tuple(o["classes"])) for o in p["objects"])
        singles[name] = Photo(name, p["title"], _load(p["function"]), p["credit"], p["licence"], objects)
    return (_composite(cfg["composite"], singles), *singles.values())


def photos() -> list[Photo]:
    """The composite first (the class-discrimination demo), then the single photos."""
    return list(_all())


def names() -> list[str]:
    return [p.name for p in _all()]


def photo(name: str) -> Photo:
    for p in _all():
        if p.name == name:
            return p
    raise KeyError(f"no photo {name!r}; photos: {', '.join(names())}")
