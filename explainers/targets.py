"""What is explained: a function from the model output to one score per sample.

Grad-CAM (Selvaraju et al., ICCV 2017, eq. 1) differentiates the pre-softmax score y^c, so a
plain class index means :class:`ClassLogit`. Targets are small frozen dataclasses with a readable
repr: they can key caches and be logged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = [
    "Target", "ClassLogit", "ClassProbability", "Negated", "Contrast", "Custom", "as_target",
    "CaptionLogProb", "WordLogProb", "WordLogit", "Answer", "model_inputs",
    "ActionLogit", "ActionProbability", "ActionContrast", "Value",
    "DetectionScore", "SegmentationRegion", "match_detection", "TextSimilarity",
]


class Target:
    """Base class: ``target(output) -> scores`` of shape ``[N]``."""

    def __call__(self, output: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, num_outputs: int) -> None:
        """Raise ``ValueError`` if this target cannot apply to ``num_outputs`` classes."""

    def check_output(self, output) -> None:
        """Raise ``ValueError`` if this target cannot apply to the explained image's ``output``
        (any model output; a detection target checks that its object was detected)."""

    def model_inputs(self) -> tuple[tuple[int, ...], ...]:
        """Token inputs the model takes beside the image for this target (a caption, a
        question), as tuples of ids; the model is called as ``model(x, *inputs)``. None here."""
        return ()

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


def _check_tokens(tokens, what: str, minimum: int = 1) -> tuple[int, ...]:
    if not isinstance(tokens, tuple) or len(tokens) < minimum or not all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in tokens):
        raise ValueError(f"{what} must be a tuple of at least {minimum} token id(s) >= 0, got {tokens!r}")
    return tokens


def _word_log_probs(output, tokens: tuple[int, ...]) -> torch.Tensor:
    """N x T: log p(tokens[t + 1] | image, tokens[: t + 1]) from next-word logits N x T x words."""
    if not isinstance(output, torch.Tensor) or output.dim() != 3:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"caption targets need next-word logits of shape [N, words, vocabulary], got {shape}")
    steps = len(tokens) - 1
    if output.shape[1] != steps:
        raise ValueError(f"the model gave logits for {output.shape[1]} steps, the caption has {steps} words")
    if max(tokens) >= output.shape[2]:
        raise ValueError(f"token id {max(tokens)} out of range: the vocabulary has {output.shape[2]} words")
    target = torch.tensor(tokens[1:], device=output.device)
    logp = torch.log_softmax(output, dim=-1)
    return logp[:, torch.arange(steps, device=output.device), target]


@dataclass(frozen=True)
class CaptionLogProb(Target):
    """log p(caption | image) = sum_t log p(w_t | image, w_<t) under teacher forcing: the paper's
    captioning target (section 8). ``tokens``: the caption's ids from its start token to its end
    token; the model is called as ``model(x, tokens[:-1])`` and must return next-word logits
    N x (len(tokens) - 1) x vocabulary."""

    tokens: tuple[int, ...]
    name: str = "caption"

    def __post_init__(self):
        _check_tokens(self.tokens, "a caption", 2)

    def model_inputs(self):
        return (self.tokens[:-1],)

    def __call__(self, output):
        return _word_log_probs(output, self.tokens).sum(dim=1)

    @property
    def label(self):
        return self.name


@dataclass(frozen=True)
class WordLogProb(Target):
    """log p(w_position | image, the words before it): one word of a caption, teacher-forced
    with the same inputs as :class:`CaptionLogProb` (so every word of a caption shares one
    forward pass). ``position`` counts the predicted words from 0 (the first after the start)."""

    tokens: tuple[int, ...]
    position: int
    name: str = "word"

    def __post_init__(self):
        _check_tokens(self.tokens, "a caption", 2)
        if not isinstance(self.position, int) or not 0 <= self.position < len(self.tokens) - 1:
            raise ValueError(f"word position {self.position!r} out of range: the caption has "
                             f"{len(self.tokens) - 1} predicted words (0..{len(self.tokens) - 2})")

    def model_inputs(self):
        return (self.tokens[:-1],)

    def __call__(self, output):
        return _word_log_probs(output, self.tokens)[:, self.position]

    @property
    def label(self):
        return self.name


@dataclass(frozen=True)
class WordLogit(WordLogProb):
    """The pre-softmax score of the word at ``position`` (teacher-forced like
    :class:`WordLogProb`): the word's y^c, as Grad-CAM takes a class's logit. A log-probability
    saturates when the model is sure of a word (its gradient then mostly says what the other
    words would need), so a word's map is sharper from its logit."""

    name: str = "word logit"

    def __call__(self, output):
        _word_log_probs(output, self.tokens)  # the same checks of shapes and ids
        t = self.tokens[self.position + 1]
        return output[:, self.position, t]


