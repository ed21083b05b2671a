"""The text target (issue 29) checked by hand on a tiny two-tower model: its Grad-CAM is the one
computed from the gradient of the cosine similarity itself; contrasts, word contributions and
zero-shot probabilities are the identities they claim; every registered method takes it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explainers
from explainers import TextSimilarity
from explainers import text as T

VOCAB = {"red": 1, "blue": 2, "circle": 3, "square": 4, "big": 5}
SEP = 9


class TwoTower(nn.Module):
    """Image: conv -> mean over positions -> linear; text: mean of word embeddings; the cosine."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.proj = nn.Linear(6, 5)
        self.embed = nn.Embedding(10, 5)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def tokenize(self, phrases):
        out = []
        for k, p in enumerate(phrases):
            out += ([SEP] if k else []) + [VOCAB[w] for w in p.split()]
        return tuple(out)

    def image_embedding(self, x):
        return self.proj(torch.relu(self.conv(x)).mean((2, 3)))

    def text_embedding(self, row):
        phrases, cur = [], []
        for t in row.tolist() + [SEP]:
            if t == SEP:
                phrases.append(self.embed(torch.tensor(cur)).mean(0))
                cur = []
            else:
                cur.append(t)
        return torch.stack(phrases)

    def forward(self, x, tokens):
        img = F.normalize(self.image_embedding(x), dim=-1)
        text = torch.stack([F.normalize(self.text_embedding(r), dim=-1) for r in tokens])
        return torch.einsum("nd,nkd->nk", img, text)


@pytest.fixture
def model():
    return TwoTower().eval()


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(1, 3, 8, 8)


def _hand_gradcam(model, x, phrase):
    """Grad-CAM by hand: the gradient of F.cosine_similarity(image embedding, text embedding)
    at the conv's (ReLU'd here: the layer named is the conv, before the ReLU) output."""
    a = model.conv(x).detach().requires_grad_(True)
    img = model.proj(torch.relu(a).mean((2, 3)))
    text = model.text_embedding(torch.tensor(model.tokenize([phrase])))
    cos = F.cosine_similarity(img, text, dim=-1).sum()
    (g,) = torch.autograd.grad(cos, a)
    alpha = g.mean((2, 3), keepdim=True)
    return torch.relu((alpha * a).sum(1))[0].detach().numpy(), float(cos.detach())


def test_the_text_targets_gradcam_is_that_of_the_cosine_similarity(model, x):
    tokens = model.tokenize(["red circle", "blue square", "big"])
    cap = explainers.Capture(model, x, layer="conv", inputs=(tokens,))
    for j, phrase in enumerate(["red circle", "blue square", "big"]):
        e = cap.explain("gradcam", TextSimilarity(tokens, j))
        want, cos = _hand_gradcam(model, x, phrase)
        assert float(e.score) == pytest.approx(cos, abs=1e-6)
        assert e.layer_map == pytest.approx(want, abs=1e-6)
        assert np.abs(want).max() > 0  # not an empty map


def test_a_contrast_is_the_difference_of_two_similarities(model, x):
    tokens = model.tokenize(["red circle", "blue square"])
    cap = explainers.Capture(model, x, layer="conv", inputs=(tokens,))
    a, b, ab = cap.explain("gradcam", [TextSimilarity(tokens, 0), TextSimilarity(tokens, 1),
                                        TextSimilarity(tokens, 0, versus=1)])
    assert float(ab.score) == pytest.approx(float(a.score - b.score), abs=1e-6)
    assert ab.weights == pytest.approx(a.weights - b.weights, abs=1e-6)  # Grad-CAM's weights are linear in the score


def test_a_phrase_index_out_of_range_is_named(model, x):
    tokens = model.tokenize(["red circle", "blue square"])
    cap = explainers.Capture(model, x, layer="conv", inputs=(tokens,))
    with pytest.raises(ValueError, match=r"phrase index 2 out of range: the input holds 2 phrase"):
        cap.explain("gradcam", TextSimilarity(tokens, 2))
    with pytest.raises(ValueError, match="image-text model"):
        TextSimilarity(tokens, 0)(torch.zeros(1, 2, 3))


def test_word_contributions_and_their_maps_are_leave_one_out_differences(model, x):
    got = T.word_contributions(model, x, "big red circle")
    sims = T.similarities(model, x, ["big red circle", "red circle", "big circle", "big red"])[0]
    assert [w.word for w in got] == ["big", "red", "circle"]
    assert [w.contribution for w in got] == pytest.approx([sims[0] - sims[1], sims[0] - sims[2], sims[0] - sims[3]])
    targets = T.word_targets(model, "big red circle")
    cap = explainers.Capture(model, x, layer="conv", inputs=(targets[0].tokens,))
    maps = cap.explain("gradcam", targets)
    assert [float(m.score) for m in maps] == pytest.approx([w.contribution for w in got], abs=1e-6)
    assert T.word_contributions(model, x, "red")[0].contribution == pytest.approx(
        float(T.similarities(model, x, ["red"])[0, 0]))


def test_zero_shot_is_the_softmax_of_the_scaled_similarities(model, x):
    prompts = ["red circle", "blue square", "big"]
    p = T.zero_shot(model, x, prompts)
    s = T.similarities(model, x, prompts)
    want = torch.softmax(torch.tensor(s) * float(np.exp(2.0)), 1).numpy()
    assert p == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="no tokenize"):
        T.zero_shot(nn.Conv2d(3, 3, 1), x, prompts)


QUICK = {"rise": {"masks": 40, "cell": 4}, "smoothgrad": {"samples": 3}, "integrated_gradients": {"steps": 4}}


def test_every_registered_method_takes_the_text_target(model, x):
    tokens = model.tokenize(["red circle", "blue square"])
    for method in explainers.method_names(model=model, classes=False):
        spec = explainers.get_method(method)
        layer = "conv" if spec.needs_layer or spec.wraps else None
        try:
            e = explainers.explain(model, x, method=method, layer=layer, target=TextSimilarity(tokens, 1),
                                   **QUICK.get(method, {}))
        except ValueError as err:
            raise AssertionError(method) from err
        assert e.attribution.shape[-2:] == (8, 8), method
        assert np.isfinite(e.attribution).all(), method
