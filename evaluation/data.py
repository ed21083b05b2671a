"""Evaluation data, read lazily one image at a time: the shapes world (boxes and masks known)
or a folder of images with Pascal VOC XML boxes (ImageNet val's format)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from explainers.images import IMAGE_SUFFIXES, ImageError, open_image
from model_zoo.shapes import world
from model_zoo.shapes.voc import read_voc

__all__ = ["Sample", "Object", "shapes", "voc_folder", "VocFolder", "from_spec"]


@dataclass(frozen=True)
class Object:
    name: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1, half-open, in the image's pixels
    mask: np.ndarray | None = None  # H x W bool when known (shapes world)

    def region(self, shape) -> np.ndarray:
        """The object's pixels: its mask, or its box filled."""
        if self.mask is not None:
            return self.mask
        r = np.zeros(shape, bool)
        x0, y0, x1, y1 = self.box
        r[y0:y1, x0:x1] = True
        return r


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


class VocFolder:
    """Images under ``path`` (or ``path/images``) with ``<stem>.xml`` beside them or in
    ``path/annotations``, read one at a time. Nothing is dropped silently: after (or during) the
    iteration ``skipped`` lists (file name, reason) for every image left out: no annotation, an
    unreadable image, an unreadable annotation."""

    def __init__(self, path, n: int | None = None):
        self.root = Path(path)
        if not self.root.is_dir():
            raise ValueError(f"data folder {str(self.root)!r} does not exist")
        self.n = n
        self.skipped: list[tuple[str, str]] = []

    def __iter__(self) -> Iterator[Sample]:
        root = self.root
        images = root / "images" if (root / "images").is_dir() else root
        notes = root / "annotations" if (root / "annotations").is_dir() else images
        count = 0
        self.skipped = []
        for p in sorted(images.iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if self.n is not None and count >= self.n:
                break
            xml = notes / f"{p.stem}.xml"
            if not xml.exists():
                self.skipped.append((p.name, f"no annotation {xml.name}"))
                continue
            try:
                img = np.asarray(open_image(p))
                ann = read_voc(xml)
            except (ImageError, ValueError) as err:
                self.skipped.append((p.name, str(err).split(": ", 1)[-1][:200]))
                continue
            count += 1
            yield Sample(p.name, img, tuple(Object(o.name, tuple(o.box)) for o in ann.objects))


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
