"""The method registry: one entry per method, read by the library, the CLI, the pages, the
evaluation and the study designer (no other list of method names exists). Read it at call time (:func:`list_methods`,
:func:`method_names`): a method registered later, by a plugin, appears in every front end.

Each :class:`Method` says what it computes (``kind``: a layer map, H x W from a layer's
activations, or a pixel map at input resolution), whether it is class-discriminative, its cost
in passes, its paper, its options with their defaults, and the function that computes it from a
kept forward pass (:class:`explainers.Capture`). The gradient CAMs share the capture's forward
and differ only in how they weigh the layer gradients, so switching among them costs one
backward through the network's head at most.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np
import torch

from . import cams

__all__ = ["Method", "Cost", "register_method", "get_method", "list_methods", "method_names", "REGISTRY", "KINDS",
           "PAPER"]

KINDS = ("layer map", "pixel map", "baseline")  # a baseline: a map that looks at nothing (a yardstick)
PAPER = "paper"  # the tag of the paper's four maps (its figure 1): Grad-CAM, counterfactual, Guided Backprop, Guided Grad-CAM


@dataclass(frozen=True)
class Cost:
    """Work beyond the kept forward pass, in passes of one image: ``forwards`` more forward
    passes (``head_only``: through the part after the layer only, at most a whole forward),
    ``backwards`` backward passes, and a ``note`` in words."""

    forwards: int
    backwards: int
    head_only: bool = False
    note: str = ""

    @property
    def heavy(self) -> bool:
        """More than a handful of passes: the UI asks before running and shows progress."""
        return self.forwards + self.backwards > 4


@dataclass(frozen=True)
class Method:
    """One explanation method.

    ``compute(job, **options)`` returns ``(alpha, cam, attribution)`` tensors with a leading
    targets axis (k x N x ...): alpha channel weights or None, cam the layer map or None,
    attribution at input resolution (H x W maps, or C x H x W per input value when
    ``per_channel``). ``cost(channels, size, options)`` gives a :class:`Cost`. ``wraps``: the
    option naming another method that this one runs on changed inputs (SmoothGrad's ``base``).
    ``tags``: free labels front ends select by (:data:`PAPER`: the paper's four maps)."""

    name: str
    title: str
    kind: str  # "layer map" | "pixel map"
    class_discriminative: bool
    passes: str  # the cost in words, for tables and pickers
    paper: str
    compute: Callable
    cost_of: Callable[[int, tuple[int, int], Mapping], Cost]
    needs_layer: bool = True
    needs_pixels: bool = False  # needs the input gradient: the forward of Capture(pixels=True)
    guided: bool = False  # needs the guided ReLU rule recorded in that forward
    per_channel: bool = False
    options: Mapping[str, object] = field(default_factory=dict)
    summary: str = ""
    wraps: str | None = None
    tags: frozenset = frozenset()
    transformers_only: bool = False  # reads attention (LeGrad): offered for models with attention blocks
    class_targets: bool = False  # rewrites a class's score (FinerCAM): needs a class of an N x classes output
    # (model, layer) -> hooks that record what the method reads during a one-shot explain()'s forward (no
    # second forward); records_grad: that forward keeps gradients from the input on
    records: Callable | None = None
    records_grad: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"method kind must be one of {', '.join(map(repr, KINDS))}, got {self.kind!r}")
        if self.wraps is not None and self.wraps not in self.options:
            raise ValueError(f"{self.name} wraps the method named by its option {self.wraps!r}, which it lacks")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "tags", frozenset(self.tags))

    def settings(self, options: Mapping) -> dict:
        """The defaults updated by ``options``, checked: an unknown option, or a value of the
        wrong type (an integer option given text, a count below 1), is a ValueError."""
        bad = sorted(set(options) - set(self.options))
        if bad:
            valid = ", ".join(self.options) or "none"
            raise ValueError(f"{self.name} has no option {', '.join(map(repr, bad))}; its options: {valid}")
        merged = {**self.options, **options}
        for key, value in options.items():
            default = self.options[key]
            if isinstance(default, int) and not isinstance(default, bool):
                low = 0 if key == "seed" else 1
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    raise ValueError(f"{self.name}: {key} must be an integer >= {low}, got {value!r}")
            elif isinstance(default, str) and not isinstance(value, str):
                raise ValueError(f"{self.name}: {key} must be text, got {value!r}")
            elif isinstance(default, float) and key != "baseline" and (
                    not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{self.name}: {key} must be a number >= 0, got {value!r}")
        if self.wraps is not None:
            inner = get_method(merged[self.wraps])  # an unknown base method is named before any work
            if inner.wraps is not None:
                raise ValueError(f"{self.name} cannot wrap {inner.name}, which wraps a method itself; "
                                 "choose another base method")
        return merged

    def cost(self, channels: int, size: tuple[int, int], **options) -> Cost:
        return self.cost_of(channels, size, self.settings(options))

    @property
    def forward_heavy(self) -> bool:
        return self.cost_of(512, (224, 224), self.options).heavy


_REGISTRY: dict[str, Method] = {}
REGISTRY: Mapping[str, Method] = MappingProxyType(_REGISTRY)


def register_method(method: Method) -> Method:
    """Add ``method``; registering the same entry twice is a no-op, another one under a taken
    name is an error."""
    if not isinstance(method, Method):
        raise TypeError(f"register_method takes a Method, not {type(method).__name__}")
    old = _REGISTRY.get(method.name)
    if old is not None and old != method:
        raise ValueError(f"a different method is already registered as {method.name!r}")
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method ``name``, or a ValueError listing them."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(_REGISTRY)}") from None


