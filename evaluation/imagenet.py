"""ImageNet validation as users have it, read lazily as :class:`evaluation.data.Sample`:

* the ILSVRC layout: ``images/`` (or the folder itself) and an XML per image (``annotations/`` or
  beside it; Pascal VOC format whose object names are WordNet ids, ``n01751748``);
* Kaggle's layout: ``LOC_val_solution.csv`` (``ImageId,PredictionString`` with
  ``wnid x0 y0 x1 y1`` repeated per box) and the images under ``ILSVRC/Data/CLS-LOC/val/``,
  ``val/`` or ``images/``.

WordNet ids become the model's class names through a mapping file: one line per class in the
model's class order, a wnid first (``LOC_synset_mapping.txt``: ``n01440764 tench, Tinca tinca``).
Every box of an image is kept (the ILSVRC rule: a prediction localises when it names one of the
image's classes and overlaps one of that class's boxes by IoU >= 0.5). Kaggle's boxes are the
XML files' numbers (1-based, inclusive), so both become the same 0-based half-open boxes
(``model_zoo.shapes.voc.read_voc``).
"""
from __future__ import annotations

import csv
from pathlib import Path
from .data import Object, VocFolder

__all__ = ["read_mapping", "ImageNetVal", "imagenet_val", "MappingError"]


class MappingError(ValueError):
    """A WordNet id the mapping does not know, or a mapping that does not fit the model."""


def read_mapping(path, categories) -> dict[str, str]:
    """{wnid: the model's class name} from a mapping file with one wnid per line, first, in the
    model's class order."""
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"mapping file {str(path)!r} does not exist")
    wnids = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        wnid = line.split()[0].strip(",")
        if not (wnid.startswith("n") and wnid[1:].isdigit()):
            raise MappingError(f"{path.name} line {i}: {wnid!r} is not a WordNet id (n + 8 digits)")
        wnids.append(wnid)
    if len(wnids) != len(categories):
        raise MappingError(f"{path.name} lists {len(wnids)} WordNet ids but the model has {len(categories)} classes: "
                           "the mapping must have one line per class, in the model's order")
    dup = sorted({w for w in wnids if wnids.count(w) > 1})
    if dup:
        raise MappingError(f"{path.name} lists {', '.join(dup[:5])} more than once")
    return dict(zip(wnids, categories))


class ImageNetVal(VocFolder):
    """Samples of an ImageNet validation folder (either layout), read like a
    :class:`~evaluation.data.VocFolder`; ``skipped`` lists (file, reason) for every image left
    out: unreadable, no annotation. A WordNet id the mapping lacks is a :class:`MappingError`
    naming the image (a wrong mapping is not skipped)."""

    def __init__(self, root, mapping, categories, n: int | None = None):
        super().__init__(root, n)
        self.names = read_mapping(mapping, categories)
        self.mapping_name = Path(mapping).name
        self.kaggle = (self.root / "LOC_val_solution.csv").is_file()
        if self.kaggle:
            self.solution = self._read_solution(self.root / "LOC_val_solution.csv")

    @property
    def _images(self) -> Path:
        if not self.kaggle:
            return super()._images
        return next((d for d in (self.root / "ILSVRC" / "Data" / "CLS-LOC" / "val", self.root / "val",
                                 self.root / "images") if d.is_dir()), self.root)

    @staticmethod
    def _read_solution(path: Path) -> dict[str, list[tuple[str, tuple[int, int, int, int]]]]:
        out = {}
        with path.open(newline="") as f:
            for i, row in enumerate(csv.DictReader(f), 2):
                parts = (row.get("PredictionString") or "").split()
                if len(parts) % 5:
                    raise ValueError(f"{path.name} line {i}: a box is 'wnid x0 y0 x1 y1'; got {len(parts)} fields")
                boxes = []
                for k in range(0, len(parts), 5):
                    x0, y0, x1, y1 = (int(float(v)) for v in parts[k + 1:k + 5])
                    boxes.append((parts[k], (x0 - 1, y0 - 1, x1, y1)))
                out[row["ImageId"]] = boxes
        return out

    def _name(self, wnid: str, image: str) -> str:
        if wnid not in self.names:
            raise MappingError(f"{image}: WordNet id {wnid} is not in {self.mapping_name} "
                               f"({len(self.names)} ids); is it the mapping of this model's classes?")
        return self.names[wnid]

    def annotate(self, p: Path) -> tuple[Object, ...] | str:
        """The objects of image ``p`` with the model's class names, or why it has none."""
        if self.kaggle:
            boxes = self.solution.get(p.stem)
            if boxes is None:
                return "not in LOC_val_solution.csv"
            return tuple(Object(self._name(w, p.name), b) for w, b in boxes)
        objects = super().annotate(p)
        if isinstance(objects, str):
            return objects
        return tuple(Object(self._name(o.name, p.name), o.box) for o in objects)


def imagenet_val(root, mapping, categories, n: int | None = None) -> ImageNetVal:
    return ImageNetVal(root, mapping, categories, n)
