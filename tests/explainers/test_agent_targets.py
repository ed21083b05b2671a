"""An agent's targets (an action's logit and probability, the value, "why a rather than b"), by
hand on a tiny actor-critic whose Grad-CAM is known in closed form, and through every method."""
import numpy as np
import pytest
import torch
from torch import nn

import explainers
from explainers import ActionContrast, ActionLogit, ActionProbability, Value


class TinyAgent(nn.Module):
    """A 1x1 convolution to 2 channels, global average pooling, then a linear head to 3 action
    logits and the value: ``[N, 4]``. For Grad-CAM at ``conv``, d score / d A_k(i, j) is
    d score / d pooled_k divided by the cells (Z), the same at every cell."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2, 4)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in self.conv.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
            # by hand, so every target's map has positive cells: actions 0..2, then the value
            self.head.weight.copy_(torch.tensor([[2.0, -1.0], [-1.0, 1.0], [1.0, 0.5], [0.5, 1.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.pool(self.relu(self.conv(x))).flatten(1))


@pytest.fixture(scope="module")
def agent():
    torch.manual_seed(1)
    return TinyAgent().eval(), torch.rand(1, 3, 8, 8)


def _by_hand(model, x, weights_of):
    """ReLU(sum_k alpha_k A_k) with alpha_k from ``weights_of(logits, W) -> d score / d pooled``,
    divided by the cells; upsampled to 8 x 8 is the identity here (1x1 conv keeps 8 x 8)."""
    with torch.no_grad():
        a = model.relu(model.conv(x))[0].numpy()  # 2 x 8 x 8 (the ReLU's output: the layer "relu")
        out = model(x)[0].numpy()
    w = model.head.weight.detach().numpy()  # 4 x 2
    grad_pooled = weights_of(out, w)  # 2
    alpha = grad_pooled / 64  # the mean over the 64 cells of d score / d A_k = grad_pooled / 64
    return np.maximum((alpha[:, None, None] * a).sum(0), 0)


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


CASES = {
    "logit": (ActionLogit(2), lambda out, w: w[2]),
    "value": (Value(), lambda out, w: w[3]),
    "contrast": (ActionContrast(0, 1), lambda out, w: w[0] - w[1]),
    # d p_a / d pooled = p_a (w_a - sum_j p_j w_j) over the action logits only (not the value)
    "probability": (ActionProbability(1),
                    lambda out, w: _softmax(out[:3])[1] * (w[1] - _softmax(out[:3]) @ w[:3])),
}


@pytest.mark.parametrize("case", CASES)
def test_gradcam_of_each_target_by_hand(agent, case):
    model, x = agent
    target, weights_of = CASES[case]
    got = explainers.explain(model, x, layer="relu", target=target).attribution
    want = _by_hand(model, x, weights_of)
    assert want.max() > 0  # not a dead map: the comparison means something
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_targets_scores_by_hand(agent):
    model, x = agent
    with torch.no_grad():
        out = model(x)
    z = out[0].numpy()
    assert float(ActionLogit(1)(out)) == pytest.approx(z[1])
    assert float(Value()(out)) == pytest.approx(z[3])
    assert float(ActionProbability(2)(out)) == pytest.approx(_softmax(z[:3])[2], rel=1e-6)
    assert float(ActionContrast(2, 0)(out)) == pytest.approx(np.log(_softmax(z[:3])[2] / _softmax(z[:3])[0]),
                                                             rel=1e-5)
    assert ActionContrast(0, 2, ("up", "right")).label == "up rather than right"
    assert ActionProbability(1, "down").label == "p(down)" and Value().label == "value"


def test_every_registered_method_takes_them(agent):
    model, x = agent
    targets = [ActionLogit(0), ActionProbability(1), ActionContrast(2, 1), Value()]
    for method in explainers.method_names(model=model, classes=False):
        for t in targets:
            e = explainers.explain(model, x, method=method, layer="relu", target=t)
            assert np.isfinite(e.attribution).all() and e.attribution.shape[-2:] == (8, 8), (method, t)


def test_out_of_range_actions_and_other_outputs_are_named(agent):
    model, x = agent
    with pytest.raises(ValueError, match=r"action 3 out of range: the agent has 3 actions \(valid 0..2; its "
                                         r"output's last column is the value\)"):
        explainers.explain(model, x, layer="relu", target=ActionLogit(3))
    with pytest.raises(ValueError, match=r"agent targets need an output of shape \[N, actions \+ 1\]"):
        Value()(torch.zeros(2))
