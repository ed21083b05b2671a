"""The shapes world: procedurally generated scenes whose object classes, boxes and masks are known.

Each scene is a pure function of ``(seed, index, kind, cue)``: numpy's PCG64 generator seeded
with those numbers drives every choice, and Pillow rasterises polygons without anti-aliasing, so
the same arguments give the same bytes. Objects never overlap each other or the cue corner, so
every mask is exactly the object's visible pixels.

* ``kind="single"``: one object (classification); ``kind="pair"``: two objects of different
  classes (the paper's "cat and dog" case, for class-discriminative maps); ``kind="multi"``: one
  to four objects, classes drawn independently (repeats allowed), for detection and
  segmentation.
* ``cue``: a spurious corner mark (a small square in the top-left corner whose colour encodes a
  class), for bias experiments: ``"none"``, ``"match"`` (the object's class), ``"flip"`` (another
  class), ``"random"`` (any class, uncorrelated).
* Backgrounds are noisy and textured (gradients, stripes); clutter (lines, dots) belongs to no
  class.
* Every class is a solid convex shape, so "the map lands on the object" is unambiguous: a ring's
  hole, a crescent's bay or a star's notches lie inside the outline but off the object's pixels,
  and corner-detecting features peak exactly there.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["CLASSES", "CUE_COLOURS", "CUE_BOX", "SIZE", "ShapeObject", "Cue", "Scene",
           "make_scene", "make_scenes", "KINDS", "CUES"]

CLASSES = ("circle", "square", "triangle", "ellipse", "bar", "hexagon", "semicircle", "diamond")
SIZE = 64
KINDS = ("single", "pair", "multi")
CUES = ("none", "match", "flip", "random")
CUE_BOX = (2, 2, 9, 9)  # x0, y0, x1, y1 (half-open): the top-left corner mark
CUE_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0),
               (255, 0, 255), (0, 255, 255), (255, 255, 255), (0, 0, 0))
_KEEP_OUT = 12  # objects stay clear of the cue corner [0, 12) x [0, 12)
_KIND_CODE = {"single": 1, "pair": 2, "multi": 3}
_CUE_CODE = {"none": 0, "match": 1, "flip": 2, "random": 3}


@dataclass(frozen=True, eq=False)
class ShapeObject:
    label: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1: half-open pixel box around the mask
    mask: np.ndarray  # H x W bool

    @property
    def name(self) -> str:
        return CLASSES[self.label]


@dataclass(frozen=True)
class Cue:
    label: int
    box: tuple[int, int, int, int] = CUE_BOX


@dataclass(frozen=True, eq=False)
class Scene:
    image: np.ndarray  # H x W x 3 uint8
    objects: tuple[ShapeObject, ...]
    cue: Cue | None
    seed: int
    index: int
    kind: str
    clutter: np.ndarray | None = None  # H x W bool: the visible pixels of the lines and dots

    @property
    def label(self) -> int:
        """The class of a single-object scene."""
        if len(self.objects) != 1:
            raise ValueError(f"a {self.kind} scene has {len(self.objects)} objects, not one label")
        return self.objects[0].label

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)

    def __repr__(self):
        names = "+".join(o.name for o in self.objects)
        cue = f", cue={CLASSES[self.cue.label]}" if self.cue else ""
        return f"Scene({self.kind} #{self.index} seed {self.seed}: {names}{cue})"


# ----------------------------------------------------------------------------- drawing


def _regular(n: int, r: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a regular n-gon of circumradius r."""
    return [(r * math.cos(angle + 2 * math.pi * i / n), r * math.sin(angle + 2 * math.pi * i / n))
            for i in range(n)]


