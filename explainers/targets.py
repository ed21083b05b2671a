"""What is explained: a function from the model output to one score per sample.

Grad-CAM (Selvaraju et al., ICCV 2017, eq. 1) differentiates the pre-softmax score y^c, so a
plain class index means :class:`ClassLogit`. Targets are small frozen dataclasses with a readable
repr: they can key caches and be logged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

__all__ = [
    "Target", "ClassLogit", "ClassProbability", "Negated", "Contrast", "Custom", "as_target",
]


class Target:
    """Base class: ``target(output) -> scores`` of shape ``[N]``."""

    def __call__(self, output: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, num_outputs: int) -> None:
        """Raise ``ValueError`` if this target cannot apply to ``num_outputs`` classes."""

    @property
    def label(self) -> str:
        return repr(self)


def _check_index(index: int, num_outputs: int) -> None:
    if not 0 <= index < num_outputs:
        raise ValueError(
            f"class index {index} out of range: the model has {num_outputs} outputs "
            f"(valid indices 0..{num_outputs - 1})"
        )


def _logits(output: torch.Tensor) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(
            f"class targets need a model output of shape [N, classes], got {shape}; "
            "pass a Custom target that maps the output to one score per sample"
        )
    return output


@dataclass(frozen=True)
class ClassLogit(Target):
    """y^c: the pre-softmax score of class ``index`` (the paper's choice)."""

    index: int

    def __call__(self, output):
        return _logits(output)[:, self.index]

    def check(self, num_outputs):
        _check_index(self.index, num_outputs)

    @property
    def label(self):
        return f"class {self.index}"


@dataclass(frozen=True)
class ClassProbability(Target):
    """softmax(y)_c: the probability of class ``index``."""

    index: int

    def __call__(self, output):
        return torch.softmax(_logits(output), dim=1)[:, self.index]

    def check(self, num_outputs):
        _check_index(self.index, num_outputs)

    @property
    def label(self):
        return f"p(class {self.index})"


@dataclass(frozen=True)
class Negated(Target):
    """-score: counterfactual explanations (paper section 3.3, eq. 6) differentiate this."""

    base: Target

    def __call__(self, output):
        return -self.base(output)

    def check(self, num_outputs):
        self.base.check(num_outputs)

    @property
    def label(self):
        return f"-({self.base.label})"


@dataclass(frozen=True)
class Contrast(Target):
    """y^a - y^b: evidence for class ``a`` rather than class ``b``."""

    a: int
    b: int

    def __call__(self, output):
        out = _logits(output)
        return out[:, self.a] - out[:, self.b]

    def check(self, num_outputs):
        _check_index(self.a, num_outputs)
        _check_index(self.b, num_outputs)

    @property
    def label(self):
        return f"class {self.a} vs class {self.b}"


@dataclass(frozen=True)
class Custom(Target):
    """Any callable mapping the model output to one score per sample (captioning word, VQA
    answer, a region's mean, ...). ``name`` keeps the repr readable and stable."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    name: str = "custom"

    def __call__(self, output):
        return self.fn(output)

    def __repr__(self):
        return f"Custom({self.name!r})"

    @property
    def label(self):
        return self.name


def as_target(target) -> Target:
    """Turn an ``int`` into :class:`ClassLogit`; pass targets through; reject anything else."""
    if isinstance(target, Target):
        return target
    if isinstance(target, bool):
        raise TypeError("target must be a class index, a Target or a callable, not a bool")
    if isinstance(target, int) or (hasattr(target, "__index__") and not callable(target)):
        return ClassLogit(int(target))
    if callable(target):
        return Custom(target, getattr(target, "__name__", "custom"))
    raise TypeError(
        f"target must be a class index, a Target or a callable, not {type(target).__name__}"
    )
