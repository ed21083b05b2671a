"""Capture: one forward pass serves further classes and methods (what the dashboard needs)."""
import pytest
import torch

import explainers
from tests.conftest import assert_maps_close

# the methods for CNNs: LeGrad reads attention (tests/explainers/test_legrad.py has it on ViTs)
CNN_METHODS = [m.name for m in explainers.list_methods() if not m.transformers_only]


def _count_forwards(model):
    calls = []
    handle = model.conv1.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


KEPT = [m.name for m in explainers.list_methods() if m.cost(512, (64, 64)).forwards == 0]


def test_switching_class_and_method_needs_no_new_forward(resnet18):
    assert {"gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam", "guided_gradcam"} <= set(KEPT)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(21))
    explainers.default_layer(resnet18)  # found once per model, then cached
    calls, handle = _count_forwards(resnet18)
    capture = explainers.Capture(resnet18, x, layer="layer4", pixels=True)
    got = {(m, c): capture.explain(m, c) for m in KEPT for c in (0, 7, 13)}
    handle.remove()
    assert len(calls) == 1
    for (method, c), e in got.items():
        ref = explainers.explain(resnet18, x, method=method, layer="layer4", target=c)
        assert_maps_close(e.attribution, ref.attribution)
        assert e.score == pytest.approx(ref.score, rel=1e-6)


@pytest.mark.parametrize("method", [m for m in CNN_METHODS if m not in KEPT])
def test_forward_heavy_methods_run_the_forwards_their_cost_says(resnet18, method):
    """The registry's cost is what the method does: images through the first convolution after
    the kept forward equal Cost.forwards (Ablation-CAM: at most, its prefix runs once a batch)."""
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(22))
    capture = explainers.Capture(resnet18, x, layer="layer4")
    images = []
    handle = resnet18.conv1.register_forward_hook(lambda m, i, o: images.append(o.shape[0]))
    try:
        capture.explain(method, 3)
    finally:
        handle.remove()
    cost = explainers.get_method(method).cost(capture.channels, (64, 64))
    if cost.head_only:
        assert 1 <= sum(images) <= cost.forwards
    else:
        assert sum(images) == cost.forwards > 4


def test_output_is_the_forward_pass(resnet18):
    x = torch.randn(2, 3, 64, 64)
    capture = explainers.Capture(resnet18, x)
    with torch.no_grad():
        torch.testing.assert_close(capture.output, resnet18(x))
    assert not capture.output.requires_grad and capture.layer == "layer4"


def test_gradcam_only_capture_refuses_pixel_methods(resnet18):
    capture = explainers.Capture(resnet18, torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="guided_backprop needs the input gradient: capture with pixels=True"):
        capture.explain("guided_backprop", 1)
    pixels_only = explainers.Capture(resnet18, torch.randn(1, 3, 64, 64), pixels=True, cam=False)
    with pytest.raises(ValueError, match="gradcam needs a layer"):
        pixels_only.explain("gradcam", 1)
    assert pixels_only.explain("guided_backprop", 1).attribution.shape == (3, 64, 64)


def test_capture_leaves_no_hooks_and_frees_with_the_capture(resnet18):
    import gc
    import weakref
    capture = explainers.Capture(resnet18, torch.randn(1, 3, 64, 64), pixels=True)
    assert sum(len(m._forward_hooks) for m in resnet18.modules()) == 0
    capture.explain("guided_gradcam", 3)
    ref = weakref.ref(capture._fwd.output)
    del capture
    gc.collect()
    assert ref() is None
