"""Network Dissection on hand-built units whose concepts are known, and the textual explanation
built from a decision's alpha_k."""
import numpy as np
import pytest
import torch
from torch import nn

from explainers import dissect as D

PALETTE = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 1], [0, 1, 0]], np.float32)


class Detectors(nn.Module):
    """Unit 0 fires 0.5 exactly on pure red pixels, unit 1 on pure blue ones, unit 2 never."""

    def __init__(self):
        super().__init__()
        self.units = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.units.weight.copy_(torch.tensor([[1., -1, -1], [-1, -1, 1], [0, 0, 0]]).view(3, 3, 1, 1))
            self.units.bias.copy_(torch.tensor([-0.5, -0.5, -1.0]))
        self.relu = nn.ReLU()
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.relu(self.units(x)).mean((2, 3)))


def _images(n, seed=0, size=16):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(len(PALETTE), size=(n, size // 4, size // 4))
    img = PALETTE[blocks].repeat(4, 1).repeat(4, 2)  # n x size x size x 3
    return torch.from_numpy(img).permute(0, 3, 1, 2).contiguous(), img


def _probe(n, batch, seed=0):
    x, img = _images(n, seed)
    red = (img == [1, 0, 0]).all(-1)
    blue = (img == [0, 0, 1]).all(-1)
    bright = img.sum(-1) > 1.5
    for s in range(0, n, batch):
        yield x[s:s + batch], {"red": red[s:s + batch], "blue": blue[s:s + batch], "bright": bright[s:s + batch]}


def test_known_detectors_are_named_with_iou_one():
    model = Detectors()
    d = D.dissect(model, _probe(12, 5), "relu", ["red", "blue", "bright"], top=0.05)
    assert d.images == 12 and d.units == 3
    assert d.name(0) == "red" and d.iou[0, 0] == pytest.approx(1.0)
    assert d.name(1) == "blue" and d.iou[1, 1] == pytest.approx(1.0)
    assert d.name(2) is None and np.all(d.iou[2] == 0)  # a dead unit covers nothing
    # red pixels are bright too (1 + 0 + 0 is not > 1.5): the red unit's IoU with "bright" is 0
    assert d.iou[0, 2] == 0.0
    assert d.summary() == {"red": 1, "blue": 1, "unnamed": 1}


def test_batches_do_not_change_the_result_and_json_round_trips():
    model = Detectors()
    with torch.no_grad():  # a graded unit: the thresholds matter
        model.units.weight[2] = torch.tensor([0.3, 0.9, -0.2]).view(3, 1, 1)
        model.units.bias[2] = 0.0
    a = D.dissect(model, _probe(10, 3, seed=4), "relu", ["red", "blue", "bright"])
    b = D.dissect(model, _probe(10, 10, seed=4), "relu", ["red", "blue", "bright"])
    np.testing.assert_allclose(a.iou, b.iou)
    for values in (1, 3 * 16 * 16 * 4, 10 ** 9):  # the IoU pass one image, four, or the batch at a time
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(D, "IOU_CHUNK_VALUES", values)
            c = D.dissect(model, _probe(10, 10, seed=4), "relu", ["red", "blue", "bright"])
        np.testing.assert_array_equal(c.iou, b.iou)
        assert c.concept_pixels == b.concept_pixels
    back = D.Dissection.from_json(a.to_json())
    np.testing.assert_allclose(back.iou, a.iou, atol=1e-6)
    assert back.names() == a.names() and back.concepts == a.concepts


def test_iou_by_hand_for_a_graded_unit():
    model = Detectors()
    with torch.no_grad():
        model.units.weight[2] = torch.tensor([0.3, 0.9, -0.2]).view(3, 1, 1)
        model.units.bias[2] = 0.0
    x, img = _images(6, seed=2)
    bright = img.sum(-1) > 1.5
    a = torch.relu(model.units(x))[:, 2].detach().numpy()
    t = np.quantile(a, 1 - 0.1, method="higher")
    on = a >= t
    want = (on & bright).sum() / (on | bright).sum()
    d = D.dissect(model, [(x, {"bright": bright})], "relu", ["bright"], top=0.1)
    assert d.thresholds[2] == pytest.approx(t)
    assert d.iou[2, 0] == pytest.approx(want)


def test_model_comes_back_as_it_was_and_bad_input_is_named():
    model = Detectors().train()
    D.dissect(model, _probe(4, 4), "relu", ["red", "blue", "bright"])
    assert model.training and not any(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="unknown concept"):
        D.dissect(model, [(torch.zeros(1, 3, 16, 16), {"green": np.zeros((1, 16, 16), bool)})], "relu", ["red"])
    with pytest.raises(ValueError, match="masks of shape"):
        D.dissect(model, [(torch.zeros(1, 3, 16, 16), {"red": np.zeros((1, 8, 8), bool)})], "relu", ["red"])
    with pytest.raises(ValueError, match="empty"):
        D.dissect(model, [], "relu", ["red"])
    with pytest.raises(ValueError, match="layer 'nope' not found"):
        D.dissect(model, _probe(2, 2), "nope", ["red", "blue", "bright"])


def test_decision_units_and_sentence():
    d = D.dissect(Detectors(), _probe(12, 6), "relu", ["red", "blue", "bright"], top=0.05)
    top, bottom = D.decision_units(np.array([0.2, 0.9, -0.4]), d, k=2)
    assert [r.unit for r in top] == [1, 0] and [r.unit for r in bottom] == [2, 0]
    assert top[0].name == "blue" and top[0].alpha == pytest.approx(0.9)
    assert D.sentence("sky", top) == "predicted sky because of units for: blue (1.00), red (1.00)"
    assert "none of its 1 most important units has a name" in D.sentence("x", bottom[:1])
    assert D.sentence("sky", top, predicted="sky") == D.sentence("sky", top)
    # a class the user picked, not the model's: the sentence must not claim it was predicted
    assert D.sentence("sea", top, predicted="sky") == ("for the class sea (the model predicts sky), units for: "
                                                       "blue (1.00), red (1.00)")
    assert D.sentence("sea", bottom[:1], predicted="sky") == ("for the class sea (the model predicts sky), none of "
                                                              "its 1 most important units has a name")
    with pytest.raises(ValueError, match="2 channel weights for a dissection of 3 units"):
        D.decision_units(np.zeros(2), d)
