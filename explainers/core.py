"""The explainer core: one kept forward pass (:class:`Capture`) from which every registered
method (:mod:`explainers.methods`) is computed; Grad-CAM, its variants, pixel and
perturbation methods alike.

Grad-CAM (Selvaraju et al., ICCV 2017 / IJCV 2020), for a score y^c and the activations A^k of a
convolutional layer (Z = h * w positions):

    alpha_k^c = 1/Z sum_ij dy^c / dA^k_ij                      (eq. 1)
    L^c       = ReLU(sum_k alpha_k^c A^k)                       (eq. 2)

The counterfactual map (eq. 6) uses the negated gradients, i.e. Grad-CAM of -y^c. Guided Grad-CAM
is Guided Backprop (see :mod:`explainers.guided`) times L^c upsampled bilinearly to the input.
The other CAMs' formulas are in :mod:`explainers.cams`; methods that run the model again in
:mod:`explainers.perturbation` and :mod:`explainers.paths`.

How the work is done: one forward pass per call. A forward hook on the layer captures A. When no
input gradient is needed, the forward runs without autograd up to the layer; the hook turns A into
a leaf and switches autograd on, so only the head (layer -> output) is recorded. Gradients come
from ``torch.autograd.grad`` (never ``backward()``, which would compute every parameter gradient);
several targets share the forward through batched gradients (``is_grads_batched``). Hooks live for
the forward only and are removed in ``finally``; a lock per model keeps concurrent callers' hooks
apart; the caller's model is left exactly as it was (no flags, ``requires_grad`` or ``.grad``
touched).
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import paths, perturbation
from .guided import GuidedSwitch, guided_relus
from .layers import default_layer, resolve_layer
from .layouts import layout_of
from .locking import model_lock
from .methods import get_method
from .targets import ClassLogit, ClassProbability, Target, as_target, model_inputs

__all__ = ["Explanation", "explain", "Capture", "TopK", "RankedClass"]

@dataclass(frozen=True, eq=False)
class Explanation:
    """One map for one target. For a single image the arrays are unbatched (``layer_map`` h x w,
    ``weights`` C, ``attribution`` H x W for CAM methods or 3 x H x W for pixel methods, ``score``
    a float); for a batch of N > 1 images each gains a leading N axis and ``score`` is an array.

    ``layer_map`` is the paper's L^c at layer resolution, unnormalised; ``weights`` are alpha_k
    (for counterfactual maps: the weights of the negated gradients). ``score`` is the target's
    value (for counterfactual maps: of the target itself, not its negation). Guided Backprop has
    no layer: ``layer``, ``layer_map`` and ``weights`` are None.
    """

    method: str
    layer: str | None
    target: Target
    score: float | np.ndarray
    layer_map: np.ndarray | None
    weights: np.ndarray | None
    attribution: np.ndarray
    input_size: tuple[int, int] = field(default=(0, 0))

    def __repr__(self):
        shape = "x".join(map(str, self.attribution.shape))
        return (f"Explanation(method={self.method!r}, layer={self.layer!r}, "
                f"target={self.target!r}, score={self.score!r}, attribution={shape})")


# ----------------------------------------------------------------------------- checks


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        raise ValueError(
            f"model is in training mode ({', '.join(training[:3])}"
            f"{', ...' if len(training) > 3 else ''}): dropout and batch-norm updates would change "
            "both the maps and the model; call model.eval() first"
        )


def _check_input(model: nn.Module, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor of shape N x C x H x W, not {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"input must be 4D (N x C x H x W), got shape {tuple(x.shape)}"
            + ("; add a batch axis with x.unsqueeze(0)" if x.dim() == 3 else "")
        )
    if not x.is_floating_point():
        raise ValueError(f"input must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError("input batch is empty")
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "explain() was called inside torch.inference_mode(), where no gradient can be computed; "
            "call it outside inference mode (inside torch.no_grad() is fine)")
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if x.dtype != module.weight.dtype:
                want = str(module.weight.dtype).replace("torch.", "")
                raise ValueError(f"input is {str(x.dtype).replace('torch.', '')} but the model's weights are "
                                 f"{want}; convert the input with x.to(torch.{want}) (or the model to the "
                                 "input's type)")
            if x.shape[1] != module.in_channels:
                raise ValueError(
                    f"input has {x.shape[1]} channel(s) but the model's first convolution "
                    f"({name}) expects {module.in_channels}"
                )
            if module.weight.device != x.device:
                raise ValueError(f"input is on {x.device} but the model is on {module.weight.device}")
            break


# ----------------------------------------------------------------------------- forward


@dataclass
class _Forward:
    output: torch.Tensor
    activations: dict[str, torch.Tensor]
    x: torch.Tensor | None


def _describe(output) -> str:
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    return f"a {type(output).__name__}"


class _Caller:
    """Calls ``model(x, *inputs)``: token inputs (one row, shared by every image, or one row per
    image of the captured batch) expanded to the batch the model is given."""

    def __init__(self, model: nn.Module, inputs: tuple, n: int, device):
        self.model = model
        self.inputs = tuple(torch.tensor([list(t)] if t and not isinstance(t[0], (tuple, list)) else [list(r) for r in t],
                                         dtype=torch.long, device=device) for t in inputs)
        for t in self.inputs:
            if t.shape[0] not in (1, n):
                raise ValueError(f"token inputs have {t.shape[0]} rows for {n} image(s); give one row, or one per image")

    def __call__(self, x: torch.Tensor):
        if not self.inputs:
            return self.model(x)
        args = []
        for t in self.inputs:
            if t.shape[0] == 1:
                args.append(t.expand(x.shape[0], -1))
            elif t.shape[0] == x.shape[0]:
                args.append(t)
            else:
                raise ValueError("token inputs with one row per image cannot follow a method that re-runs "
                                 "the model on other batches; give one row shared by every image")
        try:
            return self.model(x, *args)
        except IndexError as err:  # an embedding given an id beyond its table
            raise ValueError(f"the model could not read the token inputs ({err}): a token id is beyond "
                             "its vocabulary") from err


def _forward(model: nn.Module, x: torch.Tensor, layers: Sequence[str], input_grad: bool,
             call=None, on_capture=None) -> _Forward:
    """One forward pass capturing the outputs of ``layers`` (the last call of each).

    Without ``input_grad`` autograd stays off until the first captured layer fires; that
    layer's output becomes a leaf, so only what lies downstream of it is recorded. The hook
    returns a clone, so an in-place op downstream (an in-place ReLU) cannot alter the captured
    activations. The captured tensor is a view of the layer's output, not the output itself: a
    gradient taken there is the one arriving from downstream, before any hook on the output (the
    guided rule's, when the layer ends in a ReLU) acts on it. ``on_capture(name)`` is called as
    each layer fires."""
    modules = {name: resolve_layer(model, name) for name in layers}
    owner = threading.get_ident()
    activations: dict[str, torch.Tensor] = {}

    def make_hook(name):
        def hook(module, inputs, output):
            if threading.get_ident() != owner:  # another thread's plain forward: not ours
                return None
            if not isinstance(output, torch.Tensor) or output.dim() not in (3, 4):
                raise ValueError(
                    f"layer {name!r} outputs {_describe(output)}; Grad-CAM needs a layer whose "
                    "output is an N x C x H x W map, N x T x C tokens or an N x H x W x C grid"
                )
            if not torch.is_grad_enabled():
                output = output.detach().requires_grad_(True)
                torch.set_grad_enabled(True)
            activations[name] = alias = output.view_as(output)
            if on_capture is not None:
                on_capture(name)
            return alias.clone()
        return hook

    x_in = x.detach().requires_grad_(True) if input_grad else x.detach()
    handles = []
    with model_lock(model):
        try:
            for name, module in modules.items():
                handles.append(module.register_forward_hook(make_hook(name)))
            with torch.set_grad_enabled(input_grad):
                output = (call or model)(x_in)
        finally:
            for handle in handles:
                handle.remove()
    for name in layers:
        if name not in activations:
            raise ValueError(f"layer {name!r} was not called during the forward pass, so it "
                             "cannot explain the output; pick a layer on the path to the output")
    return _Forward(output, activations, x_in if input_grad else None)


# ----------------------------------------------------------------------------- gradients


def _scores(output: torch.Tensor, targets: list[Target], n: int) -> torch.Tensor:
    """Stack the targets' scores into a k x N tensor."""
    rows = []
    for t in targets:
        s = t(output)
        if not isinstance(s, torch.Tensor) or s.shape != (n,):
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"target {t!r} must return one score per sample (shape ({n},)), got {got}")
        rows.append(s)
    return torch.stack(rows)


