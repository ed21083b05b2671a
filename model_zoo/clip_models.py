"""CLIP models for users with weights (issue 29): OpenAI's ViT-B/32 and ResNet-50 CLIP through the
optional package ``open_clip`` (``pip install open_clip_torch``; the dev requirements install it),
with the weights download and cache that the classifiers have (``$TORCH_HOME/hub/checkpoints``,
read with ``weights_only=True``: the open_clip state dicts that the timm organisation publishes on
the Hugging Face hub, not OpenAI's TorchScript archives, which would have to be unpickled).

:class:`OpenCLIP` makes a CLIP an image-text model of the studio (``explainers.text``):
``tokenize(phrases)`` packs the phrases' BPE tokens, each from its start token to its end token,
into one input, and ``forward(x, tokens)`` gives the cosine similarity of each image with each
phrase (N x phrases), so :class:`explainers.TextSimilarity` explains any phrase.

Layers: Grad-CAM of the ResNet CLIP runs at ``clip.visual.layer4``, its last spatial layer (the
attention pooling after it mixes all positions into one vector). The ViT CLIP's blocks give
tokens (N x 50 x 768 at 224 px: a class token and a 7 x 7 grid), read by the studio's token
layout rule (``explainers.layouts``); its default layer is the last block's input to the final
norm, ``clip.visual.transformer.resblocks.11``, and LeGrad (``explainers`` method ``legrad``) reads
the attention of every block from the chosen one to the last.

The models are built with QuickGELU, as OpenAI trained them (open_clip's pretrained config says
so); a build with plain GELU would load the same weights and give other similarities.
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .preprocess import Preprocess
from .registry import ModelSpec, register

__all__ = ["OpenCLIP", "ARCHITECTURES", "PROMPTS", "available"]

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
_HUB = "https://huggingface.co/timm/{repo}/resolve/main/open_clip_pytorch_model.bin"
# id -> (open_clip name, title, default layer, the weights' hub repository)
ARCHITECTURES = {
    "clip-vit-b-32": ("ViT-B-32", "CLIP ViT-B/32 (OpenAI)", "clip.visual.transformer.resblocks.11",
                      "vit_base_patch32_clip_224.openai"),
    "clip-rn50": ("RN50", "CLIP ResNet-50 (OpenAI)", "clip.visual.layer4", "resnet50_clip.openai"),
}
# the default zero-shot prompts (the Text prompt page and the CLI start from these)
PROMPTS = tuple(f"a photo of a {c}" for c in ("cat", "dog", "cup of coffee", "bird", "car", "person", "rocket",
                                               "astronaut"))
_DROPPED = ("input_resolution", "context_length", "vocab_size")  # OpenAI's bookkeeping, not weights


def _no_random_init_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("No pretrained weights loaded")


def available() -> bool:
    try:
        import open_clip  # noqa: F401
    except ImportError:
        return False
    return True


class OpenCLIP(nn.Module):
    """An open_clip CLIP as an image-text model of the studio (see the module's docstring)."""

    def __init__(self, name: str):
        super().__init__()
        try:
            import open_clip
        except ImportError:
            raise ImportError(f"{name} CLIP needs the optional package open_clip: pip install open_clip_torch "
                              "(requirements-dev.txt installs it)") from None
        root = logging.getLogger()
        root.addFilter(_no_random_init_warning)  # the studio loads the weights itself, right after
        try:
            self.clip = open_clip.create_model(name, pretrained=None, force_quick_gelu=True)
        finally:
            root.removeFilter(_no_random_init_warning)
        self._tokenizer = open_clip.get_tokenizer(name)
        self.context_length = int(self._tokenizer.context_length)
        self.sot, self.eot = (int(t) for t in self._tokenizer(["x"])[0, [0, 2]])  # start, "x", end

    def image_tower(self) -> nn.Module:
        return self.clip.visual

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale

    def tokenize(self, phrases) -> tuple[int, ...]:
        """The phrases' tokens, start to end token each (a phrase beyond the context of 77 tokens
        is cut, its end token kept, as open_clip cuts it), packed into one input."""
        phrases = [str(p) for p in phrases]
        if not phrases:
            raise ValueError("no phrase given")
        out: list[int] = []
        for row in self._tokenizer(phrases).tolist():
            out += row[:row.index(self.eot) + 1]
        return tuple(out)

    def _split(self, row: list[int]) -> torch.Tensor:
        """K x context ids from one packed input."""
        phrases, current = [], []
        for t in row:
            current.append(t)
            if t == self.eot:
                phrases.append(current)
                current = []
        if current or not phrases:
            raise ValueError("a packed CLIP input must end each phrase with the end token (use model.tokenize)")
        ids = torch.zeros(len(phrases), self.context_length, dtype=torch.long)
        for i, p in enumerate(phrases):
            ids[i, :len(p)] = torch.tensor(p[:self.context_length])
        return ids

    def _similarities(self, img: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        img = F.normalize(img, dim=-1)
        rows, inverse = torch.unique(tokens, dim=0, return_inverse=True)
        texts = [F.normalize(self.clip.encode_text(self._split(r.tolist()).to(img.device)), dim=-1) for r in rows]
        if len({t.shape[0] for t in texts}) != 1:
            raise ValueError("every image's packed input must hold the same number of phrases")
        return torch.einsum("nd,nkd->nk", img, torch.stack(texts)[inverse])

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self._similarities(self.clip.encode_image(x), tokens)

    def readout(self, block_tokens: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The similarities read from a ViT block's output tokens as if no block followed (the
        final norm, the class token, the projection): LeGrad's per-block score."""
        v = self.clip.visual
        if not hasattr(v, "ln_post") or getattr(v, "attn_pool", None) is not None or getattr(v, "pool_type", "tok") != "tok":
            raise ValueError("LeGrad reads the CLIP ViT's class token; this visual tower has no such readout (the "
                             "ResNet CLIP: use Grad-CAM at clip.visual.layer4)")
        return self._similarities(v.ln_post(block_tokens)[:, 0] @ v.proj, tokens)


def _state(model: nn.Module, state: dict) -> None:
    """An open_clip state dict (or OpenAI's, with its bookkeeping) under the wrapper's ``clip.``."""
    for key in list(state):
        value = state.pop(key)
        if key not in _DROPPED:
            state[key if key.startswith("clip.") else f"clip.{key}"] = value


def _checkpoint_path(repo: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{repo}.bin"


for _id, (_name, _title, _layer, _repo) in ARCHITECTURES.items():
    register(ModelSpec(
        id=_id, title=_title, family="clip", build=(lambda _n, name=_name: OpenCLIP(name)), categories=PROMPTS,
        preprocess=Preprocess(resize=224, crop=224, mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic"),
        default_layer=_layer, weights_file=partial(_checkpoint_path, _repo), weights_url=_HUB.format(repo=_repo),
        prepare=_state, task="text",
        description=f"{_title}: an image-text model (open_clip, QuickGELU); type any phrase. Needs open_clip_torch "
                    "and its weights from the Hugging Face hub"))
