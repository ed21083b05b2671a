"""Bad input gets a specific message."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

import explainers


def test_unknown_layer_lists_candidates(resnet18):
    with pytest.raises(ValueError, match=r"layer 'layer9' not found.*layer1, layer2, layer3, layer4"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), layer="layer9", target=0)


def test_unknown_nested_layer_lists_siblings(resnet18):
    with pytest.raises(ValueError, match=r"children of 'layer4': layer4.0, layer4.1"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), layer="layer4.7", target=0)


def test_class_index_out_of_range(resnet18):
    with pytest.raises(ValueError, match=r"class index 20 out of range.*20 outputs.*0\.\.19"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), target=20)
    with pytest.raises(ValueError, match=r"class index -1 out of range"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), target=[1, -1])


def test_non_4d_input(resnet18):
    with pytest.raises(ValueError, match=r"input must be 4D.*\(3, 64, 64\).*unsqueeze"):
        explainers.explain(resnet18, torch.randn(3, 64, 64), target=0)


def test_wrong_channel_count(resnet18):
    with pytest.raises(ValueError, match=r"input has 1 channel\(s\).*conv1\) expects 3"):
        explainers.explain(resnet18, torch.randn(1, 1, 64, 64), target=0)


def test_not_a_tensor_and_integer_input(resnet18):
    with pytest.raises(TypeError, match="torch.Tensor"):
        explainers.explain(resnet18, [[1.0]], target=0)
    with pytest.raises(ValueError, match="floating-point"):
        explainers.explain(resnet18, torch.zeros(1, 3, 8, 8, dtype=torch.uint8), target=0)


def test_training_mode_refused(resnet18):
    resnet18.train()
    with pytest.raises(ValueError, match=r"training mode.*model.eval\(\)"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), target=0)
    assert resnet18.training  # and left as it was


def test_unknown_method(resnet18):
    with pytest.raises(ValueError, match=r"unknown method 'gradcam\+\+'.*gradcam, counterfactual"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), method="gradcam++")


class _Branchy(nn.Module):
    """``side`` runs but does not reach the output; ``unused`` never runs."""

    def __init__(self):
        super().__init__()
        self.main = nn.Conv2d(3, 4, 3)
        self.side = nn.Conv2d(3, 4, 3)
        self.unused = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        self.side(x)
        return self.fc(self.main(x).mean((2, 3)))


def test_layer_the_target_does_not_depend_on():
    net = _Branchy().eval()
    with pytest.raises(ValueError, match=r"does not depend on layer 'side'"):
        explainers.explain(net, torch.randn(1, 3, 8, 8), layer="side", target=0)
    with pytest.raises(ValueError, match=r"layer 'unused' was not called"):
        explainers.explain(net, torch.randn(1, 3, 8, 8), layer="unused", target=0)


def test_layer_without_spatial_output(resnet18):
    with pytest.raises(ValueError, match=r"layer 'fc' outputs a tensor of shape \(1, 20\)"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), layer="fc", target=0)


def test_custom_target_of_wrong_shape(resnet18):
    with pytest.raises(ValueError, match=r"one score per sample \(shape \(1,\)\), got \(1, 20\)"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), target=lambda out: out)


def test_bad_target_types(resnet18):
    with pytest.raises(TypeError, match="class index"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), target="cat")
    with pytest.raises(ValueError, match="empty"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), target=[])


def test_model_without_conv_has_no_default_layer():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    with pytest.raises(ValueError, match="no module with a spatial"):
        explainers.explain(mlp, torch.randn(1, 3, 2, 2), target=0)


def test_inside_inference_mode_is_named(resnet18):
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        for method in explainers.method_names():
            with pytest.raises(RuntimeError, match=r"inside torch.inference_mode\(\).*torch.no_grad\(\) is fine"):
                explainers.explain(resnet18, x, method=method)
    with torch.no_grad():  # no_grad is fine: the library turns gradients on where it needs them
        e = explainers.explain(resnet18, x, target=3)
    assert e.layer_map.max() >= 0 and e.attribution.shape == (64, 64)


def test_float64_input_is_named(resnet18):
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"input is float64 but the model's weights are float32; "
                                         r"convert the input with x.to\(torch.float32\)"):
        explainers.explain(resnet18, x)
    e64 = explainers.explain(copy.deepcopy(resnet18).double(), x, target=1)  # float64 model, float64 input
    e32 = explainers.explain(resnet18, x.float(), target=1)
    np.testing.assert_allclose(e64.attribution, e32.attribution, rtol=1e-3, atol=1e-4 * e32.attribution.max())


@pytest.mark.parametrize("method", ["gradcam", "counterfactual", "guided_backprop", "guided_gradcam"])
def test_unknown_layer_is_an_error_for_every_method(resnet18, method):
    with pytest.raises(ValueError, match="layer 'layer9' not found"):
        explainers.explain(resnet18, torch.randn(1, 3, 64, 64), method=method, layer="layer9")