def has_attention(model) -> bool:
    """Whether ``model`` has attention blocks that the attention methods read
    (``torch.nn.MultiheadAttention``), in its image tower where it names one (``image_tower()``:
    a CLIP's text transformer is not what a map of the image reads)."""
    tower = model.image_tower() if callable(getattr(model, "image_tower", None)) else model
    return any(isinstance(m, torch.nn.MultiheadAttention) for m in tower.modules())


def list_methods(kind: str | None = None, *, tag: str | None = None, model=None,
                 classes: bool = True) -> list[Method]:
    """The registered methods, read now (a method registered later is listed from then on), in
    registration order: of one ``kind`` (None: the explaining ones, layer and pixel maps, not the
    baselines), with ``tag`` when given; with ``model``, those that apply to it (a method that
    reads attention only for a model with attention blocks); ``classes=False``: for targets that
    are not classes (a phrase, a region, an action), without the methods that rewrite a class's
    score (FinerCAM, ShapleyCAM)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown method kind {kind!r}; choose one of {', '.join(KINDS)}")
    attention = None if model is None else has_attention(model)
    return [m for m in _REGISTRY.values()
            if (m.kind == kind if kind is not None else m.kind != "baseline") and (tag is None or tag in m.tags)
            and (attention is None or attention or not m.transformers_only) and (classes or not m.class_targets)]


def method_names(kind: str | None = None, *, tag: str | None = None, model=None, classes: bool = True) -> list[str]:
    """The names of :func:`list_methods` (what pickers and command lines offer)."""
    return [m.name for m in list_methods(kind, tag=tag, model=model, classes=classes)]


# ----------------------------------------------------------------------------- built-in entries


def _head_backward(channels, size, o):
    return Cost(0, 1, note="1 backward through the network after the layer")


def _full_backward(channels, size, o):
    return Cost(0, 1, note="1 backward to the input")


def _gradient_cam(formula):
    def compute(job):
        return (*formula(job.layer_grads(), job.acts), None)
    return compute


_GRADIENT_CAMS = [
    ("gradcam", "Grad-CAM", cams.gradcam, "Selvaraju et al., ICCV 2017",
     "channel weights: the spatial mean of the gradients"),
    ("counterfactual", "Counterfactual", cams.counterfactual, "Selvaraju et al., ICCV 2017 (eq. 6)",
     "Grad-CAM of the negated gradients: what speaks against the class"),
    ("gradcam_pp", "Grad-CAM++", cams.gradcam_pp, "Chattopadhay et al., WACV 2018",
     "positive gradients weighted per position, so several instances of a class all count"),
    ("xgradcam", "XGrad-CAM", cams.xgradcam, "Fu et al., BMVC 2020",
     "gradients weighted by the normalised activations (an axiom-based weight)"),
    ("hirescam", "HiResCAM", cams.hirescam, "Draelos & Carin, 2020",
     "gradients times activations element-wise, no spatial averaging: faithful to the score"),
    ("layercam", "LayerCAM", cams.layercam, "Jiang et al., IEEE TIP 2021",
     "positive gradients times activations element-wise: sharp maps at shallow layers too"),
]
for _name, _title, _formula, _paper, _summary in _GRADIENT_CAMS:
    register_method(Method(_name, _title, "layer map", True, "the kept forward + 1 backward (head)", _paper,
                           _gradient_cam(_formula), _head_backward, summary=_summary,
                           tags={PAPER} if _name in ("gradcam", "counterfactual") else ()))


_BASES = {name: formula for name, _, formula, *_ in _GRADIENT_CAMS if name != "counterfactual"}


def _reference_classes(out: torch.Tensor, classes: torch.Tensor, count: int) -> torch.Tensor:
    """k x N x count: per target and image, the ``count`` classes whose logits lie nearest to the
    target class's (the target excluded), nearest first."""
    scores = out.detach()
    distance = (scores.unsqueeze(0) - scores.gather(1, classes.T).T.unsqueeze(-1)).abs()  # k x N x classes
    distance.scatter_(2, classes.unsqueeze(-1), float("inf"))
    return distance.topk(count, dim=2, largest=False).indices


