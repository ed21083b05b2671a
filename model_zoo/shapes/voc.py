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

__all__ = ["VocObject", "VocAnnotation", "scene_to_xml", "read_voc", "export_scene"]


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


def read_voc(path) -> VocAnnotation:
    """Parse a VOC XML file (ours or ImageNet val's) into 0-based half-open boxes. ``<size>`` is
    optional (width and height are then None: the image itself has them)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not a readable VOC XML file ({err})") from None
    size = root.find("size")
    width = height = None
    if size is not None and size.findtext("width") and size.findtext("height"):
        width, height = int(float(size.findtext("width"))), int(float(size.findtext("height")))
    objects = []
    for o in root.findall("object"):
        b = o.find("bndbox")
        xmin, ymin, xmax, ymax = (int(float(b.findtext(t))) for t in ("xmin", "ymin", "xmax", "ymax"))
        objects.append(VocObject(o.findtext("name"), (xmin - 1, ymin - 1, xmax, ymax)))
    return VocAnnotation(root.findtext("filename") or "", width, height, tuple(objects))


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