@dataclass(frozen=True)
class Answer(Target):
    """The logit of answer ``index`` to the question ``question`` (token ids; the model is called
    as ``model(x, question)``); with ``versus``, the logit difference "why this answer rather
    than that one"."""

    question: tuple[int, ...]
    index: int
    versus: int | None = None
    name: str = "answer"

    def __post_init__(self):
        _check_tokens(self.question, "a question")

    def model_inputs(self):
        return (self.question,)

    def __call__(self, output):
        out = _logits(output)
        return out[:, self.index] - (out[:, self.versus] if self.versus is not None else 0)

    def check(self, num_outputs):
        _check_index(self.index, num_outputs)
        if self.versus is not None:
            _check_index(self.versus, num_outputs)

    @property
    def label(self):
        return self.name


@dataclass(frozen=True)
class TextSimilarity(Target):
    """The image-text similarity of phrase ``index`` among the phrases packed in ``tokens`` (an
    image-text model's own tokens, phrases joined as its ``tokenize`` joins them; the model is
    called as ``model(x, tokens)`` and returns N x phrases cosine similarities). With ``versus``,
    the difference "why this phrase rather than that one". Every phrase of one packed input
    shares one forward pass: a zero-shot list of prompts costs one pass, and a map per prompt one
    backward each."""

    tokens: tuple[int, ...]
    index: int = 0
    versus: int | None = None
    name: str = "phrase"

    def __post_init__(self):
        _check_tokens(self.tokens, "a phrase")

    def model_inputs(self):
        return (self.tokens,)

    def __call__(self, output):
        if not isinstance(output, torch.Tensor) or output.dim() != 2:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"a text target needs similarities of shape [N, phrases], got {shape}: "
                             "is the model an image-text model?")
        return output[:, self.index] - (output[:, self.versus] if self.versus is not None else 0)

    def check(self, num_outputs):
        for i in (self.index, self.versus):
            if i is not None and not 0 <= i < num_outputs:
                raise ValueError(f"phrase index {i} out of range: the input holds {num_outputs} phrase(s) "
                                 f"(0..{num_outputs - 1})")

    @property
    def label(self):
        return self.name


def _check_action(index: int, num_outputs: int) -> None:
    actions = num_outputs - 1
    if actions < 1:
        raise ValueError(f"an agent's output holds its action logits and then its value: [N, actions + 1]; "
                         f"this one has {num_outputs} column(s)")
    if not 0 <= index < actions:
        raise ValueError(f"action {index} out of range: the agent has {actions} actions (valid 0..{actions - 1}; "
                         f"its output's last column is the value)")


def _agent(output: torch.Tensor) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or output.dim() != 2 or output.shape[1] < 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"agent targets need an output of shape [N, actions + 1] (the action logits, then the "
                         f"value), got {shape}")
    return output


@dataclass(frozen=True)
class ActionLogit(Target):
    """The logit of action ``index`` of an actor-critic agent, whose output is ``[N, actions + 1]``:
    the action logits, then the value estimate (``model_zoo.agents`` wraps policies so)."""

    index: int
    name: str = ""

    def __call__(self, output):
        return _agent(output)[:, self.index]

    def check(self, num_outputs):
        _check_action(self.index, num_outputs)

    @property
    def label(self):
        return f"logit of {self.name or f'action {self.index}'}"


