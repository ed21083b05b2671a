"""Text prompts on image-text models: similarities, zero-shot classification and what each word
of a phrase adds.

An image-text model here is an ``nn.Module`` with ``tokenize(phrases) -> tuple[int, ...]`` (the
phrases packed into one token input) and ``forward(x, tokens) -> N x phrases`` cosine
similarities; ``logit_scale`` (a log temperature, as CLIP keeps it) turns similarities into
zero-shot probabilities. ``shapes-clip`` and the studio's open_clip wrapper are such models. Maps
come from :class:`explainers.TextSimilarity` through :class:`explainers.Capture`; these helpers
give the numbers beside them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .targets import TextSimilarity

__all__ = ["similarities", "zero_shot", "probabilities", "temperature", "WordContribution", "word_variants", "word_contributions", "word_targets",
           "is_text_model"]


def is_text_model(model: nn.Module) -> bool:
    return callable(getattr(model, "tokenize", None))


def _check(model):
    if not is_text_model(model):
        raise ValueError("not an image-text model: it has no tokenize(phrases) method (a classifier explains "
                         "classes, not phrases)")


@torch.no_grad()
def similarities(model: nn.Module, x: torch.Tensor, phrases) -> np.ndarray:
    """N x len(phrases) cosine similarities, from one forward pass."""
    _check(model)
    tokens = torch.tensor([model.tokenize(list(phrases))], dtype=torch.long, device=x.device)
    return model(x, tokens.expand(x.shape[0], -1)).float().cpu().numpy()


def temperature(model: nn.Module) -> float:
    """The model's zero-shot temperature, ``exp(logit_scale)`` (1 without one)."""
    return float(getattr(model, "logit_scale", torch.tensor(0.0)).detach().exp())


def probabilities(model: nn.Module, sims) -> np.ndarray:
    """Zero-shot probabilities from similarities already computed (N x prompts, or one row): the
    softmax of the similarities times :func:`temperature`."""
    z = temperature(model) * np.atleast_2d(np.asarray(sims, np.float64))
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def zero_shot(model: nn.Module, x: torch.Tensor, prompts) -> np.ndarray:
    """N x len(prompts) probabilities: the softmax of the similarities times the model's
    temperature (``exp(logit_scale)``), as CLIP classifies by prompts."""
    return probabilities(model, similarities(model, x, prompts))


@dataclass(frozen=True)
class WordContribution:
    word: str
    contribution: float  # similarity of the phrase minus that of the phrase without the word
    without: str  # the phrase without the word ("" for a one-word phrase)


def word_variants(phrase: str) -> list[str]:
    """The phrase, then the phrase without each of its words in turn (a one-word phrase: none)."""
    words = phrase.split()
    return [phrase] + ([" ".join(words[:i] + words[i + 1:]) for i in range(len(words))] if len(words) > 1 else [])


def word_contributions(model: nn.Module, x: torch.Tensor, phrase: str) -> list[WordContribution]:
    """Leave one word out: what each word adds to the phrase's similarity with the image ``x``
    (one image), all variants in one forward pass. A one-word phrase's word contributes its
    whole similarity. The map of a word's contribution is :class:`TextSimilarity` of the phrase
    (index 0) versus its variant without the word (index ``i + 1``), on the same packed input:
    ``TextSimilarity(model.tokenize(word_variants(phrase)), 0, versus=i + 1)``."""
    variants = word_variants(phrase)
    sims = similarities(model, x[:1], variants)[0]
    words = phrase.split()
    if len(words) == 1:
        return [WordContribution(words[0], float(sims[0]), "")]
    return [WordContribution(w, float(sims[0] - sims[i + 1]), variants[i + 1]) for i, w in enumerate(words)]


def word_targets(model: nn.Module, phrase: str) -> list[TextSimilarity]:
    """One contrast target per word (see :func:`word_contributions`); empty for a one-word phrase."""
    variants = word_variants(phrase)
    tokens = model.tokenize(variants)
    return [TextSimilarity(tokens, 0, versus=i + 1, name=f"'{w}' in '{phrase}'")
            for i, w in enumerate(phrase.split())] if len(variants) > 1 else []
