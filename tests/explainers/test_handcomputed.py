"""Exact values on HandNet (tests/conftest.py), computed by hand.

x = [[1, 2], [-1, 3]]; conv 1x1 with weights (+1, -1) and ReLU give
A0 = relu(x)  = [[1, 2], [0, 3]],   A1 = relu(-x) = [[0, 0], [1, 0]].
Class 0: dy0/dA0 = [[1, -1], [2, 2]] (alpha0 = 1), dy0/dA1 = [[-4, 0], [2, -2]] (alpha1 = -1);
  y0 = 1 - 2 + 0 + 6 + 0 + 0 + 2 + 0 = 7;  L0 = relu(A0 - A1) = [[1, 2], [0, 3]].
Class 1: alpha = (-1, 2);  L1 = relu(-A0 + 2 A1) = [[0, 0], [2, 0]];  y1 = -12 + 2 = -10.
Counterfactual class 0: alpha = (-1, 1);  relu(-A0 + A1) = [[0, 0], [1, 0]].
Guided Backprop class 0: at the ReLU keep gradients that are positive where the input was
positive: R0 = [[1, 0], [0, 2]], R1 = [[0, 0], [2, 0]]; conv backward: R0 - R1 = [[1, 0], [-2, 2]]
(the plain gradient would be [[1, -1], [-2, 2]]).
Guided Grad-CAM class 0 (layer resolution = input resolution): [[1, 0], [0, 6]].
"""
import numpy as np
import pytest
import torch

import explainers
from tests.conftest import HAND_X, HandNet

RELU_KINDS = ["module", "inplace", "functional", "functional_inplace", "method", "relu6", "functional_relu6"]


@pytest.mark.parametrize("relu", RELU_KINDS)
def test_gradcam_exact(relu):
    net = HandNet(relu).eval()
    e0 = explainers.explain(net, HAND_X, method="gradcam", layer="feat", target=0)
    np.testing.assert_array_equal(e0.layer_map, [[1, 2], [0, 3]])
    np.testing.assert_array_equal(e0.weights, [1, -1])
    np.testing.assert_array_equal(e0.attribution, [[1, 2], [0, 3]])
    assert e0.score == 7.0
    e1 = explainers.explain(net, HAND_X, method="gradcam", layer="feat", target=1)
    np.testing.assert_array_equal(e1.layer_map, [[0, 0], [2, 0]])
    np.testing.assert_array_equal(e1.weights, [-1, 2])
    assert e1.score == -10.0


@pytest.mark.parametrize("relu", RELU_KINDS)
def test_counterfactual_exact(relu):
    e = explainers.explain(HandNet(relu).eval(), HAND_X, method="counterfactual", layer="feat", target=0)
    np.testing.assert_array_equal(e.layer_map, [[0, 0], [1, 0]])
    np.testing.assert_array_equal(e.weights, [-1, 1])
    assert e.score == 7.0  # the class score itself, not its negation


@pytest.mark.parametrize("relu", RELU_KINDS)
def test_guided_backprop_exact(relu):
    e = explainers.explain(HandNet(relu).eval(), HAND_X, method="guided_backprop", target=0)
    assert e.layer is None and e.layer_map is None and e.weights is None
    np.testing.assert_array_equal(e.attribution, [[[1, 0], [-2, 2]]])


def test_plain_gradient_differs_from_guided():
    """The guided rule is what changes the (0, 1) entry: the plain input gradient has -1."""
    x = HAND_X.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(HandNet().eval()(x)[0, 0], x)
    np.testing.assert_array_equal(g[0].numpy(), [[[1, -1], [-2, 2]]])


@pytest.mark.parametrize("relu", RELU_KINDS)
def test_guided_gradcam_exact(relu):
    e = explainers.explain(HandNet(relu).eval(), HAND_X, method="guided_gradcam", layer="feat", target=0)
    np.testing.assert_array_equal(e.layer_map, [[1, 2], [0, 3]])  # exact gradient, not guided
    np.testing.assert_array_equal(e.attribution, [[[1, 0], [0, 6]]])


def test_probability_target_chain_rule():
    """ClassProbability: dp0/dA = p0 * (dy0/dA - sum_c p_c dy_c/dA); alpha by hand from V.
    The input is scaled by 0.1 so that the logits (0.7, -1.0) give a well-conditioned softmax."""
    net = HandNet().eval()
    p = torch.softmax(torch.tensor([0.7, -1.0]), 0)
    v = HandNet.V.view(2, 2, 4).mean(-1)  # per class, per channel: mean of dy_c/dA^k
    alpha = p[0] * (v[0] - (p[:, None] * v).sum(0))
    e = explainers.explain(net, HAND_X * 0.1, layer="feat", target=explainers.ClassProbability(0))
    np.testing.assert_allclose(e.weights, alpha.numpy(), rtol=1e-5)
    assert e.score == pytest.approx(float(p[0]))


def test_contrast_target():
    """y0 - y1: alpha = (1, -1) - (-1, 2) = (2, -3); L = relu(2 A0 - 3 A1) = [[2, 4], [0, 6]]."""
    e = explainers.explain(HandNet().eval(), HAND_X, layer="feat", target=explainers.Contrast(0, 1))
    np.testing.assert_array_equal(e.weights, [2, -3])
    np.testing.assert_array_equal(e.layer_map, [[2, 4], [0, 6]])
    assert e.score == 17.0


def test_custom_target_callable():
    """A custom score 2*y0 doubles the weights of class 0."""
    e = explainers.explain(HandNet().eval(), HAND_X, layer="feat", target=lambda out: 2 * out[:, 0])
    np.testing.assert_array_equal(e.weights, [2, -2])
    np.testing.assert_array_equal(e.layer_map, [[2, 4], [0, 6]])
