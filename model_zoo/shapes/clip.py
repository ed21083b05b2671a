"""``shapes-clip``: a small contrastive image-text model of the shapes world, and the figures on
its card.

* The image tower is the shapes trunk (``layer3``: 128 x 16 x 16 at 64 px), average-pooled and
  projected to a 64-d embedding; its trunk starts from ``shapes-captioner``'s (as CLIP-style
  models start from pretrained towers), which has learned colours.
* The text tower reads a phrase (``phrases.PHRASE_WORDS``) with an LSTM, each phrase alone (no
  padding steps); its last state, projected, is the phrase's embedding.
* ``forward(x, tokens)`` gives the cosine similarity of each image with each phrase of a packed
  token input (phrases joined by ``<sep>``): ``N x phrases``. One forward pass thus scores every
  prompt of a zero-shot list, and a text target picks its phrase's column.
* Training uses the sigmoid loss of SigLIP (Zhai et al., 2023) with exact labels: every image of a
  batch against every phrase of it, labelled by whether the phrase is true of the scene
  (``phrases.true_keys``), so a phrase true of two scenes of a batch is no false negative. Half the
  phrases are one word away from a true one (``phrases.negative_phrase``): a blue circle beside a
  red square teaches which colour goes with which shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import language as L
from . import phrases as P
from .multimodal import HELDOUT_OFFSET, _Trunk, images_tensor
from .world import CLASSES

__all__ = ["ShapesCLIP", "ClipRecipe", "CLIP_RECIPE", "CLIP_LAYER", "SHAPE_PROMPTS", "zero_shot_accuracy",
           "retrieval", "HELDOUT_OFFSET"]

CLIP_LAYER = "layer3"
SHAPE_PROMPTS = tuple(f"a {c}" for c in CLASSES)


class ShapesCLIP(_Trunk):
    def __init__(self, words: int = len(P.PHRASE_WORDS), width: int = 16, dim: int = 64, embed: int = 32,
                 hidden: int = 128):
        super().__init__(width)
        self.image = nn.Linear(self.features, dim)
        self.embed = nn.Embedding(words, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.text = nn.Linear(hidden, dim)
        # the sigmoid loss's temperature (log) and bias; zero-shot probabilities use the temperature
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-5.0))

    # -- the towers
    def image_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-length image embeddings, N x dim."""
        return F.normalize(self.image(self.encode(x)), dim=-1)

    def text_embedding(self, phrases: list[list[int]]) -> torch.Tensor:
        """Unit-length embeddings of phrases given as token ids, K x dim. Each phrase is read
        alone (a packed sequence: no padding steps), so its embedding does not depend on the
        other phrases it is given with."""
        lengths = torch.tensor([len(p) for p in phrases])
        ids = torch.zeros(len(phrases), int(lengths.max()), dtype=torch.long, device=self.embed.weight.device)
        for i, p in enumerate(phrases):
            ids[i, :len(p)] = torch.tensor(p)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return F.normalize(self.text(h[-1]), dim=-1)

    def tokenize(self, phrases) -> tuple[int, ...]:
        """Phrases (strings) as one packed token input (``phrases.encode_phrases``)."""
        return P.encode_phrases(phrases)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cosine similarities, N x phrases, of each image with the phrases packed in ``tokens``
        (N x T, one row per image: rows may differ, but must hold as many phrases)."""
        img = self.image_embedding(x)
        rows, inverse = torch.unique(tokens, dim=0, return_inverse=True)
        texts = [self.text_embedding(P.split_packed(r.tolist())) for r in rows]
        if len({t.shape[0] for t in texts}) != 1:
            raise ValueError("every image's packed input must hold the same number of phrases")
        text = torch.stack(texts)[inverse]  # N x K x dim
        return torch.einsum("nd,nkd->nk", img, text)


@dataclass(frozen=True)
class ClipRecipe:
    id: str = "shapes-clip"
    title: str = "Shapes CLIP (image-text)"
    n_single: int = 4000
    n_pair: int = 12000
    epochs: int = 8
    seed: int = 0
    lr: float = 3e-3
    batch: int = 128
    trunk_from: str | None = "shapes-captioner"
    description: str = ("a contrastive image-text model of the shapes world: the shapes trunk and an LSTM phrase "
                        "encoder; type a phrase and see where it finds it")


CLIP_RECIPE = ClipRecipe()


def _similarities(model, scenes, phrases, batch: int = 256) -> torch.Tensor:
    """len(scenes) x len(phrases) cosine similarities (phrases as strings)."""
    tokens = [P.encode_phrases([p]) for p in phrases]
    with torch.no_grad():
        text = model.text_embedding([list(t) for t in tokens])
        img = torch.cat([model.image_embedding(images_tensor(scenes[i:i + batch]))
                         for i in range(0, len(scenes), batch)])
    return img @ text.T


def zero_shot_accuracy(model, seed: int, n: int) -> float:
    """Share of ``n`` one-object scenes whose most similar of the eight prompts "a <shape>" is
    their shape."""
    scenes = [L.make_described(seed, i, "single") for i in range(n)]
    sims = _similarities(model, scenes, SHAPE_PROMPTS)
    truth = torch.tensor([CLASSES.index(s.objects[0].name) for s in scenes])
    return float((sims.argmax(1) == truth).float().mean())


def retrieval(model, seed: int, n: int) -> dict:
    """Caption retrieval among ``n`` two-object scenes and their captions: the share of images
    whose most similar caption is their own, and of captions whose most similar image is theirs."""
    scenes = [L.make_described(seed, i, "pair") for i in range(n)]
    sims = _similarities(model, scenes, [s.caption for s in scenes])
    own = torch.arange(n)
    return {"image_to_caption_r1": float((sims.argmax(1) == own).float().mean()),
            "caption_to_image_r1": float((sims.argmax(0) == own).float().mean()), "retrieval_scenes": n}


def heldout_figures(model, seed: int, n: int = 500) -> dict:
    model.eval()
    return {"heldout_seed": seed, "zero_shot_shape_accuracy": zero_shot_accuracy(model, seed, n),
            "zero_shot_scenes": n, **retrieval(model, seed, 200)}


def batch_labels(scenes, phrases) -> torch.Tensor:
    """len(scenes) x len(phrases): 1 where the phrase is true of the scene."""
    keys = [P.true_keys(s) for s in scenes]
    return torch.tensor([[float(p.key in k) for p in phrases] for k in keys])


def sample_batch(scenes, rng: np.random.Generator) -> list:
    """One true and one near-miss phrase per scene."""
    return [P.sample_phrase(s, rng) for s in scenes] + [P.negative_phrase(s, rng) for s in scenes]