def _grad(scores: torch.Tensor, wrt: torch.Tensor, retain: bool, what: str) -> torch.Tensor:
    """d scores[i].sum() / d wrt for every row i: a k x (wrt.shape) tensor. Samples of a batch
    are independent in eval mode, so summing over the batch gives each sample its own gradient."""
    (g,) = _grads(scores, (wrt,), retain, (what,))
    return g


def _grads(scores: torch.Tensor, wrts: tuple, retain: bool, whats: tuple) -> tuple:
    """:func:`_grad` for several tensors at once, from one backward pass."""
    k = scores.shape[0]
    try:
        if k == 1:
            got = torch.autograd.grad(scores[0].sum(), wrts, retain_graph=retain, allow_unused=True)
            got = tuple(None if g is None else g.unsqueeze(0) for g in got)
        else:
            eye = torch.eye(k, dtype=scores.dtype, device=scores.device)
            grad_outputs = eye[:, :, None].expand(k, k, scores.shape[1])
            got = torch.autograd.grad(scores, wrts, grad_outputs=grad_outputs, retain_graph=retain,
                                      is_grads_batched=True, allow_unused=True)
    except RuntimeError as err:
        if "does not require grad" in str(err) or "does not have a grad_fn" in str(err):
            got = (None,) * len(wrts)
        else:
            raise
    for g, what in zip(got, whats):
        if g is None:
            raise ValueError(f"the target's score does not depend on {what}; pick a layer on the "
                             "path from the input to the scored output")
    return tuple(got)


