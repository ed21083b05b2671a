"""Evaluation data, read lazily one image at a time: the shapes world (boxes and masks known)
or a folder of images with Pascal VOC XML boxes (ImageNet val's format)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from explainers.images import IMAGE_SUFFIXES, ImageError, open_image
from model_zoo.shapes import world
from model_zoo.shapes.voc import clip, outside, read_voc

__all__ = ["Sample", "Object", "shapes", "voc_folder", "VocFolder", "from_spec", "fit_to_image"]


@dataclass(frozen=True)
class Object:
    name: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1, half-open, in the image's pixels
    mask: np.ndarray | None = None  # H x W bool when known (shapes world)


@dataclass(frozen=True)
class Sample:
    name: str
    image: np.ndarray  # H x W x 3 uint8
    objects: tuple[Object, ...]


def shapes(n: int, seed: int = 20000, kind: str = "single") -> Iterator[Sample]:
    for i in range(n):
        s = world.make_scene(seed, i, kind)
        yield Sample(f"shapes-{kind}-{seed}-{i}", s.image,
                     tuple(Object(o.name, tuple(o.box), o.mask) for o in s.objects))


def fit_to_image(objects: tuple[Object, ...], size: tuple[int, int]) -> tuple[Object, ...] | str:
    """``objects`` with their boxes clipped to an image of ``size`` (width, height), or why the
    image cannot be used: an empty box, or one that lies outside it (beyond a pixel's slack,
    ``voc.outside``)."""
    w, h = size
    for k, o in enumerate(objects, 1):
        if o.box[0] >= o.box[2] or o.box[1] >= o.box[3]:
            return f"object {k} ({o.name[:40]}): its box {tuple(o.box)} is empty"
        if outside(o.box, w, h):
            return f"object {k} ({o.name[:40]}): its box {tuple(o.box)} lies outside the {w}x{h} image"
    return tuple(Object(o.name, clip(o.box, w, h), o.mask) for o in objects)


class VocFolder:
    """Images under ``path`` (or ``path/images``) with ``<stem>.xml`` beside them or in
    ``path/annotations``, read one at a time. Nothing is dropped silently: after (or during) the
    iteration ``skipped`` lists (file name, reason) for every image left out: no annotation, an
    unreadable image, an unreadable or invalid annotation (``read_voc``'s reasons), a box outside
    the image."""

    def __init__(self, path, n: int | None = None):
        self.root = Path(path)
        if not self.root.is_dir():
            raise ValueError(f"data folder {str(self.root)!r} does not exist")
        self.n = n
        self.skipped: list[tuple[str, str]] = []

    @property
    def _images(self) -> Path:
        return self.root / "images" if (self.root / "images").is_dir() else self.root

    def files(self) -> list[Path]:
        """The folder's images, in name order."""
        return sorted(p for p in self._images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def annotate(self, p: Path) -> tuple[Object, ...] | str:
        """The objects of image ``p`` from its XML, or why it has none."""
        notes = self.root / "annotations" if (self.root / "annotations").is_dir() else self._images
        xml = notes / f"{p.stem}.xml"
        if not xml.exists():
            return f"no annotation {xml.name}"
        try:
            ann = read_voc(xml)
        except ValueError as err:  # read_voc's message starts with the path: the reason is the rest
            return f"{xml.name}: {str(err).split(': ', 1)[-1][:200]}"
        return tuple(Object(o.name, tuple(o.box)) for o in ann.objects)

    def __iter__(self) -> Iterator[Sample]:
        count = 0
        self.skipped = []
        for p in self.files():
            if self.n is not None and count >= self.n:
                break
            objects = self.annotate(p)
            if isinstance(objects, str):
                self.skipped.append((p.name, objects))
                continue
            try:
                img = np.asarray(open_image(p))
            except ImageError as err:
                self.skipped.append((p.name, str(err).split(": ", 1)[-1][:200]))
                continue
            objects = fit_to_image(objects, (img.shape[1], img.shape[0]))
            if isinstance(objects, str):
                self.skipped.append((p.name, objects))
                continue
            count += 1
            yield Sample(p.name, img, objects)


def voc_folder(path, n: int | None = None) -> VocFolder:
    """A :class:`VocFolder` of at most ``n`` images."""
    return VocFolder(path, n)


def from_spec(spec: str, n: int, seed: int = 20000):
    """``shapes`` / ``shapes:single`` / ``shapes:pair``, or a folder path."""
    if spec.startswith("shapes"):
        kind = spec.split(":", 1)[1] if ":" in spec else "single"
        if kind not in world.KINDS:
            raise ValueError(f"unknown shapes split {kind!r}; choose one of {', '.join(world.KINDS)}")
        return shapes(n, seed, kind)
    return voc_folder(spec, n)