def _finercam(job, base, gamma, references, weights):
    """The gradients of y_c - gamma * mean_d y_d over the ``references`` classes d nearest to c
    by logit (the paper's contrast with its similar classes, as torchcam 0.5.0 computes it:
    ``weights="mean"``); ``weights="probability"``: pytorch-grad-cam 1.5.7's
    Σ_d p_d (y_c - gamma y_d) / Σ_d p_d with p = softmax(y), the probabilities part of the
    differentiated score as there. Then ``base``'s formula on those gradients."""
    if base not in _BASES:
        raise ValueError(f"finercam: base must be one of {', '.join(_BASES)}, not {base!r}")
    if weights not in ("mean", "probability"):
        raise ValueError(f"finercam: weights must be 'mean' or 'probability', not {weights!r}")
    classes = job.target_classes("FinerCAM")  # k x N
    out = job.cap._fwd.output
    if out.shape[1] < 2:
        raise ValueError("FinerCAM contrasts the class with others: the model has only one class")
    refs = _reference_classes(out, classes, min(references, out.shape[1] - 1))  # k x N x T
    wide = out.unsqueeze(0).expand(len(classes), *out.shape)
    y_c = wide.gather(2, classes.unsqueeze(-1))[..., 0]
    y_d = wide.gather(2, refs)
    if weights == "mean":
        contrast = y_c - gamma * y_d.mean(-1)
    else:
        p = torch.softmax(out, dim=1).unsqueeze(0).expand(len(classes), *out.shape).gather(2, refs)
        contrast = (p * (y_c.unsqueeze(-1) - gamma * y_d)).sum(-1) / (p.sum(-1) + 1e-9)
    return (*_BASES[base](job.grads_of(contrast), job.acts), None)


register_method(Method(
    "finercam", "Finer-CAM", "layer map", True, "the kept forward + 1 backward (head)",
    "Zhang et al., CVPR 2025", _finercam, _head_backward,
    options={"base": "gradcam", "gamma": 0.6, "references": 3, "weights": "mean"}, class_targets=True,
    summary="the class's score minus gamma times its nearest classes' (by logit): what sets the class apart "
            "from those it is confused with"))