# ----------------------------------------------------------------------------- maps


def _upsample(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    k, n, h, w = cam.shape
    up = F.interpolate(cam.reshape(k * n, 1, h, w), size=size, mode="bilinear", align_corners=False)
    return up.reshape(k, n, *size)


@dataclass(frozen=True)
class TopK:
    """Explain the ``k`` highest-scoring classes, chosen after the forward pass (no second
    pass). One image: ``ClassLogit`` targets of the top-k classes; a batch: each sample's own
    r-th class (:class:`RankedClass`). Always returns a list."""

    k: int = 5

    def __post_init__(self):
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"TopK needs k >= 1, got {self.k!r}")


@dataclass(frozen=True)
class RankedClass(Target):
    """Each sample's own ``rank``-th class by logit (rank 0: the top-1 prediction)."""

    rank: int = 0

    def __call__(self, output):
        order = output.detach().argsort(dim=1, descending=True)[:, self.rank:self.rank + 1]
        return output.gather(1, order)[:, 0]

    def check(self, num_outputs):
        if not 0 <= self.rank < num_outputs:
            raise ValueError(f"rank {self.rank} out of range for {num_outputs} classes")

    @property
    def label(self):
        return "top-1 class" if self.rank == 0 else f"class ranked {self.rank + 1}"


def _resolve_targets(target, output: torch.Tensor):
    """(targets, return_list). None means each image's top-1 class; TopK(k) the k best."""
    if target is None or isinstance(target, TopK):
        if not (isinstance(output, torch.Tensor) and output.dim() == 2):
            raise ValueError(f"picking the top classes needs an N x classes output; the model "
                             f"returned {_describe(output)}")
        k = 1 if target is None else target.k
        if k > output.shape[1]:
            raise ValueError(f"top-{k} asked for, but the model has only {output.shape[1]} classes")
        top = output.detach().topk(k, dim=1).indices
        if top.shape[0] == 1 or bool((top == top[0]).all()):
            targets = [ClassLogit(int(c)) for c in top[0]]
        else:
            targets = [RankedClass(r) for r in range(k)]
        return targets, target is not None
    if isinstance(target, (list, tuple)):
        if not target:
            raise ValueError("target list is empty")
        return [as_target(t) for t in target], True
    return [as_target(target)], False


