"""Study designs: which models, methods and images; the fixed trial list with rendered stimuli;
each participant's blinded, balanced schedule.

Trust study (paper section 5.2): two models that predict the same label for an image; each
trial shows both models' maps of that label as "Robot A" and "Robot B" and asks which is more
reliable on a 5-point scale. Class-discrimination study (section 5.1): one model's map of one of
the two classes of a two-object scene, the raw image not shown; which class does it show?"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

import explainers
import model_zoo
from explainers import render
from explainers.images import IMAGE_SUFFIXES, ImageError, open_image
from model_zoo.shapes import world

from .field import FieldSettings
from .participation import KINDS, TRUST_SCALE, schedule  # noqa: F401 (re-exported)

__all__ = ["StudyDesign", "DesignError", "build_study", "schedule", "TRUST_SCALE", "KINDS", "NO_EXPLANATION"]

NO_EXPLANATION = "none"  # a between-subjects control arm: the prediction alone, no map



class DesignError(ValueError):
    """A design that cannot make a study (a clear message for the designer)."""


@dataclass
class StudyDesign:
    kind: str  # "trust" or "discrimination"
    title: str
    models: tuple[str, ...]  # trust: two model ids; discrimination: one
    methods: tuple[str, ...] = ("guided_backprop", "guided_gradcam")
    stronger: str | None = None  # trust: the model the researcher believes is stronger
    source: dict = field(default_factory=lambda: {"source": "shapes", "seed": 31000, "candidates": 200})
    n_images: int = 20
    require_correct: bool = False
    instructions: str = ""
    seed: int = 0
    field_settings: dict = field(default_factory=dict)  # studies.field.FieldSettings as a dict
    plan: dict = field(default_factory=dict)  # studies.plan.Plan.record(): the sample size and cost planned
    # between subjects: each method is an arm and a participant sees one arm's trials only (assigned
    # at joining by balanced randomisation, studies.participants.arm_for); NO_EXPLANATION may be one
    arms: bool = False

    def check(self) -> None:
        if self.kind not in KINDS:
            raise DesignError(f"unknown study kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if not self.title.strip():
            raise DesignError("give the study a title")
        known = explainers.method_names() + ([NO_EXPLANATION] if self.arms else [])
        bad = [m for m in self.methods if m not in known]
        if not self.methods or bad:
            raise DesignError(f"choose methods among {', '.join(known)}"
                              + (f" (unknown: {', '.join(bad)})" if bad else ""))
        known = set(model_zoo.list_models())
        missing = [m for m in self.models if m not in known]
        if missing:
            raise DesignError(f"unknown model(s) {', '.join(missing)}")
        if self.kind in ("simulate", "bias"):
            if len(self.models) != 1:
                raise DesignError(f"a {self.kind} study explains one model")
            if self.source.get("source") != "shapes":
                raise DesignError(f"a {self.kind} study uses the shapes world's scenes with corner marks")
        elif self.kind == "trust":
            if len(self.models) != 2 or self.models[0] == self.models[1]:
                raise DesignError("a trust study compares two different models")
            if self.stronger not in self.models:
                raise DesignError("say which of the two models you believe is stronger")
        elif len(self.models) != 1:
            raise DesignError("a class-discrimination study uses one model")
        if self.n_images < 1:
            raise DesignError("ask for at least one image")
        if self.arms and len(self.methods) < 2:
            raise DesignError("between-subjects arms need at least two arms (methods, or no explanation)")
        if self.kind == "discrimination" and self.source.get("source") != "shapes":
            raise DesignError("class-discrimination studies use two-object shapes scenes (both classes known)")
        try:
            FieldSettings.from_config({"field_settings": self.field_settings}).check()
        except ValueError as err:
            raise DesignError(str(err)) from err


@dataclass
class _Image:
    ref: dict  # how to find the image again
    image: np.ndarray  # H x W x 3 uint8
    truth: tuple[str, ...]  # ground-truth class names (may be empty)
    boxes: dict  # class name -> [x0, y0, x1, y1] (half-open), shapes world only


def _candidates(design: StudyDesign, unreadable: list):
    """The candidate images, one at a time; files that cannot be read are appended to
    ``unreadable`` as (name, reason)."""
    src = design.source
    if src.get("source") == "shapes":
        kind = "pair" if design.kind == "discrimination" else src.get("scene", "single")
        for i in range(int(src.get("candidates", 200))):
            s = world.make_scene(int(src.get("seed", 31000)), i, kind)
            yield _Image({"source": "shapes", "seed": s.seed, "index": i, "kind": kind}, s.image,
                         tuple(o.name for o in s.objects), {o.name: list(o.box) for o in s.objects})
    elif src.get("source") == "folder":
        if not str(src.get("path", "")).strip():
            raise DesignError("give the path of a folder of images on this server")
        folder = Path(src["path"])
        if not folder.is_dir():
            raise DesignError(f"image folder {str(folder)!r} does not exist")
        labels = {}
        csv = folder / "labels.csv"
        if csv.exists():
            for line in csv.read_text().splitlines():
                if "," in line and not line.lower().startswith("file,"):
                    name, label = line.split(",", 1)
                    labels[name.strip()] = label.strip()
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for p in files:
            try:
                img = np.asarray(open_image(p))
            except ImageError as err:  # left out, and named in the study's config
                unreadable.append((p.name, str(err).split(": ", 1)[-1]))
                continue
            yield _Image({"source": "folder", "file": p.name}, img,
                         (labels[p.name],) if p.name in labels else (), {})
    else:
        raise DesignError("image source must be the shapes world or a folder of images")


def _stimulus(loaded, view: np.ndarray, capture, method: str, cls: int, with_image: bool) -> bytes:
    if method == NO_EXPLANATION:  # the control arm: the picture and the prediction, no map
        return render.png_bytes(Image.fromarray(np.asarray(view, np.uint8)))
    e = capture.explain(method, cls)
    if e.attribution.ndim == 3:  # a map per colour channel (Guided Backprop and the like)
        return render.png_bytes(render.pixel_image(e.attribution))
    (m01,) = render.normalize([e.attribution], "per_map")
    return render.png_bytes(render.overlay(view, m01, 0.5) if with_image else render.colorize(m01))


def _noise_png(rng: np.random.Generator, like: bytes) -> bytes:
    """A map of pure noise the size of a stimulus: an attention check's obviously wrong map."""
    import io
    w, h = Image.open(io.BytesIO(like)).size
    (m01,) = render.normalize([rng.random((h // 8 + 1, w // 8 + 1))], "per_map")
    return render.png_bytes(render.colorize(np.asarray(Image.fromarray((m01 * 255).astype(np.uint8))
                                                       .resize((w, h), Image.BILINEAR), np.float32) / 255))


def _add_field_trials(design: StudyDesign, trials: list[dict], stimuli: dict, rng: np.random.Generator) -> None:
    """Attention checks (trust: one robot's map is pure noise, the other a real one; the answer
    passes when it prefers the real map. Discrimination: the page asks for a named option) and
    the practice trial (a copy of the first trial, answered and never counted)."""
    settings = FieldSettings.from_config({"field_settings": design.field_settings})
    n = len(trials)
    for _ in range(settings.checks_for(n)):
        src = int(rng.integers(n))
        i = len(trials)
        if design.kind in ("simulate", "bias"):
            break  # no attention check of their own: a learning phase or a multiple choice (not built here)
        if design.kind == "trust":
            trials.append({**trials[src], "role": "attention", "check": "noise map as the weaker robot"})
            stimuli[(i, "stronger")] = stimuli[(src, "stronger")]
            stimuli[(i, "weaker")] = _noise_png(rng, stimuli[(src, "stronger")])
        else:
            wanted = str(rng.choice(trials[src]["classes"]))
            trials.append({**trials[src], "role": "attention", "explained": wanted,
                           "check": f"asks for {wanted} by name"})
            stimuli[(i, "map")] = stimuli[(src, "map")]
    if settings.practice:
        i = len(trials)
        first = next(k for k, t in enumerate(trials) if t.get("role", "trial") == "trial")  # not a learning scene
        trials.append({**trials[first], "role": "practice"})
        for (t, slot), png in list(stimuli.items()):
            if t == first:
                stimuli[(i, slot)] = png


def _draw_trials(design: StudyDesign, models: dict, names: list, cand, views: dict, caps: dict, preds: dict,
                 rng: np.random.Generator, trials: list[dict], stimuli: dict) -> None:
    """One kept image's trials (one per method) and their stimuli, appended to ``trials`` and
    ``stimuli``."""
    for method in design.methods:
        i = len(trials)
        if design.kind == "trust":
            cls = preds[design.models[0]]
            trials.append({"image": cand.ref, "method": method, "label": names[cls], "class_index": cls,
                           "box": cand.boxes.get(names[cls])})
            weaker = next(m for m in design.models if m != design.stronger)
            for slot, m in (("stronger", design.stronger), ("weaker", weaker)):
                stimuli[(i, slot)] = _stimulus(models[m], views[m], caps[m], method, cls, True)
        else:
            m = design.models[0]
            explained = str(rng.choice(list(cand.truth)))
            cls = names.index(explained)
            trials.append({"image": cand.ref, "method": method, "classes": list(cand.truth),
                           "explained": explained, "class_index": cls, "box": cand.boxes.get(explained)})
            stimuli[(i, "map")] = _stimulus(models[m], views[m], caps[m], method, cls, False)


def build_study(design: StudyDesign, progress: Callable[[int, int], None] | None = None,
                load=model_zoo.load) -> tuple[dict, list[dict], dict[tuple[int, str], bytes]]:
    """The study's configuration, its fixed trial list and rendered stimuli (PNG per trial and
    slot). Models run once per candidate image; images the filter rejects are counted. A kept
    image's stimuli are drawn at once and its captures released, so one image's captures are held
    at a time, however many images the study has."""
    design.check()
    if design.kind in ("simulate", "bias"):
        from .tasks import build_task_study
        try:
            config, trials, stimuli = build_task_study(design, progress, load)
        except LookupError as err:
            raise DesignError(str(err)) from err
        _add_field_trials(design, trials, stimuli, np.random.default_rng(design.seed + 1))
        return config, trials, stimuli
    rng = np.random.default_rng(design.seed)
    models = {m: load(m) for m in design.models}
    for m, loaded in models.items():
        wrong = [x for x in design.methods if x != NO_EXPLANATION and x not in explainers.method_names(model=loaded.model)]
        if wrong:
            raise DesignError(f"{', '.join(wrong)} cannot explain {m}: it reads a transformer's attention, and {m} "
                              "has none")
    if design.kind == "trust":
        a, b = design.models
        if list(models[a].categories) != list(models[b].categories):
            raise DesignError(f"{a} and {b} do not share their classes, so their labels cannot agree")
    names = list(models[design.models[0]].categories)
    kept, seen, agreed = 0, 0, 0
    unreadable: list[tuple[str, str]] = []
    trials, stimuli = [], {}
    pixels = any(explainers.get_method(mm).needs_pixels for mm in design.methods if mm != NO_EXPLANATION)
    for cand in _candidates(design, unreadable):
        if kept >= design.n_images:
            break
        seen += 1
        views, caps, preds = {}, {}, {}
        for m, loaded in models.items():
            view, x = loaded.preprocess.prepare(Image.fromarray(cand.image))
            caps[m] = explainers.Capture(loaded.model, x.unsqueeze(0), layer=loaded.default_layer, pixels=pixels)
            views[m] = view
            preds[m] = int(caps[m].output[0].argmax())
        if design.kind == "trust":
            if len(set(preds.values())) != 1:
                continue
            agreed += 1
            label = names[preds[design.models[0]]]
            if design.require_correct and label not in cand.truth:
                continue
        else:
            if len(cand.truth) != 2:
                continue
            agreed += 1
            if design.require_correct and names[preds[design.models[0]]] not in cand.truth:
                continue
        _draw_trials(design, models, names, cand, views, caps, preds, rng, trials, stimuli)
        del caps  # the activations (and the pixel graph) go once the image's stimuli are drawn
        kept += 1
        if progress:
            progress(kept, design.n_images)
    if not kept:
        what = ("both models predicted the same label" if design.kind == "trust" else "scenes had two objects")
        extra = " and the label was correct" if design.require_correct else ""
        skipped = f" ({len(unreadable)} unreadable file(s) left out: {', '.join(n for n, _ in unreadable[:5])})" \
            if unreadable else ""
        raise DesignError(f"no image left: of {seen} candidate images, {agreed} passed the first filter "
                          f"({what}){extra}, none passed them all; loosen the filter or add images{skipped}")
    for t in trials:
        t["role"] = "trial"
    _add_field_trials(design, trials, stimuli, rng)
    config = {**asdict(design), "models": list(design.models), "methods": list(design.methods),
              "weights_sha256": {m: models[m].sha256 for m in design.models},
              "layers": {m: models[m].default_layer for m in design.models},
              "map_settings": {"normalisation": "per_map", "overlay_alpha": 0.5, "cmap": "jet",
                               "pixel_maps": "3 standard deviations to the ends, zero at mid-grey",
                               "target": "logit of the label"},
              "candidates_seen": seen, "images_kept": kept, "unreadable_files": unreadable}
    return config, trials, stimuli