def _shapleycam(job, score):
    if score not in ("rest", "target"):
        raise ValueError(f"shapleycam: score must be 'rest' or 'target', not {score!r}")
    if score == "rest":
        classes = job.target_classes("ShapleyCAM's residual softmax score (score='rest')")
        out = job.cap._fwd.output
        logp = torch.log_softmax(out, dim=1)
        scores = torch.stack([out.gather(1, c.view(-1, 1))[:, 0] + logp.gather(1, c.view(-1, 1))[:, 0]
                              for c in classes])
    else:
        scores = job.scores
    g, hvp = job.hessian_times_activations(scores)
    return (*cams.shapleycam(g, job.acts, hvp), None)


register_method(Method(
    "shapleycam", "ShapleyCAM", "layer map", True, "the kept forward + a double backward (head)",
    "Cai et al., 2025", _shapleycam,
    lambda c, s, o: Cost(0, 2, head_only=True, note="a backward with its graph kept, then a Hessian-vector "
                                                    "product through the head"),
    options={"score": "rest"}, class_targets=True,
    summary="Grad-CAM's weights with a second-order term (gradient minus half the Hessian times the "
            "activations), on the residual softmax score y_c + log p_c"))


def _eigencam(job):
    alpha, cam = cams.eigencam(job.acts, job.k)
    return alpha, cam, None


register_method(Method(
    "eigencam", "Eigen-CAM", "layer map", False, "the kept forward + an SVD (no backward)",
    "Muhammad & Yeasin, IJCNN 2020", _eigencam, lambda c, s, o: Cost(0, 0, note="an SVD of the activations"),
    summary="the first principal component of the activations: the same map for every class"))


def _kpcacam(job, kernel, gamma):
    if kernel not in cams.KERNELS:
        raise ValueError(f"kpcacam: unknown kernel {kernel!r}; choose one of {', '.join(cams.KERNELS)}")
    if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma <= 0):
        raise ValueError(f"kpcacam: gamma must be a number > 0, or None for 1 / channels; got {gamma!r}")
    alpha, cam = cams.kpcacam(job.acts, job.k, kernel, gamma)
    return alpha, cam, None


register_method(Method(
    "kpcacam", "KPCA-CAM", "layer map", False, "the kept forward + a kernel PCA (no backward)",
    "Karmani et al., 2024", _kpcacam,
    lambda c, s, o: Cost(0, 0, note="a kernel PCA of the activations (an eigenvector of a positions x positions "
                                    "kernel)"),
    options={"kernel": "sigmoid", "gamma": None},
    summary="Eigen-CAM through a kernel (sigmoid by default): the first kernel principal component of the "
            "activations, the same map for every class"))


def _scorecam(job, batch_size):
    return (*job.score_cam(batch_size), None)


def _ablationcam(job, batch_size):
    return (*job.ablation_cam(batch_size), None)


register_method(Method(
    "scorecam", "Score-CAM", "layer map", True, "1 forward per channel of the layer (masked images)",
    "Wang et al., CVPR Workshops 2020", _scorecam,
    lambda c, s, o: Cost(c, 0, note=f"{c} forwards of masked images, in batches of {o['batch_size']}"),
    options={"batch_size": 32},
    summary="gradient-free: each channel masks the image; weights from the score increase"))
register_method(Method(
    "ablationcam", "Ablation-CAM", "layer map", True, "1 forward of the head per channel (ablated)",
    "Desai & Ramaswamy, WACV 2020", _ablationcam,
    lambda c, s, o: Cost(c, 0, head_only=True,
                         note=f"{c} forwards after the layer, one channel zeroed each, in batches of {o['batch_size']}"),
    options={"batch_size": 32},
    summary="gradient-free: the drop of the score when each channel is zeroed"))


def _guided_backprop(job):
    return None, None, job.input_grads(guided=True)


def _guided_gradcam(job):
    guided = job.guided_with_layer_grads()  # one backward where no ReLU follows the layer
    alpha, cam = cams.gradcam(job.layer_grads(), job.acts)
    return alpha, cam, guided * job.upsample(cam).unsqueeze(2)


def _gradient(job):
    return None, None, job.input_grads(guided=False)