@dataclass(frozen=True)
class ActionProbability(Target):
    """pi(a | s): the softmax over the action logits (the value column left out) at ``index``."""

    index: int
    name: str = ""

    def __call__(self, output):
        return torch.softmax(_agent(output)[:, :-1], dim=1)[:, self.index]

    def check(self, num_outputs):
        _check_action(self.index, num_outputs)

    @property
    def label(self):
        return f"p({self.name or f'action {self.index}'})"


@dataclass(frozen=True)
class ActionContrast(Target):
    """Why action ``a`` rather than ``b``: the difference of their logits (equal to the log ratio
    of their probabilities, log pi(a|s) - log pi(b|s))."""

    a: int
    b: int
    names: tuple[str, str] = ("", "")

    def __call__(self, output):
        out = _agent(output)
        return out[:, self.a] - out[:, self.b]

    def check(self, num_outputs):
        _check_action(self.a, num_outputs)
        _check_action(self.b, num_outputs)

    @property
    def label(self):
        a, b = (n or f"action {k}" for n, k in zip(self.names, (self.a, self.b)))
        return f"{a} rather than {b}"


@dataclass(frozen=True)
class Value(Target):
    """V(s): the critic's estimate of the return from this frame (the output's last column)."""

    def __call__(self, output):
        return _agent(output)[:, -1]

    def check(self, num_outputs):
        if num_outputs < 2:
            _check_action(0, num_outputs)

    @property
    def label(self):
        return "value"


def model_inputs(targets) -> tuple[tuple[int, ...], ...]:
    """The token inputs shared by ``targets`` (one forward pass serves them all); targets that
    need other tokens than the rest are an error that says to explain them in separate calls."""
    found = {t.model_inputs() for t in targets if isinstance(t, Target) and t.model_inputs()}
    if len(found) > 1:
        raise ValueError("these targets need different token inputs (different captions or questions); "
                         "explain them in separate calls")
    return found.pop() if found else ()


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


# -- detection and segmentation ----------------------------------------------------------------

def _detections(output) -> list:
    if not (isinstance(output, (list, tuple)) and all(isinstance(d, dict) and {"boxes", "scores", "labels"} <= set(d)
                                                      for d in output)):
        raise ValueError(f"detection targets need a detector's output: one dict per image with 'boxes' (K x 4, "
                         f"x0 y0 x1 y1 pixels), 'scores' and 'labels' (torchvision's layout), got "
                         f"{type(output).__name__}")
    return list(output)


def match_detection(detections: dict, label: int, box, iou: float = 0.5) -> tuple[int | None, float]:
    """The detection of class ``label`` that overlaps ``box`` (x0, y0, x1, y1) most, and that
    overlap: ``(index, IoU)``; ``(None, best IoU)`` when none reaches ``iou``. The IoU is
    torchvision's ``box_iou``."""
    from torchvision.ops import box_iou
    same = (detections["labels"] == label).nonzero().flatten()
    if same.numel() == 0:
        return None, 0.0
    ref = torch.as_tensor([list(box)], dtype=detections["boxes"].dtype, device=detections["boxes"].device)
    overlaps = box_iou(ref, detections["boxes"][same].detach())[0]
    best = int(overlaps.argmax())
    value = float(overlaps[best])
    return (int(same[best]) if value >= iou else None), value


