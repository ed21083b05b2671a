"""Guided Grad-CAM from one guided backward: where no ReLU follows the layer, the gradient that
arrives at the layer on the way to the pixels is Grad-CAM's exact one, so one backward gives both
(the paper's identity, Guided Backprop x upsampled Grad-CAM, still holds to float precision);
where a ReLU follows the layer (VGG's classifier), an exact backward to the layer comes first."""
import numpy as np
import pytest
import torch
from torch import nn

import explainers


def _net(head_relu: bool) -> nn.Module:
    """A layer that ends in a ReLU (as ResNet's blocks do: the guided rule hooks its output), then
    a linear head with weights of both signs, with or without a ReLU of its own."""
    torch.manual_seed(0)
    head = [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 8)]
    if head_relu:
        head += [nn.ReLU(), nn.Linear(8, 3)]
    else:
        head += [nn.Linear(8, 3)]
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                                      nn.ReLU()), *head)
    return net.eval()


def _count_backwards(monkeypatch):
    calls = []
    real = torch.autograd.grad

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(torch.autograd, "grad", counted)
    return calls


@pytest.mark.parametrize("head_relu, backwards", [(False, 1), (True, 2)])
def test_guided_gradcam_takes_one_backward_where_it_can_and_stays_exact(head_relu, backwards, monkeypatch):
    net, x = _net(head_relu), torch.randn(2, 3, 8, 8)
    targets = [0, 2]
    ggc = explainers.explain(net, x, method="guided_gradcam", layer="0", target=targets)
    gb = explainers.explain(net, x, method="guided_backprop", target=targets)
    gc = explainers.explain(net, x, method="gradcam", layer="0", target=targets)
    for a, b, c in zip(ggc, gb, gc):
        np.testing.assert_allclose(a.weights, c.weights, rtol=1e-5, atol=1e-7)  # exact layer gradients
        assert (c.weights < 0).any()  # the layer's gradient has negative parts the guided rule would cut
        np.testing.assert_allclose(a.attribution, b.attribution * c.attribution[:, None], rtol=1e-5, atol=1e-7)
    capture = explainers.Capture(net, x, layer="0", pixels=True)
    assert capture._head_relus == (1 if head_relu else 0)
    calls = _count_backwards(monkeypatch)
    capture.explain("guided_gradcam", targets)
    assert len(calls) == backwards


def test_on_a_kept_capture_grad_cam_first_costs_no_second_layer_backward(monkeypatch):
    """Grad-CAM's layer gradients, already computed on a capture, are reused; the guided map
    then costs one backward to the input."""
    net, x = _net(False), torch.randn(1, 3, 8, 8)
    capture = explainers.Capture(net, x, layer="0", pixels=True)
    plain = capture.explain("guided_gradcam", 1).attribution
    calls = _count_backwards(monkeypatch)
    again = capture.explain("guided_gradcam", 1).attribution
    assert len(calls) == 1
    np.testing.assert_allclose(plain, again, rtol=1e-6)
