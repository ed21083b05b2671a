"""Adversarial examples for robustness checks of explanations (Grad-CAM, section 6.2: the map of
the original class stays on the object when a perturbation flips the prediction).

Both attacks work in pixel space, p = x * std + mean in [0, 1], with an L-infinity budget
``epsilon`` in those units (8/255 is 8 grey levels), and feed the model (p - mean) / std:

* FGSM (Goodfellow et al., 2015): p' = clip(p + epsilon * sign(grad_p L), 0, 1), one gradient;
* PGD (Madry et al., 2018): from p (or a uniform random start in the epsilon ball), ``steps``
  times p <- clip(proj_eps(p + step_size * sign(grad_p L)), 0, 1).

L is the cross-entropy of the true label (untargeted: ascend it) or of ``target`` (targeted:
descend it). A few lines of our own: one gradient to the input per step
(``torch.autograd.grad``), no parameter gradients; the model runs in eval mode and comes back as
it was.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .locking import model_lock

__all__ = ["Attack", "fgsm", "pgd"]


@dataclass(frozen=True, eq=False)
class Attack:
    """``x``: the adversarial model inputs; ``perturbation``: p' - p in pixel units (N x 3 x H x W,
    within [-epsilon, epsilon]); predictions before and after."""

    method: str
    x: torch.Tensor
    perturbation: torch.Tensor
    clean_prediction: torch.Tensor
    prediction: torch.Tensor
    epsilon: float
    steps: int
    step_size: float
    targeted: bool

    @property
    def flipped(self) -> torch.Tensor:
        """Per image: did the prediction change?"""
        return self.prediction != self.clean_prediction

    @property
    def flip_rate(self) -> float:
        return float(self.flipped.float().mean())


def _stats(v, x: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    return t.view(1, -1, 1, 1) if t.dim() == 1 else t


def _labels(v, n: int, what: str, device) -> torch.Tensor:
    t = torch.as_tensor(v, device=device).long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{t.numel()} {what} for {n} images")
    return t


class _Runner:
    def __init__(self, model, x, label, target, mean, std, inputs):
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"x must be an N x C x H x W tensor, not {getattr(x, 'shape', type(x).__name__)}")
        self.model, self.inputs = model, tuple(inputs)
        self.mean, self.std = _stats(mean, x), _stats(std, x)
        n = x.shape[0]
        self.label = _labels(label, n, "labels", x.device)
        self.target = None if target is None else _labels(target, n, "targets", x.device)
        self.pixels = (x.detach() * self.std + self.mean).clamp(0, 1)

    def logits(self, p):
        return self.model((p - self.mean) / self.std, *self.inputs)

    def check(self, logits):
        k = logits.shape[1]
        for name, t in (("label", self.label), ("target", self.target)):
            if t is not None and (int(t.min()) < 0 or int(t.max()) >= k):
                raise ValueError(f"{name} {int(t.max()) if int(t.max()) >= k else int(t.min())} is out of range: "
                                 f"the model has {k} classes (0..{k - 1})")

    def step_direction(self, p):
        p = p.detach().requires_grad_(True)
        logits = self.logits(p)
        self.check(logits)
        if self.target is None:
            loss = F.cross_entropy(logits, self.label, reduction="sum")
            sign = 1.0
        else:
            loss = F.cross_entropy(logits, self.target, reduction="sum")
            sign = -1.0
        (g,) = torch.autograd.grad(loss, p)
        return sign * g.sign()


def _run(model: nn.Module, body: Callable[[_Runner], torch.Tensor], runner: _Runner, method, epsilon, steps,
         step_size) -> Attack:
    with model_lock(model):
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                clean = runner.logits(runner.pixels)
            runner.check(clean)
            adv = body(runner)
            with torch.no_grad():
                after = runner.logits(adv)
        finally:
            model.train(was)
    x_adv = ((adv - runner.mean) / runner.std).detach()
    return Attack(method, x_adv, (adv - runner.pixels).detach(), clean.argmax(1), after.argmax(1), float(epsilon),
                  steps, float(step_size), runner.target is not None)


def _check_budget(epsilon):
    if not 0 < epsilon <= 1:
        raise ValueError(f"epsilon is a fraction of the pixel range in (0, 1] (8/255 = {8 / 255:.4f}), not {epsilon}")


def fgsm(model: nn.Module, x: torch.Tensor, label, epsilon: float, *, target=None, mean: float | Sequence = 0.0,
         std: float | Sequence = 1.0, inputs: tuple = ()) -> Attack:
    """One signed-gradient step of size ``epsilon`` (pixel units); ``mean`` / ``std``: the
    model's normalisation, so that p = x * std + mean."""
    _check_budget(epsilon)
    runner = _Runner(model, x, label, target, mean, std, inputs)

    def body(r):
        return (r.pixels + epsilon * r.step_direction(r.pixels)).clamp(0, 1).detach()

    return _run(model, body, runner, "fgsm", epsilon, 1, epsilon)


def pgd(model: nn.Module, x: torch.Tensor, label, epsilon: float, *, steps: int = 10, step_size: float | None = None,
        target=None, random_start: bool = True, seed: int = 0, mean: float | Sequence = 0.0,
        std: float | Sequence = 1.0, inputs: tuple = (), progress: Callable[[int, int], None] | None = None) -> Attack:
    """Projected gradient descent in the L-infinity ball of radius ``epsilon``; ``step_size``
    defaults to 2.5 * epsilon / steps (Madry et al.); ``random_start`` draws the start uniformly
    in the ball from a generator seeded by ``seed``. ``progress(done, steps)`` after each step."""
    _check_budget(epsilon)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    alpha = 2.5 * epsilon / steps if step_size is None else float(step_size)
    if alpha <= 0:
        raise ValueError(f"step_size must be positive, not {step_size}")
    runner = _Runner(model, x, label, target, mean, std, inputs)

    def body(r):
        p0 = r.pixels
        p = p0
        if random_start:
            g = torch.Generator(device="cpu").manual_seed(int(seed))
            noise = (torch.rand(p0.shape, generator=g) * 2 - 1).to(p0) * epsilon
            p = (p0 + noise).clamp(0, 1)
        for i in range(steps):
            p = p + alpha * r.step_direction(p)
            p = torch.min(torch.max(p, p0 - epsilon), p0 + epsilon).clamp(0, 1).detach()
            if progress:
                progress(i + 1, steps)
        return p

    return _run(model, body, runner, "pgd", epsilon, steps, alpha)