register_method(Method(
    "guided_backprop", "Guided Backprop", "pixel map", False, "the kept forward + 1 backward (input)",
    "Springenberg et al., ICLR Workshops 2015", _guided_backprop, _full_backward, needs_layer=False,
    needs_pixels=True, guided=True, per_channel=True, tags={PAPER},
    summary="input gradient with negative signals stopped at every ReLU: fine detail, hardly class-specific"))
register_method(Method(
    "guided_gradcam", "Guided Grad-CAM", "pixel map", True,
    "the kept forward + 1 backward (input; 2 when a ReLU follows the layer)", "Selvaraju et al., ICCV 2017",
    _guided_gradcam,
    lambda c, s, o: Cost(0, 2, note="1 guided backward to the input that gives the layer's gradients on the way; "
                                    "a second, exact one to the layer when a ReLU follows it (at most 2)"),
    needs_pixels=True, guided=True, per_channel=True, tags={PAPER},
    summary="Guided Backprop times the upsampled Grad-CAM: fine detail of the class's region"))
register_method(Method(
    "gradient", "Gradient", "pixel map", True, "the kept forward + 1 backward (input)",
    "Simonyan et al., ICLR Workshops 2014", _gradient, _full_backward, needs_layer=False,
    needs_pixels=True, per_channel=True, summary="the plain input gradient (saliency map)"))


def _integrated_gradients(job, steps, baseline, quadrature, batch_size):
    return None, None, job.integrated_gradients(steps=steps, baseline=baseline, rule=quadrature,
                                                batch_size=batch_size)


register_method(Method(
    "integrated_gradients", "Integrated Gradients", "pixel map", True,
    "1 forward + 1 backward per step", "Sundararajan et al., ICML 2017", _integrated_gradients,
    lambda c, s, o: Cost(o["steps"], o["steps"], note=f"{o['steps']} forwards and backwards on the path "
                                                      "from the baseline"),
    needs_layer=False, per_channel=True,
    options={"steps": 32, "baseline": 0.0, "quadrature": "gausslegendre", "batch_size": 32},
    summary="gradients averaged on the straight path from a baseline; they sum to the score difference"))


def _occlusion(job, patch, stride, baseline, batch_size):
    return None, None, job.occlusion(patch=patch, stride=stride, baseline=baseline, batch_size=batch_size)


def _occlusion_cost(c, size, o):
    from .perturbation import occlusion_spots
    n = len(occlusion_spots(size, o["patch"], o["stride"]))
    return Cost(n, 0, note=f"{n} forwards, one {o['patch']}x{o['patch']} square hidden each")


register_method(Method(
    "occlusion", "Occlusion", "pixel map", True, "1 forward per occluded square",
    "Zeiler & Fergus, ECCV 2014", _occlusion, _occlusion_cost, needs_layer=False,
    options={"patch": 8, "stride": 4, "baseline": 0.0, "batch_size": 64},
    summary="the drop of the score when a square of the image is hidden"))


def _rise(job, masks, cell, p, seed, batch_size):
    return None, None, job.rise(masks=masks, cell=cell, p=p, seed=seed, batch_size=batch_size)


register_method(Method(
    "rise", "RISE / D-RISE", "pixel map", True, "1 forward per random mask",
    "Petsiuk et al., BMVC 2018 (RISE); CVPR 2021 (D-RISE, detectors)", _rise,
    lambda c, s, o: Cost(o["masks"], 0, note=f"{o['masks']} forwards, one random mask of {o['cell']}-px cells each"),
    needs_layer=False, options={"masks": 1000, "cell": 16, "p": 0.5, "seed": 0, "batch_size": 64},
    summary="random masks weighted by the score they leave (for a detection: D-RISE's box-and-class similarity); "
            "a black box: no gradients, no layer"))


def _recorder(kind):
    def make(model, layer):
        from . import attention
        return attention.Recorder(model, layer, kind)
    return make


