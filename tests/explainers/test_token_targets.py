"""Targets of models that take words beside the image: a caption's log-probability under teacher
forcing, one word of it, and a VQA answer; checked by hand on a tiny recurrent model."""
import numpy as np
import pytest
import torch
from torch import nn

import explainers
from tests.conftest import assert_maps_close


class TinyCaptioner(nn.Module):
    """conv -> ReLU (the layer) -> mean -> the LSTM's initial state; next-word logits."""

    def __init__(self, vocab=7, hidden=5):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.init = nn.Linear(4, 2 * hidden)
        self.embed = nn.Embedding(vocab, 3)
        self.lstm = nn.LSTM(3, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def state(self, x):
        h, c = torch.tanh(self.init(self.relu(self.conv(x)).mean(dim=(2, 3)))).chunk(2, 1)
        return h[None].contiguous(), c[None].contiguous()

    def forward(self, x, tokens):
        y, _ = self.lstm(self.embed(tokens), self.state(x))
        return self.out(y)


class TinyVQA(nn.Module):
    def __init__(self, words=6, answers=4):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.embed = nn.Embedding(words, 4)
        self.head = nn.Linear(4, answers)

    def forward(self, x, question):
        v = self.relu(self.conv(x)).mean(dim=(2, 3))
        return self.head(v * self.embed(question).mean(1))


@pytest.fixture
def captioner():
    torch.manual_seed(0)
    return TinyCaptioner().eval()


CAPTION = (1, 4, 2, 5, 3)  # <start>, three words, <end>


def _step_by_step(model, x, tokens):
    """log p of each next word, feeding one word at a time into the LSTM by hand."""
    h, c = model.state(x)
    out = []
    for t in range(len(tokens) - 1):
        y, (h, c) = model.lstm(model.embed(torch.tensor([[tokens[t]]])), (h, c))
        out.append(torch.log_softmax(model.out(y[0, -1]), -1)[tokens[t + 1]])
    return torch.stack(out)


def test_caption_log_probability_is_the_sum_of_its_words_step_by_step(captioner):
    x = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    by_hand = _step_by_step(captioner, x, CAPTION).detach()
    whole = explainers.explain(captioner, x, layer="relu", target=explainers.CaptionLogProb(CAPTION))
    assert whole.score == pytest.approx(float(by_hand.sum()), rel=1e-6)
    words = explainers.explain(captioner, x, layer="relu",
                               target=[explainers.WordLogProb(CAPTION, i) for i in range(4)])
    np.testing.assert_allclose([w.score for w in words], by_hand.numpy(), rtol=1e-6)
    # Grad-CAM of a word, by hand: gradient of the step-by-step log p at the layer
    acts = []

    def keep(module, inputs, output):
        output.retain_grad()
        acts.append(output)
    handle = captioner.relu.register_forward_hook(keep)
    try:
        _step_by_step(captioner, x, CAPTION)[2].backward()
    finally:
        handle.remove()
    a, g = acts[0][0].detach(), acts[0].grad[0]
    expected = torch.relu((g.mean(dim=(1, 2))[:, None, None] * a).sum(0)).numpy()
    np.testing.assert_allclose(words[2].layer_map, expected, rtol=1e-5, atol=1e-7)
    captioner.zero_grad()


def test_word_maps_share_one_forward_and_every_method_runs(captioner):
    x = torch.randn(1, 3, 6, 6)
    calls = []
    handle = captioner.conv.register_forward_hook(lambda *a: calls.append(1))
    capture = explainers.Capture(captioner, x, layer="relu", pixels=True, inputs=(CAPTION[:-1],))
    for method in ("gradcam", "guided_backprop", "guided_gradcam", "gradcam_pp"):
        capture.explain(method, [explainers.WordLogProb(CAPTION, i) for i in range(4)])
    handle.remove()
    assert len(calls) == 1
    for method in explainers.method_names(model=captioner, classes=False):  # the forward-heavy ones re-run the model with the same words
        options = {"patch": 2, "stride": 2} if method == "occlusion" else {}
        e = explainers.explain(captioner, x, method=method, layer="relu", target=explainers.CaptionLogProb(CAPTION),
                               **options)
        assert np.isfinite(e.attribution).all(), method


def test_answer_and_contrast_targets():
    torch.manual_seed(0)
    vqa = TinyVQA().eval()
    x = torch.randn(1, 3, 6, 6)
    q = (1, 3, 5)
    with torch.no_grad():
        logits = vqa(x, torch.tensor([q]))[0]
    e = explainers.explain(vqa, x, layer="relu", target=explainers.Answer(q, 2))
    assert e.score == pytest.approx(float(logits[2]), rel=1e-6)
    why = explainers.explain(vqa, x, layer="relu", target=explainers.Answer(q, 2, versus=0))
    assert why.score == pytest.approx(float(logits[2] - logits[0]), rel=1e-6)
    a = explainers.explain(vqa, x, layer="relu", target=explainers.Answer(q, 0))
    assert_maps_close(why.weights, e.weights - a.weights, rel=1e-5)  # Grad-CAM weights are linear in the score


def test_token_input_mistakes_are_named(captioner):
    x = torch.randn(1, 3, 6, 6)
    with pytest.raises(ValueError, match="word position 4 out of range: the caption has 4 predicted words"):
        explainers.WordLogProb(CAPTION, 4)
    with pytest.raises(ValueError, match="a caption must be a tuple of at least 2 token id"):
        explainers.CaptionLogProb((1,))
    with pytest.raises(ValueError, match="token id 9 out of range: the vocabulary has 7 words"):
        explainers.explain(captioner, x, layer="relu", target=explainers.CaptionLogProb((1, 4, 9)))
    with pytest.raises(ValueError, match="could not read the token inputs .* a token id is beyond its vocabulary"):
        explainers.explain(captioner, x, layer="relu", target=explainers.CaptionLogProb((1, 9, 3)))
    with pytest.raises(ValueError, match="different token inputs"):
        explainers.explain(captioner, x, layer="relu",
                           target=[explainers.CaptionLogProb(CAPTION), explainers.CaptionLogProb((1, 4, 3))])
    capture = explainers.Capture(captioner, x, layer="relu", inputs=(CAPTION[:-1],))
    with pytest.raises(ValueError, match="other token inputs than the target needs"):
        capture.explain("gradcam", explainers.CaptionLogProb((1, 4, 3)))
    with pytest.raises(ValueError, match="needs its layer named"):
        explainers.explain(captioner, x, target=explainers.CaptionLogProb(CAPTION))