@dataclass(frozen=True)
class DetectionScore(Target):
    """The score of a detector's detection of class ``class_index`` whose box matches the reference
    ``box`` (x0, y0, x1, y1 in input pixels) best, with IoU >= ``iou``: the same object is explained
    on a perturbed image, where the boxes move a little. The output is torchvision's: one dict
    per image with ``boxes``, ``scores``, ``labels``.

    On the explained image a missing match is an error that says so (``check_output``); on a
    perturbed image (Score-CAM, occlusion, RISE) it scores 0. ``similarity`` is D-RISE's
    (Petsiuk et al., CVPR 2021): the largest IoU x score over the detections of class ``class_index``,
    D-RISE's IoU x class-cosine x objectness for a detector that returns one label and one
    score per box (the cosine of one-hot class vectors is 1 for the same label, 0 otherwise)."""

    class_index: int
    box: tuple[float, float, float, float]
    iou: float = 0.5
    name: str = ""

    def __post_init__(self):
        box = tuple(float(v) for v in self.box)
        if len(box) != 4 or not (box[2] > box[0] and box[3] > box[1]):
            raise ValueError(f"a reference box is x0, y0, x1, y1 with x1 > x0 and y1 > y0, got {self.box!r}")
        object.__setattr__(self, "box", box)
        if not 0 < self.iou <= 1:
            raise ValueError(f"the IoU threshold must lie in (0, 1], got {self.iou}")

    def __call__(self, output):
        rows = []
        for d in _detections(output):
            k, _ = match_detection(d, self.class_index, self.box, self.iou)
            rows.append(d["scores"][k] if k is not None else d["scores"].sum() * 0.0)
        return torch.stack(rows)

    def similarity(self, output):
        from torchvision.ops import box_iou
        rows = []
        for d in _detections(output):
            same = d["labels"] == self.class_index
            if not bool(same.any()):
                rows.append(d["scores"].sum() * 0.0)
                continue
            ref = torch.as_tensor([self.box], dtype=d["boxes"].dtype, device=d["boxes"].device)
            rows.append((box_iou(ref, d["boxes"][same])[0] * d["scores"][same]).max())
        return torch.stack(rows)

    def check_output(self, output):
        for i, d in enumerate(_detections(output)):
            k, best = match_detection(d, self.class_index, self.box, self.iou)
            if k is None:
                what = self.name or f"class {self.class_index}"
                box = ", ".join(f"{v:.0f}" for v in self.box)
                raise ValueError(f"no detection of {what} matches the box ({box}) with IoU >= {self.iou:g}"
                                 + (f" in image {i}" if len(output) > 1 else "")
                                 + (f": the best overlap of that class is {best:.2f}" if best > 0
                                    else ": the detector found no object of that class"))

    @property
    def label(self):
        box = ", ".join(f"{v:.0f}" for v in self.box)
        return f"{self.name or f'class {self.class_index}'} at ({box})"


@dataclass(frozen=True, eq=False)
class SegmentationRegion(Target):
    """A segmentation class's logits summed over a region: ``class_index`` of an ``[N, classes,
    H, W]`` output, summed over the pixels of ``mask`` (H x W bool: the predicted mask, or a
    region the user drew or picked; None: the whole image). Compared and hashed by content, so
    it can key caches."""

    class_index: int
    mask: object = None  # H x W bool numpy array or tensor, or None
    name: str = ""

    def __post_init__(self):
        if self.mask is not None:
            m = torch.as_tensor(np.asarray(self.mask)).bool()
            if m.dim() != 2:
                raise ValueError(f"a region is an H x W mask, got shape {tuple(m.shape)}")
            if not bool(m.any()):
                raise ValueError("the region is empty: pick or draw at least one pixel")
            object.__setattr__(self, "mask", m)

    def _key(self):
        m = None if self.mask is None else (tuple(self.mask.shape), self.mask.numpy().tobytes())
        return (self.class_index, m, self.name)

    def __eq__(self, other):
        return isinstance(other, SegmentationRegion) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __call__(self, output):
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"segmentation targets need an output of shape [N, classes, H, W], got {shape}")
        logits = output[:, self.class_index]
        if self.mask is None:
            return logits.sum(dim=(1, 2))
        return (logits * self.mask.to(logits.device, logits.dtype)).sum(dim=(1, 2))

    def check_output(self, output):
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            self(output)  # the shape error
        if not 0 <= self.class_index < output.shape[1]:
            raise ValueError(f"class index {self.class_index} out of range: the segmenter has {output.shape[1]} "
                             f"classes (valid 0..{output.shape[1] - 1})")
        if self.mask is not None and tuple(self.mask.shape) != tuple(output.shape[-2:]):
            raise ValueError(f"the region is {'x'.join(map(str, self.mask.shape))} but the segmenter's output is "
                             f"{'x'.join(map(str, output.shape[-2:]))}")

    def __repr__(self):
        where = "the whole image" if self.mask is None else f"{int(self.mask.sum())} pixels"
        return f"SegmentationRegion({self.name or f'class {self.class_index}'} over {where})"

    @property
    def label(self):
        return f"{self.name or f'class {self.class_index}'} over {'the image' if self.mask is None else 'the region'}"
