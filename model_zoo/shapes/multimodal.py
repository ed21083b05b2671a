"""Captioning and visual question answering in the shapes world: two small models without
attention (the paper's point: Grad-CAM finds where they look although nothing in them says where),
their training (seeded, on the CPU, minutes) and the figures on their cards.

* ``ShapesCaptioner``: the classifiers' residual trunk (``layer3``: 128 x 16 x 16), globally
  average-pooled (as ``shapes-resnet``; a 4 x 4 grid instead gave better captions but word maps
  that found the named object only half the time: a grid lets the decoder read an object's place
  from which cell it is in, so a word's gradient spreads over both objects); linear maps of it give the initial state of an LSTM decoder and an image vector
  fed beside every word (Show and Tell without attention: no weights over positions); ``forward(x, tokens)`` gives
  the next-word logits under teacher forcing (N x T x words); ``generate`` decodes greedily or by
  beam search. In training, one linear layer on the pooled features also predicts which concepts
  the caption names (its colours, shapes and colour-shape pairs: image-level labels read off the
  caption, as visual-concept detectors in captioning are trained; ``concept_loss``), and is dropped
  afterwards: the features then hold a channel per colour-shape pair that is on where that object
  is, as a classifier's do for its classes, and a colour word's map finds its object (89% of
  colour words against 64% without it; the card has the figures).
* ``ShapesVQA``: the same trunk and pooling, an LSTM question encoder (questions left-padded, so its
  last state has read the whole question), the two fused by an element-wise product, and one
  linear layer from the fused vector to the answers; ``forward(x, question)`` gives N x answers
  logits. The answer is thus bilinear in the image and question vectors: the question picks which
  components of the image vector count for each answer. A two-layer ReLU classifier in its place
  answered a little better (99.6% of held-out questions against 98.9%), but its answers' maps found
  the object asked about 85% of the time against 95% (README, "Captioning and visual question
  answering"): its hidden units let an answer's gradient run through the other object's features.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import language as L
from .nets import ResidualBlock, _conv_bn_relu

__all__ = ["ShapesCaptioner", "ShapesVQA", "MultiRecipe", "MULTI_RECIPES", "images_tensor",
           "caption_batch", "question_batch", "HELDOUT_OFFSET"]

HELDOUT_OFFSET = 10_000
MEAN, STD = 0.5, 0.25


class _Trunk(nn.Module):
    def __init__(self, width: int = 16, grid: int = 1):
        super().__init__()
        w = width
        self.stem = nn.Sequential(*_conv_bn_relu(3, w))
        self.layer1 = ResidualBlock(w, 2 * w, 2)
        self.layer2 = ResidualBlock(2 * w, 4 * w, 2)
        self.layer3 = ResidualBlock(4 * w, 8 * w, 1)
        self.grid = nn.AdaptiveAvgPool2d(grid)
        self.features = 8 * w * grid * grid

    def encode(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.grid(x).flatten(1)


class ShapesCaptioner(_Trunk):
    def __init__(self, vocab: int = len(L.WORDS), width: int = 16, hidden: int = 160, embed: int = 32,
                 image: int = 64):
        super().__init__(width)
        self.hidden = hidden
        self.init = nn.Linear(self.features, 2 * hidden)
        self.image = nn.Linear(self.features, image)
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed + image, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def _start(self, x):
        """(the LSTM's initial state, the image vector given beside every word)."""
        return self._start_from(self.encode(x))

    def _start_from(self, f):
        h, c = torch.tanh(self.init(f)).chunk(2, dim=1)
        return (h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()), torch.tanh(self.image(f))

    def _step_inputs(self, tokens, v):
        return torch.cat([self.embed(tokens), v.unsqueeze(1).expand(-1, tokens.shape[1], -1)], dim=2)

    def forward(self, x, tokens):
        """Next-word logits (N x T x words) for the input words ``tokens`` (N x T)."""
        return self.decode(self.encode(x), tokens)

    def decode(self, f, tokens):
        """:meth:`forward` from the pooled features ``f`` (training also reads them)."""
        state, v = self._start_from(f)
        y, _ = self.lstm(self._step_inputs(tokens, v), state)
        return self.out(y)

    @torch.no_grad()
    def generate(self, x, max_len: int = 14, beam: int = 1) -> list[list[int]]:
        """Token ids (without <start>, up to and with <end>) per image: greedy (``beam=1``) or
        beam search keeping the ``beam`` most probable partial captions by summed log-probability."""
        start, end = L.WORDS.index(L.START), L.WORDS.index(L.END)
        out = []
        for i in range(x.shape[0]):
            state, v = self._start(x[i:i + 1])
            beams = [(0.0, [start], state)]
            done = []
            for _ in range(max_len):
                grown = []
                for score, seq, (h, c) in beams:
                    y, (h2, c2) = self.lstm(self._step_inputs(torch.tensor([[seq[-1]]]), v), (h, c))
                    logp = torch.log_softmax(self.out(y[0, -1]), -1)
                    top = logp.topk(beam)
                    for lp, t in zip(top.values.tolist(), top.indices.tolist()):
                        grown.append((score + lp, seq + [t], (h2, c2)))
                grown.sort(key=lambda b: -b[0])
                beams = []
                for b in grown:
                    (done if b[1][-1] == end else beams).append(b)
                    if len(beams) == beam:
                        break
                if not beams or (done and max(d[0] for d in done) >= beams[0][0]):
                    break
            best = max(done or beams, key=lambda b: b[0])
            out.append(best[1][1:])
        return out


class ShapesVQA(_Trunk):
    def __init__(self, answers: int = len(L.ANSWERS), words: int = len(L.QUESTION_WORDS), width: int = 16,
                 hidden: int = 128, embed: int = 32, fused: int = 256):
        super().__init__(width)
        self.image = nn.Linear(self.features, fused)
        self.embed = nn.Embedding(words, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.question = nn.Linear(hidden, fused)
        self.classifier = nn.Linear(fused, answers)  # one layer: see the module's docstring

    def image_vector(self, x):
        return self.vector(self.encode(x))

    def vector(self, f):
        """The image vector from the pooled features ``f`` (training also reads them)."""
        return torch.tanh(self.image(f))

    def answer(self, v, question):
        _, (h, _) = self.lstm(self.embed(question))
        return self.classifier(v * torch.tanh(self.question(h[-1])))

    def forward(self, x, question):
        """Answer logits (N x answers) for left-padded question tokens (N x T)."""
        return self.answer(self.image_vector(x), question)


# ----------------------------------------------------------------------------- data


def images_tensor(scenes) -> torch.Tensor:
    arr = np.stack([s.image for s in scenes]).astype(np.float32) / 255.0
    return (torch.from_numpy(arr).permute(0, 3, 1, 2) - MEAN) / STD


def caption_batch(captions: list[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), right-padded with <pad> (0): inputs drop the last token, targets the first."""
    t = max(len(c) for c in captions) - 1
    inputs = torch.zeros(len(captions), t, dtype=torch.long)
    targets = torch.zeros(len(captions), t, dtype=torch.long)
    for i, c in enumerate(captions):
        inputs[i, :len(c) - 1] = torch.tensor(c[:-1])
        targets[i, :len(c) - 1] = torch.tensor(c[1:])
    return inputs, targets


def question_batch(questions: list[tuple[int, ...]]) -> torch.Tensor:
    """Left-padded with <pad> (0)."""
    t = max(len(q) for q in questions)
    out = torch.zeros(len(questions), t, dtype=torch.long)
    for i, q in enumerate(questions):
        out[i, t - len(q):] = torch.tensor(q)
    return out


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class MultiRecipe:
    id: str
    title: str
    task: str  # "caption" | "vqa"
    n_single: int
    n_pair: int
    epochs: int
    seed: int = 0
    lr: float = 3e-3
    batch: int = 64
    # start the trunk from a shipped model (as the paper's models start from ImageNet weights): the
    # classifier for the captioner, the captioner (whose trunk has learned colours) for VQA
    trunk_from: str | None = "shapes-resnet"
    # weight of an auxiliary loss on the pooled image features: which concepts the caption names
    # (its colours, shapes and colour-shape pairs), read by one linear layer and dropped after training
    concept_loss: float = 0.0
    description: str = ""


MULTI_RECIPES = {r.id: r for r in (
    MultiRecipe("shapes-captioner", "Shapes captioner (CNN + LSTM)", "caption", 4000, 16000, 12, concept_loss=1.0,
                description="the shapes trunk and an LSTM decoder, no attention: captions with sizes, colours and "
                            "spatial words"),
    MultiRecipe("shapes-vqa", "Shapes VQA (CNN + LSTM)", "vqa", 4000, 12000, 8, trunk_from="shapes-captioner",
                description="the shapes trunk and an LSTM question encoder, fused; answers about shape, colour, "
                            "presence, count and position"),
)}


CONCEPTS = (*L.COLOURS, *L.CLASSES, *(f"{c} {k}" for c in L.COLOURS for k in L.CLASSES))


def concept_labels(scenes) -> torch.Tensor:
    """N x len(CONCEPTS): 1 where a scene's caption names the concept (a colour, a shape, a colour
    with its shape); image-level labels read off the captions, no positions."""
    out = torch.zeros(len(scenes), len(CONCEPTS))
    index = {c: i for i, c in enumerate(CONCEPTS)}
    for n, s in enumerate(scenes):
        for o in s.objects:
            for c in (o.colour, o.name, f"{o.colour} {o.name}"):
                out[n, index[c]] = 1.0
    return out


def build_multimodal(recipe: MultiRecipe) -> nn.Module:
    return ShapesCaptioner() if recipe.task == "caption" else ShapesVQA()


def _scenes(n_single, n_pair, seed):
    return [L.make_described(seed, i, "single") for i in range(n_single)] + \
           [L.make_described(seed, i, "pair") for i in range(n_pair)]


def exact_match(model, seed: int, n: int = 100) -> dict:
    """Greedy captions equal to the truth, for ``n`` one-object and ``n`` two-object held-out scenes
    (the first 200 held-out scenes are all one-object ones, which is what the cards measured before)."""
    out = {}
    for kind in ("single", "pair"):
        scenes = [L.make_described(seed, i, kind) for i in range(n)]
        generated = model.generate(images_tensor(scenes))
        out[kind] = sum(L.decode_caption(g) == s.caption for g, s in zip(generated, scenes)) / n
    return {"caption_exact_match_greedy": (out["single"] + out["pair"]) / 2,
            "caption_exact_match_single": out["single"], "caption_exact_match_pair": out["pair"],
            "exact_match_scenes": 2 * n}


def _evaluate(model, recipe: MultiRecipe, seed: int, n: int) -> dict:
    """Held-out figures for the card: scenes of a seed never used for training."""
    model.eval()
    scenes = _scenes(n // 4, n - n // 4, seed)
    x = images_tensor(scenes)
    if recipe.task == "caption":
        words, total = 0, 0
        with torch.no_grad():
            for i in range(0, len(scenes), 256):
                inp, tgt = caption_batch([L.encode_caption(L.caption_words(s)) for s in scenes[i:i + 256]])
                pred = model(x[i:i + 256], inp).argmax(-1)
                mask = tgt != 0
                words += int(((pred == tgt) & mask).sum())
                total += int(mask.sum())
        return {"heldout_seed": seed, "heldout_scenes": len(scenes),
                "word_accuracy_teacher_forced": words / total, **exact_match(model, seed)}
    per_type: dict[str, list[int]] = {}
    batch_q, batch_a, batch_i = [], [], []
    for i, s in enumerate(scenes):
        for q in L.questions(s):
            batch_q.append(L.encode_question(q.text))
            batch_a.append(L.ANSWERS.index(q.answer))
            batch_i.append(i)
            per_type.setdefault(q.kind, [])
    kinds = [q.kind for s in scenes for q in L.questions(s)]
    right = []
    with torch.no_grad():
        for j in range(0, len(batch_q), 512):
            idx = torch.tensor(batch_i[j:j + 512])
            pred = model(x[idx], question_batch(batch_q[j:j + 512])).argmax(1)
            right += (pred == torch.tensor(batch_a[j:j + 512])).tolist()
    for k, r in zip(kinds, right):
        per_type[k].append(int(r))
    return {"heldout_seed": seed, "heldout_scenes": len(scenes), "accuracy": float(np.mean(right)),
            "accuracy_per_question_type": {k: float(np.mean(v)) for k, v in per_type.items()},
            "questions": len(right)}