def _legrad(job):
    from . import attention  # its own forward with hooks on the attention of each block

    cap = job.cap
    n = cap._x.shape[0]
    inputs = tuple(t.expand(n, -1) if t.shape[0] == 1 else t for t in cap._call.inputs)
    rows = torch.arange(n)
    cam = attention.legrad(cap._model, cap._call, cap._x, cap.layer, lambda out: job.row_scores(out, rows),
                           attention.readout_of(cap._model), inputs, progress=job.progress,
                           recorded=cap._recorded if cap.pixels else None)
    return None, cam, None


register_method(Method(
    "legrad", "LeGrad", "layer map", True, "1 forward + 1 backward per block and target (attention gradients)",
    "Bousselham et al., 2024", _legrad,
    lambda c, s, o: Cost(1, 1, note="a forward with hooks, then a short backward per block from the chosen one "
                                    "to the last"),
    transformers_only=True, records=_recorder("legrad"), records_grad=True,
    summary="vision transformers: the gradient of each block's own score (the model's readout of that block) "
            "with respect to its attention, positive part, averaged over heads, queries and blocks"))


def _rollout(job, head_fusion):
    from . import attention

    cap = job.cap
    maps = attention.rollout(cap._model, cap._call, cap._x, cap.layer, head_fusion=head_fusion,
                             recorded=cap._recorded)
    return None, maps.unsqueeze(0).expand(job.k, *maps.shape), None  # the same map for every target


register_method(Method(
    "rollout", "Attention rollout", "layer map", False, "1 forward (attention read from each block)",
    "Abnar & Zuidema, ACL 2020", _rollout,
    lambda c, s, o: Cost(1, 0, note="a forward with hooks; the attention recomputed from each block's input"),
    options={"head_fusion": "mean"}, transformers_only=True, records=_recorder("rollout"),
    summary="vision transformers: the attention of every block up to the chosen one, residual added, multiplied "
            "through; the class token's row: where the model mixes information from, for every class alike"))


def _smoothgrad(job, base, samples, noise, seed, batch_size):
    return job.smoothgrad(base=base, samples=samples, noise=noise, seed=seed, batch_size=batch_size)


def _smoothgrad_cost(c, size, o):
    inner = get_method(o["base"]).cost(c, size)
    s = o["samples"]
    return Cost(s * (1 + inner.forwards), s * inner.backwards,
                note=f"{s} noisy copies, each a forward plus {inner.note or 'the base method'}")


register_method(Method(
    "smoothgrad", "SmoothGrad", "pixel map", True, "the base method on each noisy copy",
    "Smilkov et al., 2017", _smoothgrad, _smoothgrad_cost, needs_layer=False, per_channel=True,
    options={"base": "gradient", "samples": 16, "noise": 0.15, "seed": 0, "batch_size": 8}, wraps="base",
    summary="any method averaged over copies of the image with Gaussian noise (sigma: noise x value range)"))


# ----------------------------------------------------------------------------- baselines


def _no_cost(channels, size, o):
    return Cost(0, 0, note="no pass: the map does not look at the model")


def _random(job, seed, rng):
    """Uniform noise in [0, 1), one H x W map per target and image, drawn from ``rng`` (a numpy
    Generator the caller keeps drawing from) or a generator seeded with ``seed``."""
    gen = rng if rng is not None else np.random.default_rng(seed)
    h, w = job.cap.size
    maps = [[gen.random((h, w)) for _ in range(job.cap._n)] for _ in range(job.k)]
    return None, None, torch.from_numpy(np.asarray(maps))


def _centre(job):
    """A Gaussian at the image's centre, sigma = the shorter side / 4, the same for every target."""
    h, w = job.cap.size
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-(((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2) / (2 * (min(h, w) / 4) ** 2)))
    return None, None, torch.from_numpy(g).expand(job.k, job.cap._n, h, w)


register_method(Method(
    "random", "Random", "baseline", False, "none", "a yardstick (any method should beat it)", _random, _no_cost,
    needs_layer=False, options={"seed": 0, "rng": None}, summary="uniform noise: what chance scores"))
register_method(Method(
    "centre", "Centre", "baseline", False, "none", "a yardstick (objects tend to sit at the centre)", _centre,
    _no_cost, needs_layer=False, summary="a Gaussian at the centre of the image (sigma: a quarter of the side)"))