def _graph_bytes(fwd: _Forward, model_storages: set) -> int:
    """Bytes of the tensors a forward's autograd graph saved, plus its activations, input and
    output (each storage once); the model's parameters and buffers are not counted."""
    seen: dict[tuple, int] = {}

    def add(t):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            storage = t.untyped_storage()
            key = (storage.data_ptr(), t.device)
            if key not in model_storages:
                seen[key] = storage.nbytes()

    for t in [*fwd.activations.values(), fwd.x, fwd.output]:
        add(t)
    roots = [fwd.output] if isinstance(fwd.output, torch.Tensor) else []
    stack = [t.grad_fn for t in roots if t.grad_fn is not None]
    visited = set()
    while stack:
        node = stack.pop()
        if node is None or node in visited:
            continue
        visited.add(node)
        for name in dir(node):
            if name.startswith("_saved_"):
                value = getattr(node, name, None)
                for v in value if isinstance(value, (tuple, list)) else (value,):
                    add(v)
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return sum(seen.values())


def _np(t: torch.Tensor, batched: bool) -> np.ndarray:
    """A float32 array that owns its memory (no view keeping a tensor or other targets alive)."""
    a = t.detach().to(torch.float32).cpu().numpy()
    return np.array(a if batched else a[0], copy=True)


@dataclass(frozen=True)
class _Pinned(Target):
    """Internal: a fixed class per row, for re-running the model on changed copies of the
    images (the class a :class:`RankedClass` chose on the clean image stays the class)."""

    classes: tuple[int, ...]

    def __call__(self, output):
        idx = torch.tensor(self.classes, device=output.device).view(-1, 1)
        return output.gather(1, idx)[:, 0]


