"""Grad-CAM, counterfactual Grad-CAM, Guided Backprop and Guided Grad-CAM from one forward pass.

Grad-CAM (Selvaraju et al., ICCV 2017 / IJCV 2020), for a score y^c and the activations A^k of a
convolutional layer (Z = h * w positions):

    alpha_k^c = 1/Z sum_ij dy^c / dA^k_ij                      (eq. 1)
    L^c       = ReLU(sum_k alpha_k^c A^k)                       (eq. 2)

The counterfactual map (eq. 6) uses the negated gradients, i.e. Grad-CAM of -y^c. Guided Grad-CAM
is Guided Backprop (see :mod:`explainers.guided`) times L^c upsampled bilinearly to the input.

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

from .guided import GuidedSwitch, guided_relus
from .layers import default_layer, resolve_layer
from .locking import model_lock
from .targets import ClassLogit, Target, as_target

__all__ = ["METHODS", "Explanation", "explain", "Capture", "TopK", "RankedClass"]

METHODS = ("gradcam", "counterfactual", "guided_backprop", "guided_gradcam")
_CAM_METHODS = {"gradcam", "counterfactual", "guided_gradcam"}
_PIXEL_METHODS = {"guided_backprop", "guided_gradcam"}


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


def _check_method(method) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


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


def _forward(model: nn.Module, x: torch.Tensor, layers: Sequence[str], input_grad: bool) -> _Forward:
    """One forward pass capturing the outputs of ``layers`` (the last call of each).

    Without ``input_grad`` autograd stays off until the first captured layer fires; that
    layer's output becomes a leaf, so only what lies downstream of it is recorded. The hook
    returns a clone, so an in-place op downstream (an in-place ReLU) cannot alter the captured
    activations."""
    modules = {name: resolve_layer(model, name) for name in layers}
    owner = threading.get_ident()
    activations: dict[str, torch.Tensor] = {}

    def make_hook(name):
        def hook(module, inputs, output):
            if threading.get_ident() != owner:  # another thread's plain forward: not ours
                return None
            if not isinstance(output, torch.Tensor) or output.dim() != 4:
                raise ValueError(
                    f"layer {name!r} outputs {_describe(output)}; Grad-CAM needs a layer whose "
                    "output is an N x C x H x W tensor"
                )
            if not torch.is_grad_enabled():
                output = output.detach().requires_grad_(True)
                torch.set_grad_enabled(True)
            activations[name] = output
            return output.clone()
        return hook

    x_in = x.detach().requires_grad_(True) if input_grad else x.detach()
    handles = []
    with model_lock(model):
        try:
            for name, module in modules.items():
                handles.append(module.register_forward_hook(make_hook(name)))
            with torch.set_grad_enabled(input_grad):
                output = model(x_in)
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
    k = scores.shape[0]
    try:
        if k == 1:
            (g,) = torch.autograd.grad(scores[0].sum(), wrt, retain_graph=retain, allow_unused=True)
            g = None if g is None else g.unsqueeze(0)
        else:
            eye = torch.eye(k, dtype=scores.dtype, device=scores.device)
            grad_outputs = eye[:, :, None].expand(k, k, scores.shape[1])
            (g,) = torch.autograd.grad(scores, wrt, grad_outputs=grad_outputs, retain_graph=retain,
                                       is_grads_batched=True, allow_unused=True)
    except RuntimeError as err:
        if "does not require grad" in str(err) or "does not have a grad_fn" in str(err):
            g = None
        else:
            raise
    if g is None:
        raise ValueError(f"the target's score does not depend on {what}; pick a layer on the "
                         "path from the input to the scored output")
    return g


# ----------------------------------------------------------------------------- maps


def _cam(grads: torch.Tensor, acts: torch.Tensor, negate: bool):
    """alpha = spatial mean of the (negated) gradients; L = ReLU(sum_k alpha_k A^k)."""
    alpha = grads.mean(dim=(-2, -1))
    if negate:
        alpha = -alpha
    cam = torch.relu(torch.einsum("knc,nchw->knhw", alpha, acts.detach()))
    return alpha, cam


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


class Capture:
    """One forward pass of ``x`` through ``model``, kept so that further targets and methods
    cost a backward pass only (the dashboard switches class or method without a new forward).

    ``layer``: the layer for CAM methods (None: the default layer); ``cam=False`` captures no
    layer (Guided Backprop only). ``pixels=True`` records the whole forward with the guided
    ReLU hooks (switched off for exact gradients), so Guided Backprop and Guided Grad-CAM are
    available too. The capture holds the autograd graph: drop it to free the memory. Calls are
    serialised by a lock of the capture's own; the model's lock is held only during the forward."""

    def __init__(self, model: nn.Module, x: torch.Tensor, *, layer: str | None = None,
                 pixels: bool = False, cam: bool = True):
        _check_model(model)
        _check_input(model, x)
        self.layer = (layer if layer is not None else default_layer(model, x)) if cam else None
        self.pixels = pixels
        self._switch = GuidedSwitch(guided=False)
        mode = guided_relus(self._switch) if pixels else contextlib.nullcontext()
        with mode:
            self._fwd = _forward(model, x, [self.layer] if cam else [], input_grad=pixels)
        self._n = x.shape[0]
        self._size = (x.shape[-2], x.shape[-1])
        self._lock = threading.Lock()
        self._nbytes: int | None = None
        self._model = model  # for nbytes only: which storages are the model's own

    @property
    def output(self) -> torch.Tensor:
        """The model output of the captured forward pass (detached)."""
        return self._fwd.output.detach() if isinstance(self._fwd.output, torch.Tensor) else self._fwd.output

    @property
    def activation(self) -> torch.Tensor | None:
        """A, the captured layer's output (N x C x h x w, detached); None without a layer."""
        return None if self.layer is None else self._fwd.activations[self.layer].detach()

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

    def explain(self, method: str = "gradcam", target=None):
        """As :func:`explain`, from the captured forward pass."""
        _check_method(method)
        needs_cam = method in _CAM_METHODS
        needs_pixels = method in _PIXEL_METHODS
        if needs_cam and self.layer is None:
            raise ValueError(f"{method} needs a layer, but this capture was made with cam=False")
        if needs_pixels and not self.pixels:
            raise ValueError(f"{method} needs the input gradient: capture with pixels=True")
        fwd, n, size = self._fwd, self._n, self._size
        with self._lock, torch.enable_grad():  # also when the caller is inside torch.no_grad()
            targets, as_list = _resolve_targets(target, fwd.output)
            if isinstance(fwd.output, torch.Tensor) and fwd.output.dim() == 2:
                for t in targets:
                    t.check(fwd.output.shape[1])
            scores = _scores(fwd.output, targets, n)
            alpha = cam = pixels = None
            if needs_cam:
                acts = fwd.activations[self.layer]
                self._switch.guided = False
                grads = _grad(scores, acts, retain=True, what=f"layer {self.layer!r}")
                alpha, cam = _cam(grads, acts, negate=(method == "counterfactual"))
                del grads
            if needs_pixels:
                self._switch.guided = True
                pixels = _grad(scores, fwd.x, retain=True, what="the input")
                self._switch.guided = False

        batched = n > 1
        if method == "guided_backprop":
            attribution = pixels
        elif method == "guided_gradcam":
            attribution = pixels * _upsample(cam, size).unsqueeze(2)
        else:
            attribution = _upsample(cam, size)
        results = []
        for i, t in enumerate(targets):
            score = scores[i].detach().to(torch.float32).cpu().numpy()
            results.append(Explanation(
                method=method,
                layer=self.layer if needs_cam else None,
                target=t,
                score=score if batched else float(score[0]),
                layer_map=None if cam is None else _np(cam[i], batched),
                weights=None if alpha is None else _np(alpha[i], batched),
                attribution=_np(attribution[i], batched),
                input_size=size,
            ))
        return results if as_list else results[0]


def explain(model: nn.Module, x: torch.Tensor, *, method: str = "gradcam",
            layer: str | None = None, target=None):
    """Explain ``model``'s output for the images ``x`` (N x C x H x W, preprocessed).

    ``method``: ``"gradcam"``, ``"counterfactual"``, ``"guided_backprop"`` or
    ``"guided_gradcam"``. ``layer``: dotted module name (None: the last spatial feature map, see
    :func:`explainers.default_layer`). ``target``: a class index, a :class:`Target`, a callable
    ``output -> scores[N]``, None (top-1 class), ``TopK(k)`` (the k best classes), or a list of
    targets; several targets are all explained from one forward pass (batched gradients) and
    returned as a list of :class:`Explanation`. To explain more targets or methods later without
    another forward pass, keep a :class:`Capture`.
    """
    _check_method(method)
    if layer is not None and method not in _CAM_METHODS:
        _check_model(model)
        resolve_layer(model, layer)  # Guided Backprop has no layer, but a wrong name is still an error
    capture = Capture(model, x, layer=layer, pixels=method in _PIXEL_METHODS,
                      cam=method in _CAM_METHODS)
    return capture.explain(method, target)
