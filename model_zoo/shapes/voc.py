"""Pascal VOC XML for scenes, so the evaluation code reads the shapes world and a user's own data
(ImageNet val's XML boxes, for instance) the same way. Boxes follow VOC: 1-based, inclusive
(``xmin = x0 + 1``, ``xmax = x1`` for our half-open 0-based boxes)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .world import CLASSES, Scene

__all__ = ["VocObject", "VocAnnotation", "scene_to_xml", "read_voc", "export_scene", "outside", "clip"]


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple[int, int, int, int]  # half-open, 0-based: x0, y0, x1, y1


@dataclass(frozen=True)
class VocAnnotation:
    filename: str
    width: int | None  # None when the file has no <size> (some exporters leave it out)
    height: int | None
    objects: tuple[VocObject, ...]


def _sub(parent, tag, text=None):
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def scene_to_xml(scene: Scene, filename: str) -> str:
    h, w = scene.image.shape[:2]
    root = ET.Element("annotation")
    _sub(root, "folder", "shapes")
    _sub(root, "filename", filename)
    src = _sub(root, "source")
    _sub(src, "database", f"Grad-CAM Studio shapes world (seed {scene.seed}, {scene.kind} #{scene.index})")
    size = _sub(root, "size")
    _sub(size, "width", w)
    _sub(size, "height", h)
    _sub(size, "depth", 3)
    _sub(root, "segmented", 1)
    for obj in scene.objects:
        o = _sub(root, "object")
        _sub(o, "name", obj.name)
        _sub(o, "pose", "Unspecified")
        _sub(o, "truncated", 0)
        _sub(o, "difficult", 0)
        b = _sub(o, "bndbox")
        x0, y0, x1, y1 = obj.box
        for tag, v in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            _sub(b, tag, v)
    if scene.cue is not None:  # not a VOC object: the spurious mark, for bias experiments
        c = _sub(root, "cue")
        _sub(c, "name", CLASSES[scene.cue.label])
        x0, y0, x1, y1 = scene.cue.box
        b = _sub(c, "bndbox")
        for tag, v in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            _sub(b, tag, v)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _number(parent, tag: str, where: str) -> int:
    text = parent.findtext(tag)
    if text is None or not text.strip():
        raise ValueError(f"{where} has no <{tag}>")
    try:
        return int(float(text))
    except ValueError:
        raise ValueError(f"{where}: <{tag}> is not a number ({text.strip()[:40]!r})") from None


def read_voc(path) -> VocAnnotation:
    """Parse a VOC XML file (ours or ImageNet val's) into 0-based half-open boxes. ``<size>`` is
    optional (width and height are then None: the image itself has them). Raises ``ValueError``
    naming the file and what is wrong: unreadable (a directory, no permission), not XML, an
    object without ``<name>`` or ``<bndbox>``, a coordinate missing or not a number, an empty
    box, or a box beyond the ``<size>`` it declares."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not a readable VOC XML file ({err})") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None
    size = root.find("size")
    width = height = None
    try:
        if size is not None and size.findtext("width") and size.findtext("height"):
            width, height = _number(size, "width", "<size>"), _number(size, "height", "<size>")
        objects = []
        for k, o in enumerate(root.findall("object"), 1):
            name = (o.findtext("name") or "").strip()
            if not name:
                raise ValueError(f"object {k} has no <name>")
            where = f"object {k} ({name[:40]})"
            b = o.find("bndbox")
            if b is None:
                raise ValueError(f"{where} has no <bndbox>")
            xmin, ymin, xmax, ymax = (_number(b, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
            box = (xmin - 1, ymin - 1, xmax, ymax)
            if box[0] >= box[2] or box[1] >= box[3]:
                raise ValueError(f"{where}: its box is empty (xmin {xmin}, xmax {xmax}, ymin {ymin}, ymax {ymax})")
            if width is not None and outside(box, width, height):
                raise ValueError(f"{where}: its box {box} lies outside the {width}x{height} image its <size> declares")
            objects.append(VocObject(name, box))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return VocAnnotation(root.findtext("filename") or "", width, height, tuple(objects))


def outside(box, width: int, height: int, slack: int = 1) -> bool:
    """True when ``box`` (0-based, half-open) reaches more than ``slack`` pixels beyond a
    ``width`` x ``height`` image (one pixel is allowed: annotation tools disagree on whether
    VOC's coordinates start at 0 or 1)."""
    x0, y0, x1, y1 = box
    return x0 < -slack or y0 < -slack or x1 > width + slack or y1 > height + slack


def clip(box, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` clipped to a ``width`` x ``height`` image."""
    x0, y0, x1, y1 = box
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def export_scene(scene: Scene, out: Path, stem: str) -> None:
    """images/<stem>.png, annotations/<stem>.xml and masks/<stem>.png (pixel value k + 1 for
    object k, 0 for background)."""
    for sub in ("images", "annotations", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    scene.pil().save(out / "images" / f"{stem}.png")
    (out / "annotations" / f"{stem}.xml").write_text(scene_to_xml(scene, f"{stem}.png"))
    masks = np.zeros(scene.image.shape[:2], np.uint8)
    for k, obj in enumerate(scene.objects):
        masks[obj.mask] = k + 1
    Image.fromarray(masks).save(out / "masks" / f"{stem}.png")