class _Job:
    """One call of a method on a capture: the targets, their scores (with the graph), and the
    operations methods are built from (layer gradients, input gradients, extra forwards)."""

    def __init__(self, capture: "Capture", targets: list[Target], scores: torch.Tensor, progress, spec=None):
        self.cap, self.targets, self.scores, self.progress = capture, targets, scores, progress
        # a one-shot capture frees its graph with its last backward (a retained graph keeps the
        # forward's buffers and costs about a fifth more time on the next call); a kept one keeps it
        self._retain_layer = not capture._one_shot or bool(spec is not None and spec.needs_pixels)
        self._retain_input = not capture._one_shot
        self.k = len(targets)
        self.layer = capture.layer  # the layer the maps come from (smoothgrad: its copies' layer)
        self._layer_grads = None
        out = capture._fwd.output
        # per-sample classes fixed on the clean output: a RankedClass is not re-ranked on a
        # changed copy of the image, and a pinned target follows its rows through any batch
        self.pinned = [out.detach().argsort(dim=1, descending=True)[:, t.rank] if isinstance(t, RankedClass)
                       else torch.tensor(t.classes, device=out.device) if isinstance(t, _Pinned)
                       else None for t in targets]

    # layer
    @property
    def raw(self) -> torch.Tensor:
        return self.cap._fwd.activations[self.cap.layer]

    @property
    def acts(self) -> torch.Tensor:
        return self.cap._layout.apply(self.raw.detach())

    def layer_grads(self) -> torch.Tensor:
        """k x N x C x h x w: the exact gradients of the targets' scores at the layer."""
        if self._layer_grads is None:
            self.cap._switch.guided = False
            g = _grad(self.scores, self.raw, retain=self._retain_layer, what=f"layer {self.cap.layer!r}")
            self._layer_grads = self.cap._layout.apply(g)
        return self._layer_grads

    def target_classes(self, method: str) -> torch.Tensor:
        """k x N: each target's class per image, for methods that rewrite a class's score
        (FinerCAM's contrast, ShapleyCAM's residual softmax): a class (its logit or probability),
        the top-ranked classes, or classes pinned per image; any other target is a ValueError
        naming ``method``."""
        out = self.cap._fwd.output
        if not (isinstance(out, torch.Tensor) and out.dim() == 2):
            raise ValueError(f"{method} works on a classifier's scores (N x classes); this model returned "
                             f"{_describe(out)}")
        rows = []
        for t, pinned in zip(self.targets, self.pinned):
            if pinned is not None:
                rows.append(pinned)
            elif isinstance(t, (ClassLogit, ClassProbability)):
                rows.append(torch.full((self.cap._n,), t.index, dtype=torch.long, device=out.device))
            else:
                raise ValueError(f"{method} explains a class: give it a class target, not {t.label}")
        return torch.stack(rows)

    def grads_of(self, scores: torch.Tensor) -> torch.Tensor:
        """k x N x C x h x w: the gradients at the layer of other scores than the targets' own
        (k x N, computed from this capture's output: a contrast of classes)."""
        self.cap._switch.guided = False
        return self.cap._layout.apply(_grad(scores, self.raw, retain=self._retain_layer,
                                            what=f"layer {self.cap.layer!r}"))

    def hessian_times_activations(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(G, H·A), each k x N x C x h x w: per row of ``scores`` (k x N, from this capture's
        output), its gradient at the layer and the product of its Hessian with respect to the
        layer's output with the activations A, by double backward. H·A is zero where the head
        after the layer is piecewise linear in A (ReLUs, pooling, a linear classifier) and the
        score is a logit."""
        self.cap._switch.guided = False
        a = self.raw.detach()
        grads, hvps = [], []
        for row in scores:
            (g,) = torch.autograd.grad(row.sum(), self.raw, retain_graph=True, create_graph=True)
            h = torch.autograd.grad(g, self.raw, grad_outputs=a, retain_graph=True, allow_unused=True)[0] \
                if g.requires_grad else None
            grads.append(g.detach())
            hvps.append(torch.zeros_like(a) if h is None else h.detach())
        return self.cap._layout.apply(torch.stack(grads)), self.cap._layout.apply(torch.stack(hvps))

    def guided_with_layer_grads(self) -> torch.Tensor:
        """The guided input gradients, with :meth:`layer_grads` set on the way: one backward when
        no ReLU runs after the layer (the guided rule then leaves the gradient arriving at the
        layer exact), else the exact backward to the layer and a guided one to the input."""
        if self._layer_grads is not None or self.cap._head_relus != 0:
            self.layer_grads()
            return self.input_grads(guided=True)
        self.cap._switch.guided = True
        try:
            g_layer, g_input = _grads(self.scores, (self.raw, self.cap._fwd.x), retain=self._retain_input,
                                      whats=(f"layer {self.cap.layer!r}", "the input"))
        finally:
            self.cap._switch.guided = False
        self._layer_grads = self.cap._layout.apply(g_layer)
        return g_input

    def input_grads(self, guided: bool) -> torch.Tensor:
        self.cap._switch.guided = guided
        try:
            return _grad(self.scores, self.cap._fwd.x, retain=self._retain_input, what="the input")
        finally:
            self.cap._switch.guided = False

    def upsample(self, cam: torch.Tensor) -> torch.Tensor:
        return _upsample(cam, self.cap._size)

    # extra forwards
    def row_scores(self, output: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """k x B: the targets' scores of output rows that belong to samples ``rows``."""
        out = []
        for t, pinned in zip(self.targets, self.pinned):
            if pinned is not None:
                out.append(output.gather(1, pinned[rows].view(-1, 1))[:, 0])
                continue
            s = t(output)
            rows_out = output.shape[0] if isinstance(output, torch.Tensor) else len(output)
            if not isinstance(s, torch.Tensor) or s.shape != (rows_out,):
                raise ValueError(f"target {t!r} must return one score per row of the output")
            out.append(s)
        return torch.stack(out)

    def similarity_scores(self, output, rows: torch.Tensor) -> torch.Tensor:
        """k x B: as :meth:`row_scores`, with a target's own ``similarity`` where it has one (a
        detection target's D-RISE similarity)."""
        sims = [getattr(t, "similarity", None) for t in self.targets]
        if not any(sims):
            return self.row_scores(output, rows)
        return torch.stack([f(output) if f is not None else self.row_scores(output, rows)[k]
                            for k, f in enumerate(sims)])

    def _clean(self) -> torch.Tensor:
        return self.scores.detach()

    def score_cam(self, batch_size):
        return perturbation.score_cam(self.cap._call, self.cap._x, self.acts, self.row_scores, self._clean(),
                                      batch_size=batch_size, progress=self.progress)

    def ablation_cam(self, batch_size):
        module = resolve_layer(self.cap._model, self.cap.layer)
        return perturbation.ablation_cam(self.cap._model, module, self.cap._x, self.raw.detach(), self.acts,
                                         self.cap._layout.channel_axis, self.row_scores, self._clean(),
                                         batch_size=batch_size, progress=self.progress, forward=self.cap._call)

    def occlusion(self, **options):
        return perturbation.occlusion(self.cap._call, self.cap._x, self.row_scores, self._clean(),
                                      progress=self.progress, **options)

    def rise(self, **options):
        return perturbation.rise(self.cap._call, self.cap._x, self.similarity_scores, self.scores.shape[0],
                                 progress=self.progress, **options)

    def integrated_gradients(self, **options):
        return paths.integrated_gradients(self.cap._call, self.cap._x, self.row_scores, self.k,
                                          progress=self.progress, **options)

    def smoothgrad(self, *, base, samples, noise, seed, batch_size):
        """The base method averaged over ``samples`` copies x + sigma * e_s, sigma = noise x
        (max - min of each image), e_s standard normal noise drawn for copy s from a generator
        seeded with (``seed``, s): the same noise for every image of a batch, so an image's map
        does not depend on its batch, and a map is reproducible. ``batch_size`` images per
        forward."""
        spec = get_method(base)
        if spec.wraps is not None:  # Method.settings says so first; a direct call here too
            raise ValueError(f"smoothgrad cannot wrap {spec.name}, which wraps a method itself; choose another base method")
        cap = self.cap
        x, n = cap._x, cap._x.shape[0]
        sigma = float(noise) * (x.amax(dim=(1, 2, 3), keepdim=True) - x.amin(dim=(1, 2, 3), keepdim=True))
        per_batch = max(1, batch_size // n)
        layer = cap.layer or cap._layer_arg
        sums = None
        self._tell(0, samples)
        for start in range(0, samples, per_batch):
            m = min(per_batch, samples - start)
            noise_of = [torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(int(seed) * 100_003 + s),
                                    dtype=x.dtype) for s in range(start, start + m)]
            eps = torch.stack(noise_of).to(x.device).unsqueeze(1) * sigma  # m x N x C x H x W
            noisy = (x.unsqueeze(0) + eps).flatten(0, 1)
            targets = [_Pinned(tuple(int(c) for c in pinned.tolist()) * m) if pinned is not None else t
                       for t, pinned in zip(self.targets, self.pinned)]
            sub = Capture(cap._model, noisy, layer=layer, pixels=spec.needs_pixels, guided=spec.guided,
                          cam=spec.needs_layer, reshape=cap._reshape, inputs=cap._inputs)
            sub._one_shot = True
            parts = sub._compute(spec, targets, dict(spec.options), None, check=False)[2:5]
            parts = [None if p is None else p.reshape(p.shape[0], m, n, *p.shape[2:]).sum(1) for p in parts]
            sums = parts if sums is None else [None if a is None else a + b for a, b in zip(sums, parts)]
            self.layer = sub.layer
            del sub
            self._tell(start + m, samples)
        return tuple(None if p is None else p / samples for p in sums)

    def _tell(self, done, total):
        if self.progress is not None:
            self.progress(done, total)


class Capture:
    """One forward pass of ``x`` through ``model``, kept so that further targets and methods
    cost a backward pass only (the dashboard switches class or method without a new forward).

    ``layer``: the layer for layer-map methods (None: the default layer); ``cam=False`` captures
    no layer (pixel methods only). ``pixels=True`` records the whole forward with the guided
    ReLU hooks (switched off for exact gradients), so Guided Backprop, Guided Grad-CAM and the
    input gradient are available too; ``guided=False`` leaves the guided hooks out (the input
    gradient only, without their per-operation cost). ``reshape``: how the layer's output becomes
    N x C x h x w (default: the rule of :mod:`explainers.layouts`, which handles ViT tokens and
    Swin's channels-last grids). The capture holds the autograd graph: drop it to free the
    memory. Calls are serialised by a lock of the capture's own; the model's lock is held only
    while hooks are on the model."""

    def __init__(self, model: nn.Module, x: torch.Tensor, *, layer: str | None = None,
                 pixels: bool = False, cam: bool = True, reshape=None, guided: bool | None = None,
                 inputs: tuple = (), record=None):
        _check_model(model)
        _check_input(model, x)
        self._inputs = tuple(tuple(t) for t in inputs)
        self._call = _Caller(model, self._inputs, x.shape[0], x.device)
        if reshape is not None and not callable(reshape):
            raise TypeError(f"reshape must be a callable (layer output -> N x C x h x w), not "
                            f"{type(reshape).__name__}")
        self._layer_arg = layer
        if cam and layer is None and self._inputs:
            raise ValueError("a model that takes token inputs needs its layer named (layer=...): the default "
                             "layer is found by running the model on the image alone")
        self.layer = (layer if layer is not None else default_layer(model, x)) if cam else None
        self.pixels = pixels
        self.guided = pixels if guided is None else (guided and pixels)
        self._reshape = reshape
        self._switch = GuidedSwitch(guided=False)
        mode = guided_relus(self._switch) if self.guided else contextlib.nullcontext()
        marks = []  # ReLUs hooked when the layer fired: those after it lie between the layer and the output
        # record: (model, layer) -> a context manager of hooks active during this forward, whose records
        # a method reads instead of running a forward of its own (LeGrad's and rollout's attention)
        self._recorded = record(model, self.layer) if record is not None else None
        with mode, self._recorded if self._recorded is not None else contextlib.nullcontext():
            self._fwd = _forward(model, x, [self.layer] if cam else [], input_grad=pixels, call=self._call,
                                 on_capture=lambda name: marks.append(self._switch.relus))
        # ReLUs that ran after the layer (None: not known, no guided rule recorded)
        self._head_relus = self._switch.relus - marks[-1] if marks and self.guided else None
        self._layout = None
        if cam:
            self._layout = layout_of(self.layer, resolve_layer(model, self.layer),
                                     self._fwd.activations[self.layer], reshape)
        self._x = x.detach()
        self._n = x.shape[0]
        self._size = (x.shape[-2], x.shape[-1])
        self._lock = threading.Lock()
        self._nbytes: int | None = None
        self._model = model
        self._one_shot = False  # explain() sets it: one method, then the capture is dropped

    @property
    def output(self) -> torch.Tensor:
        """The model output of the captured forward pass (detached)."""
        return self._fwd.output.detach() if isinstance(self._fwd.output, torch.Tensor) else self._fwd.output

    @property
    def activation(self) -> torch.Tensor | None:
        """A, the captured layer's output as N x C x h x w (detached); None without a layer."""
        return None if self.layer is None else self._layout.apply(self._fwd.activations[self.layer].detach())

    @property
    def layout(self) -> str | None:
        """How the layer's output was read, in words (e.g. "tokens after the class token as a
        14x14 grid"); None without a layer."""
        return None if self._layout is None else self._layout.describe()

    @property
    def size(self) -> tuple[int, int]:
        """H x W of the captured input."""
        return self._size

    @property
    def channels(self) -> int | None:
        """C, the number of channels of the captured layer (what Score-CAM's cost counts)."""
        return None if self.layer is None else int(self.activation.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes this capture keeps alive: the tensors its autograd graph saved for the backward
        (found by walking the graph once, on first use), the captured activations, the input and
        the output; each storage counted once, parameters not counted (the model owns them)."""
        if self._nbytes is None:
            own = {(t.untyped_storage().data_ptr(), t.device)
                   for t in [*self._model.parameters(), *self._model.buffers()]}
            self._nbytes = _graph_bytes(self._fwd, own)
        return self._nbytes

    def _compute(self, spec, target, settings: dict, progress, check: bool = True):
        """(targets, as_list, alpha, cam, attribution, scores, layer); tensors with a leading
        targets axis."""
        if spec.needs_layer and self.layer is None:
            raise ValueError(f"{spec.name} needs a layer, but this capture was made with cam=False")
        if spec.needs_pixels and not self.pixels:
            raise ValueError(f"{spec.name} needs the input gradient: capture with pixels=True")
        if spec.guided and not self.guided:
            raise ValueError(f"{spec.name} needs the guided ReLU rule: capture with pixels=True and guided on")
        fwd = self._fwd
        with self._lock, torch.enable_grad():  # also when the caller is inside torch.no_grad()
            targets, as_list = _resolve_targets(target, fwd.output)
            wanted = model_inputs(targets)
            if wanted and wanted != self._inputs:
                raise ValueError("this capture ran the model with other token inputs than the target needs "
                                 "(another caption or question): capture with inputs=target.model_inputs()")
            if isinstance(fwd.output, torch.Tensor) and fwd.output.dim() == 2:
                for t in targets:
                    t.check(fwd.output.shape[1])
            for t in targets if check else ():  # SmoothGrad's noisy copies may lose a detection: scored 0
                t.check_output(fwd.output)
            scores = _scores(fwd.output, targets, self._n)
            job = _Job(self, targets, scores, progress, spec)
            alpha, cam, attribution = spec.compute(job, **settings)
            if attribution is None:
                attribution = job.upsample(cam)
        return targets, as_list, alpha, cam, attribution, scores, job.layer

    def explain(self, method: str = "gradcam", target=None, *, progress=None, **options):
        """As :func:`explain`, from the captured forward pass."""
        spec = get_method(method)
        settings = spec.settings(options)
        targets, as_list, alpha, cam, attribution, scores, layer = self._compute(spec, target, settings, progress)
        batched = self._n > 1
        layer = layer if cam is not None else None
        results = []
        for i, t in enumerate(targets):
            score = scores[i].detach().to(torch.float32).cpu().numpy()
            results.append(Explanation(
                method=method,
                layer=layer,
                target=t,
                score=score if batched else float(score[0]),
                layer_map=None if cam is None else _np(cam[i], batched),
                weights=None if alpha is None else _np(alpha[i], batched),
                attribution=_np(attribution[i], batched),
                input_size=self._size,
            ))
        return results if as_list else results[0]


def explain(model: nn.Module, x: torch.Tensor, *, method: str = "gradcam",
            layer: str | None = None, target=None, reshape=None, progress=None, **options):
    """Explain ``model``'s output for the images ``x`` (N x C x H x W, preprocessed).

    ``method``: a name from :func:`explainers.method_names` (see :func:`explainers.get_method` for
    each one's kind, cost and paper). ``layer``: dotted module name (None: the last spatial
    feature map, see :func:`explainers.default_layer`); layers that output tokens or
    channels-last grids are reshaped by the rule of :mod:`explainers.layouts`, or by
    ``reshape`` (a callable: output -> N x C x h x w). ``target``: a class index, a
    :class:`Target`, a callable ``output -> scores[N]``, None (top-1 class), ``TopK(k)`` (the k
    best classes), or a list of targets; several targets are all explained from one forward pass
    (batched gradients) and returned as a list of :class:`Explanation`. ``progress(done, total)``
    is called as forward-heavy methods (Score-CAM, Ablation-CAM, occlusion, Integrated
    Gradients, SmoothGrad) work through their batches. ``options``: the method's own (e.g.
    ``steps=`` for Integrated Gradients, ``batch_size=``); an unknown one is an error. To
    explain more targets or methods later without another forward pass, keep a :class:`Capture`.
    """
    spec = get_method(method)
    settings = spec.settings(options)
    needs_layer = spec.needs_layer or (spec.wraps is not None and get_method(settings[spec.wraps]).needs_layer)
    if layer is not None and not spec.needs_layer:
        _check_model(model)
        resolve_layer(model, layer)  # a method without a layer still rejects a wrong name
    inputs = model_inputs([as_target(t) for t in target]) if isinstance(target, (list, tuple)) \
        else model_inputs([target]) if isinstance(target, Target) else ()
    capture = Capture(model, x, layer=layer, pixels=spec.needs_pixels or spec.records_grad, guided=spec.guided,
                      cam=spec.needs_layer, reshape=reshape, inputs=inputs, record=spec.records)
    if needs_layer and not spec.needs_layer:
        capture._layer_arg = layer
    capture._one_shot = True
    return capture.explain(method, target, progress=progress, **options)