def _polygon_mask(points, cx, cy, size) -> np.ndarray:
    canvas = Image.new("1", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([(cx + x, cy + y) for x, y in points], fill=1)
    return np.asarray(canvas, dtype=bool)


def _disc_mask(cx, cy, r, size) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def _shape_mask(label: int, cx: float, cy: float, r: float, angle: float, size: int) -> np.ndarray:
    name = CLASSES[label]
    if name == "circle":
        return _disc_mask(cx, cy, r, size)
    if name == "square":
        return _polygon_mask(_regular(4, r * 1.05, angle + math.pi / 4), cx, cy, size)
    if name == "triangle":
        return _polygon_mask(_regular(3, r * 1.1, angle - math.pi / 2), cx, cy, size)
    if name == "ellipse":  # 0.55 as wide as long
        c, s = math.cos(angle), math.sin(angle)
        pts = [(0.6 * r * math.cos(a), 1.1 * r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 40, endpoint=False)]
        return _polygon_mask([(x * c - y * s, x * s + y * c) for x, y in pts], cx, cy, size)
    if name == "bar":  # rectangle, 0.4 as wide as long
        c, s = math.cos(angle), math.sin(angle)
        pts = [(-0.45 * r, -1.1 * r), (0.45 * r, -1.1 * r), (0.45 * r, 1.1 * r), (-0.45 * r, 1.1 * r)]
        return _polygon_mask([(x * c - y * s, x * s + y * c) for x, y in pts], cx, cy, size)
    if name == "hexagon":
        return _polygon_mask(_regular(6, r, angle), cx, cy, size)
    if name == "semicircle":  # half-disc, centred on its own area
        arc = [(r * math.cos(a), r * math.sin(a) - 0.42 * r)
               for a in np.linspace(0, math.pi, 25)]
        c, s = math.cos(angle), math.sin(angle)
        return _polygon_mask([(x * c - y * s, x * s + y * c) for x, y in arc], cx, cy, size)
    if name == "diamond":  # rhombus, 0.55 as wide as long
        c, s = math.cos(angle), math.sin(angle)
        pts = [(0, -1.1 * r), (0.6 * r, 0), (0, 1.1 * r), (-0.6 * r, 0)]
        return _polygon_mask([(x * c - y * s, x * s + y * c) for x, y in pts], cx, cy, size)
    raise ValueError(f"unknown shape class {label}")


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _colour(rng: np.random.Generator) -> np.ndarray:
    h, s, v = rng.random(), 0.45 + 0.55 * rng.random(), 0.35 + 0.65 * rng.random()
    return np.array(colorsys.hsv_to_rgb(h, s, v)) * 255.0


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy, textured background and its mean colour."""
    base = np.array(colorsys.hsv_to_rgb(rng.random(), 0.35 * rng.random(), 0.25 + 0.6 * rng.random())) * 255.0
    yy, xx = np.mgrid[0:size, 0:size] / size
    texture = rng.integers(3)
    if texture == 0:  # smooth gradient
        a = rng.uniform(0, 2 * math.pi)
        field = (np.cos(a) * xx + np.sin(a) * yy - 0.5) * rng.uniform(20, 60)
    elif texture == 1:  # stripes
        a = rng.uniform(0, 2 * math.pi)
        field = np.sin((np.cos(a) * xx + np.sin(a) * yy) * rng.uniform(8, 30)) * rng.uniform(8, 20)
    else:
        field = np.zeros_like(xx)
    img = base[None, None, :] + field[..., None] + rng.normal(0, rng.uniform(4, 16), (size, size, 3))
    return img, base


def _clutter(rng: np.random.Generator, img: np.ndarray, size: int) -> np.ndarray:
    """Draw 2 to 5 lines and dots on ``img``; returns the mask of the pixels drawn."""
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    drawn = Image.new("1", canvas.size, 0)
    draw, mark = ImageDraw.Draw(canvas), ImageDraw.Draw(drawn)
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(int(c) for c in _colour(rng))
        if rng.random() < 0.5:
            x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, size, 4))
            width = int(rng.integers(1, 3))
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=width)
            mark.line([(x0, y0), (x1, y1)], fill=1, width=width)
        else:
            x, y, r = float(rng.uniform(0, size)), float(rng.uniform(0, size)), float(rng.uniform(0.8, 2.0))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
            mark.ellipse([x - r, y - r, x + r, y + r], fill=1)
    img[...] = np.asarray(canvas, dtype=np.float64)
    return np.array(drawn, dtype=bool)


def _place(rng, radii, size, tries=200):
    """Centres for objects of the given radii: inside the image, clear of the cue corner and
    of each other (2 px margin). Returns None if no placement was found."""
    boxes = []
    for r in radii:
        lo, hi = math.ceil(r * 1.2) + 1, size - math.ceil(r * 1.2) - 1
        for _ in range(tries):
            cx, cy = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
            ext = r * 1.2 + 2
            if cx - ext < _KEEP_OUT and cy - ext < _KEEP_OUT:
                continue
            if all(abs(cx - bx) > ext + br or abs(cy - by) > ext + br for bx, by, br in boxes):
                boxes.append((cx, cy, ext))
                break
        else:
            return None
    return [(cx, cy) for cx, cy, _ in boxes]


def make_scene(seed: int, index: int, kind: str = "single", cue: str = "none",
               size: int = SIZE, label: int | None = None) -> Scene:
    """Scene number ``index`` of the world ``seed``. ``label`` forces the (first) object's class."""
    if kind not in _KIND_CODE:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(KINDS)}")
    if cue not in _CUE_CODE:
        raise ValueError(f"unknown cue policy {cue!r}; choose one of {', '.join(CUES)}")
    if kind != "single" and cue in ("match", "flip"):
        raise ValueError(f"a {kind} scene can hold several objects: its cue can only be 'none' or 'random'")
    # The cue has its own random stream: the same index is the same scene under every cue
    # policy, so removing or flipping the mark changes nothing else. (The 0 is a fixed slot
    # that keeps scenes byte-identical to those the shipped models were trained on.)
    key = [int(seed), int(index), _KIND_CODE[kind], 0, int(size)]
    rng = np.random.default_rng(key)
    n = len(CLASSES)
    first = int(rng.integers(n)) if label is None else int(label)
    if kind == "single":
        labels = [first]
    elif kind == "pair":
        labels = [first, int((first + rng.integers(1, n)) % n)]
    else:
        labels = [first] + [int(v) for v in rng.integers(n, size=int(rng.integers(0, 4)))]
    scale = size / 64.0
    lo, hi = {"single": (8.0, 14.0), "pair": (7.0, 11.0), "multi": (6.0, 9.0)}[kind]
    radii = [float(rng.uniform(lo, hi)) * scale for _ in labels]
    centres = _place(rng, radii, size)
    while centres is None:  # no room (four large objects of a multi scene): all a little smaller, again
        radii = [r * 0.9 for r in radii] if kind == "multi" else radii
        centres = _place(rng, radii, size)
    img, bg = _background(rng, size)
    clutter = _clutter(rng, img, size)
    objects = []
    for lab, r, (cx, cy) in zip(labels, radii, centres):
        colour = _colour(rng)
        while np.abs(colour - bg).sum() < 150:
            colour = _colour(rng)
        mask = _shape_mask(lab, cx, cy, r, float(rng.uniform(0, 2 * math.pi)), size)
        shade = colour[None, :] + rng.normal(0, 4, (int(mask.sum()), 3))
        img[mask] = shade
        objects.append(ShapeObject(lab, _box(mask), mask))
    cue_obj = None
    if cue != "none":
        cue_rng = np.random.default_rng(key + [_CUE_CODE[cue]])  # its own stream
        if cue == "match":
            cue_label = first
        elif cue == "flip":
            cue_label = int((first + cue_rng.integers(1, n)) % n)
        else:
            cue_label = int(cue_rng.integers(n))
        x0, y0, x1, y1 = CUE_BOX
        img[y0:y1, x0:x1] = CUE_COLOURS[cue_label]
        cue_obj = Cue(cue_label)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    for o in objects:  # objects and the mark were drawn over the clutter
        clutter &= ~o.mask
    if cue_obj is not None:
        x0, y0, x1, y1 = CUE_BOX
        clutter[y0:y1, x0:x1] = False
    return Scene(image, tuple(objects), cue_obj, int(seed), int(index), kind, clutter)


def make_scenes(n: int, seed: int, kind: str = "single", cue: str = "none", size: int = SIZE,
                start: int = 0) -> Iterator[Scene]:
    """Scenes ``start .. start + n - 1`` of the world ``seed``, generated lazily."""
    for i in range(start, start + n):
        yield make_scene(seed, i, kind, cue, size)
