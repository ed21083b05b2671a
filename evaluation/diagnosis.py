"""Grad-CAM as a diagnostic tool (the paper's sections 6 and 7), measured on the shapes world's
ground truth: where the map of a mistaken class peaks, whether maps survive adversarial attacks,
how much of a map a biased model puts on a spurious mark, and which named units carry a decision.

* :func:`mistakes`: held-out mistakes with the predicted and the true class's maps and where the
  predicted class's map peaks (``model_zoo.shapes.concepts.REGIONS``); :func:`folder_mistakes`:
  the same for a labelled folder (Pascal VOC boxes), where "true object" and "other object" are
  boxes and everything else is "background".
* :func:`adversarial_pointing`: PGD on correctly classified scenes; on the scenes it flips,
  pointing of the original class's map before and after, and of the adversarial class's.
* :func:`bias_report`: accuracy and the predicted class's map mass on the corner mark, per model
  and mark policy (matching, misleading, none).
* :func:`dissection` (cached beside the model's card) and :func:`mark_units`: how often a unit
  named "corner mark" is among a decision's top-5 units by alpha_k.

Maps are Grad-CAM at the model's default layer unless ``layer`` says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image

import explainers
from explainers import adversarial
from explainers import dissect as D
from model_zoo import notes_path
from model_zoo.shapes import concepts
from model_zoo.shapes.recipes import scenes_to_tensor
from model_zoo.shapes.world import CUE_BOX, make_scene

from .data import Sample
from .groundtruth import batch_maps, mass_in_box, per_sample
from .metrics import pointing_hit

__all__ = ["Mistake", "mistakes", "folder_mistakes", "adversarial_pointing", "bias_report", "dissection",
           "FolderProbe", "folder_dissection", "mark_units", "BIAS_CUES"]

BIAS_CUES = {"match": "matching mark", "flip": "misleading mark", "none": "no mark"}
Progress = Callable[[int, int], None] | None


@dataclass(frozen=True, eq=False)
class Mistake:
    index: int  # the scene's index (or the folder sample's position)
    name: str
    image: np.ndarray
    true: int
    predicted: int
    probability: float  # of the predicted class
    predicted_map: np.ndarray  # Grad-CAM of the predicted class, H x W
    true_map: np.ndarray  # Grad-CAM of the true class
    peak: tuple[int, int]  # (y, x) of the predicted map's maximum
    region: str


def _layer(loaded, layer):
    return layer or loaded.default_layer or explainers.default_layer(loaded.model)


def _peak(m: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return int(y), int(x)


def _find(loaded, x, labels, layer):
    """(probabilities, predictions, predicted maps, true maps) from one forward pass."""
    capture = explainers.Capture(loaded.model, x, layer=layer)
    pred = capture.output.argmax(1)
    e_pred, e_true = capture.explain("gradcam", [per_sample(pred, "predicted class"),
                                                 per_sample(labels, "true class")])
    probs = torch.softmax(capture.output.detach(), 1)
    n = x.shape[0]
    return probs, pred, batch_maps(e_pred, n), batch_maps(e_true, n)


def _tally(found: list[Mistake]) -> dict[str, int]:
    return {r: sum(m.region == r for m in found) for r in concepts.REGIONS}


def mistakes(loaded, n: int, seed: int, cue: str = "none", kind: str = "single", layer: str | None = None,
             keep: int | None = None, tolerance: float = 4.0, batch: int = 100, progress: Progress = None) -> dict:
    """The mistakes among ``n`` held-out scenes (their first object's class is the truth; for a
    pair, a prediction of either object's class is right) and the tally of the regions where the
    predicted class's map peaks: its peak area (``concepts.peak_area``: the pixels at 80% of the
    maximum or more around it, since an upsampled map is often a plateau whose maximum pixel lies
    a few pixels off what the plateau covers; the maximum pixel alone left 26% of the biased
    model's peaks on "background" beside the mark they covered) within ``tolerance`` pixels of an
    object or the mark (4 at 64 px: the share of an image the pointing game's 15 px are at 224).
    ``keep``: how many mistakes to return with their maps (all by default; the tally counts every
    one)."""
    layer = _layer(loaded, layer)
    found, tally_all, images = [], {r: 0 for r in concepts.REGIONS}, 0
    for start in range(0, n, batch):
        scenes = [make_scene(seed, i, kind, cue) for i in range(start, min(n, start + batch))]
        labels = torch.tensor([s.objects[0].label for s in scenes])
        probs, pred, pmaps, tmaps = _find(loaded, scenes_to_tensor(scenes), labels, layer)
        for j, s in enumerate(scenes):
            p = int(pred[j])
            if p in {o.label for o in s.objects}:
                continue
            y, x = _peak(pmaps[j])
            region = concepts.region_at(s, y, x, s.objects[0].label, tolerance, peak=concepts.peak_area(pmaps[j]))
            tally_all[region] += 1
            if keep is None or len(found) < keep:
                found.append(Mistake(s.index, repr(s), s.image, int(labels[j]), p, float(probs[j, p]),
                                     pmaps[j], tmaps[j], (y, x), region))
        images += len(scenes)
        if progress:
            progress(images, n)
    count = sum(tally_all.values())
    return {"scenes": n, "seed": seed, "cue": cue, "kind": kind, "layer": layer, "tolerance_px": tolerance,
            "peak_share": concepts.PEAK_SHARE, "errors": count,
            "accuracy": 1 - count / n, "tally": tally_all, "mistakes": found}


def folder_mistakes(loaded, samples: Iterable[Sample], layer: str | None = None, keep: int | None = None,
                    progress: Progress = None) -> dict:
    """Mistakes on a labelled folder: an image's truth is its first box's class name, which must
    be one of the model's categories (other images are skipped and counted, with the reason)."""
    layer = _layer(loaded, layer)
    index = {c: i for i, c in enumerate(loaded.categories)}
    found, tally_all, skipped, seen = [], {r: 0 for r in concepts.REGIONS}, [], 0
    for pos, sample in enumerate(samples):
        if not sample.objects:
            skipped.append((sample.name, "no labelled object"))
            continue
        truth = sample.objects[0].name
        if truth not in index:
            skipped.append((sample.name, f"class {truth!r} is not one of the model's categories"))
            continue
        seen += 1
        pil = Image.fromarray(sample.image)
        shown, x = loaded.preprocess.prepare(pil)
        x = x.unsqueeze(0)
        label = torch.tensor([index[truth]])
        probs, pred, pmaps, tmaps = _find(loaded, x, label, layer)
        p = int(pred[0])
        names = {o.name for o in sample.objects}
        if loaded.categories[p] in names:
            continue
        y, xx = _peak(pmaps[0])
        peak = concepts.peak_area(pmaps[0])  # as for the shapes scenes: the peak's area, not its pixel
        region = "background"
        for o in sample.objects:
            box = loaded.preprocess.view_box(o.box, pil.size)
            if box is not None and peak[box[1]:box[3], box[0]:box[2]].any():
                region = "true object" if o.name == truth else "other object"
                if region == "true object":
                    break
        tally_all[region] += 1
        if keep is None or len(found) < keep:
            found.append(Mistake(pos, sample.name, shown, index[truth], p, float(probs[0, p]), pmaps[0], tmaps[0],
                                 (y, xx), region))
        if progress:
            progress(pos + 1, 0)
    skipped += list(getattr(samples, "skipped", []))
    count = sum(tally_all.values())
    return {"images": seen, "layer": layer, "errors": count, "accuracy": (1 - count / seen) if seen else float("nan"),
            "tally": tally_all, "mistakes": found, "skipped": skipped}


def adversarial_pointing(loaded, n: int, seed: int, epsilon: float, steps: int = 10, step_size: float | None = None,
                         layer: str | None = None, batch: int = 100, progress: Progress = None) -> dict:
    """Untargeted PGD on the correctly classified ones of ``n`` single-object scenes. Pointing
    (the map's maximum inside the object's mask) on the scenes the attack flips: the original
    class's Grad-CAM on the clean and on the attacked image, the adversarial class's on the
    attacked image."""
    layer = _layer(loaded, layer)
    pre = loaded.preprocess
    hits = {"original_clean": [], "original_attacked": [], "adversarial_attacked": []}
    correct = flipped = 0
    for start in range(0, n, batch):
        scenes = [make_scene(seed, i, "single") for i in range(start, min(n, start + batch))]
        x = scenes_to_tensor(scenes)
        labels = torch.tensor([s.label for s in scenes])
        clean = explainers.Capture(loaded.model, x, layer=layer)
        ok = (clean.output.argmax(1) == labels)
        original = batch_maps(clean.explain("gradcam", per_sample(labels, "original class")), len(scenes))
        keep = torch.nonzero(ok).flatten()
        correct += len(keep)
        if len(keep):
            att = adversarial.pgd(loaded.model, x[keep], labels[keep], epsilon, steps=steps, step_size=step_size,
                                  seed=seed + start, mean=pre.mean, std=pre.std)
            moved = torch.nonzero(att.flipped).flatten()
            flipped += len(moved)
            if len(moved):
                xa = att.x[moved]
                rows = keep[moved]
                cap = explainers.Capture(loaded.model, xa, layer=layer)
                e_orig, e_adv = cap.explain("gradcam", [per_sample(labels[rows], "original class"),
                                                        per_sample(att.prediction[moved], "adversarial class")])
                mo, ma = batch_maps(e_orig, len(moved)), batch_maps(e_adv, len(moved))
                for j, r in enumerate(rows.tolist()):
                    mask = scenes[r].objects[0].mask
                    hits["original_clean"].append(pointing_hit(original[r], mask, 0))
                    hits["original_attacked"].append(pointing_hit(mo[j], mask, 0))
                    hits["adversarial_attacked"].append(pointing_hit(ma[j], mask, 0))
        if progress:
            progress(min(n, start + batch), n)
    return {"scenes": n, "seed": seed, "epsilon": epsilon, "steps": steps, "layer": layer, "correct": correct,
            "flipped": flipped, "flip_rate": flipped / correct if correct else float("nan"),
            **{f"pointing_{k}": float(np.mean(v)) if v else float("nan") for k, v in hits.items()}}


def bias_report(loaded_models: list, n: int, seed: int, cues=tuple(BIAS_CUES), layer: str | None = None,
                batch: int = 100, progress: Progress = None) -> dict:
    """{model id: {cue: {"accuracy", "mark_mass"}}}: on ``n`` single-object scenes per mark
    policy (the same scenes under every policy), accuracy and the mean share of the predicted
    class's Grad-CAM mass inside the corner mark's box."""
    out = {}
    total, done = len(loaded_models) * len(cues) * n, 0
    for loaded in loaded_models:
        lay = _layer(loaded, layer)
        out[loaded.id] = {}
        for cue in cues:
            right, mass = [], []
            for start in range(0, n, batch):
                scenes = [make_scene(seed, i, "single", cue) for i in range(start, min(n, start + batch))]
                capture = explainers.Capture(loaded.model, scenes_to_tensor(scenes), layer=lay)
                pred = capture.output.argmax(1)
                maps = batch_maps(capture.explain("gradcam", per_sample(pred, "predicted class")), len(scenes))
                right += (pred == torch.tensor([s.label for s in scenes])).tolist()
                mass += [mass_in_box(m, CUE_BOX) for m in maps]
                done += len(scenes)
                if progress:
                    progress(done, total)
            out[loaded.id][cue] = {"accuracy": float(np.mean(right)), "mark_mass": float(np.mean(mass)),
                                   "scenes": n}
    return out


def dissection(loaded, layer: str | None = None, n: int = 400, seed: int = 30_000, refresh: bool = False,
               progress: Progress = None) -> D.Dissection:
    """The units of ``layer`` named from the shapes world's concepts on ``n`` probe scenes (half
    single, half pair, each with a mark of a random class), cached per (model, layer, n, seed)
    in a file beside the model's card."""
    layer = _layer(loaded, layer)
    path = notes_path(loaded.id, f"dissection-{layer}-{n}-{seed}")
    if path.is_file() and not refresh:
        try:
            return D.Dissection.from_json(path.read_text())
        except (ValueError, KeyError):
            pass  # a damaged cache is recomputed below and overwritten
    batches = (n + 99) // 100
    d = D.dissect(loaded.model, concepts.probe(n, seed), layer, concepts.CONCEPTS, progress=progress, total=batches)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(d.to_json())
    except OSError:
        pass  # a read-only place: the names are recomputed next time
    return d


class FolderProbe:
    """A user's probe set for :func:`explainers.dissect.dissect`: ``images/<stem>.<ext>`` and
    ``masks/<concept>/<stem>.png`` (non-zero pixels carry the concept; a missing mask: none),
    each mask of its image's size, both resized and cropped as the model sees the image (masks
    with nearest-neighbour resampling). ``skipped`` lists (file, reason) for every image or mask
    left out."""

    def __init__(self, path, preprocess, batch: int = 16):
        from pathlib import Path
        self.root = Path(path)
        if not (self.root / "images").is_dir() or not (self.root / "masks").is_dir():
            raise ValueError(f"{str(self.root)!r} needs an images/ folder and a masks/<concept>/ folder per concept")
        self.concepts = tuple(sorted(p.name for p in (self.root / "masks").iterdir() if p.is_dir()))
        if not self.concepts:
            raise ValueError(f"{str(self.root / 'masks')!r} has no concept folders")
        self.preprocess, self.batch = preprocess, batch
        from explainers.images import IMAGE_SUFFIXES
        self.files = sorted(p for p in (self.root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.skipped: list[tuple[str, str]] = []

    def __len__(self):
        return (len(self.files) + self.batch - 1) // self.batch

    def _mask(self, path, size):
        import torchvision.transforms.functional as TF
        from torchvision.transforms import InterpolationMode
        m = Image.open(path)
        m.load()
        if m.size != size:
            raise ValueError(f"a {m.size[0]} x {m.size[1]} mask for a {size[0]} x {size[1]} image")
        m = TF.resize(m.convert("L"), self.preprocess.resize, interpolation=InterpolationMode.NEAREST)
        return np.asarray(TF.center_crop(m, self.preprocess.crop)) > 0

    def __iter__(self):
        from explainers.images import ImageError, open_image
        self.skipped = []
        xs, masks = [], {c: [] for c in self.concepts}
        for f in self.files:
            try:
                img = open_image(f)
                x = self.preprocess(img)
                row = {}
                for c in self.concepts:
                    mp = self.root / "masks" / c / f"{f.stem}.png"
                    row[c] = self._mask(mp, img.size) if mp.is_file() else np.zeros(x.shape[-2:], bool)
            except (ImageError, ValueError, OSError) as err:
                self.skipped.append((f.name, str(err).split(": ", 1)[-1][:200]))
                continue
            xs.append(x)
            for c in self.concepts:
                masks[c].append(row[c])
            if len(xs) == self.batch:
                yield torch.stack(xs), {c: np.stack(v) for c, v in masks.items()}
                xs, masks = [], {c: [] for c in self.concepts}
        if xs:
            yield torch.stack(xs), {c: np.stack(v) for c, v in masks.items()}


def folder_dissection(loaded, layer: str | None, folder, progress: Progress = None) -> tuple[D.Dissection, list]:
    """(the units of ``layer`` named from a :class:`FolderProbe`, what was skipped)."""
    layer = _layer(loaded, layer)
    probe = FolderProbe(folder, loaded.preprocess)
    d = D.dissect(loaded.model, probe, layer, probe.concepts, progress=progress, total=len(probe))
    return d, probe.skipped


def mark_units(loaded, d: D.Dissection, n: int, seed: int, k: int = 5, batch: int = 100,
               progress: Progress = None) -> dict:
    """On ``n`` matching-mark scenes: the share where a unit named "corner mark" is among the
    top-``k`` units by alpha_k of the predicted class."""
    hits = []
    for start in range(0, n, batch):
        scenes = [make_scene(seed, i, "single", "match") for i in range(start, min(n, start + batch))]
        capture = explainers.Capture(loaded.model, scenes_to_tensor(scenes), layer=d.layer)
        pred = capture.output.argmax(1)
        e = capture.explain("gradcam", per_sample(pred, "predicted class"))
        weights = e.weights.reshape(len(scenes), -1)
        for w in weights:
            top, _ = D.decision_units(w, d, k)
            hits.append(any(r.name == "corner mark" for r in top))
        if progress:
            progress(min(n, start + batch), n)
    return {"scenes": n, "seed": seed, "k": k, "layer": d.layer, "share": float(np.mean(hits)),
            "units_named_corner_mark": sum(nm == "corner mark" for nm in d.names())}


DISSECTION_SEEDS = (30_000, 31_000, 32_000, 33_000)


def mark_units_over_seeds(loaded, n: int, seed: int, dissection_seeds=DISSECTION_SEEDS, probes: int = 400,
                          k: int = 5, progress: Progress = None) -> dict:
    """:func:`mark_units` with the units named by dissections on several probe seeds: the share
    for each, their mean and range. One dissection's names decide which units count as "corner
    mark", so a figure from a single probe seed can hold for that seed alone (shapes-resnet's 0%
    at seed 30000 was 10.5% at seeds 32000 and 33000)."""
    per_seed, units = {}, {}
    for j, ds in enumerate(dissection_seeds):
        d = dissection(loaded, n=probes, seed=ds)
        r = mark_units(loaded, d, n, seed, k)
        per_seed[int(ds)], units[int(ds)] = r["share"], r["units_named_corner_mark"]
        if progress:
            progress(j + 1, len(dissection_seeds))
    shares = list(per_seed.values())
    return {"scenes": n, "seed": seed, "k": k, "layer": d.layer, "dissection_seeds": list(per_seed),
            "share_per_seed": per_seed, "units_named_corner_mark_per_seed": units,
            "share_mean": float(np.mean(shares)), "share_min": float(min(shares)), "share_max": float(max(shares))}
