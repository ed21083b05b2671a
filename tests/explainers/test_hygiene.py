"""The caller's model comes back exactly as it was; concurrent callers do not see each other."""
import threading

import numpy as np
import pytest
import torch
from torch.overrides import _get_current_function_mode_stack

import explainers
from tests.conftest import assert_maps_close, model_state

# the methods for CNNs: LeGrad reads attention (tests/explainers/test_legrad.py has it on ViTs)
CNN_METHODS = [m.name for m in explainers.list_methods() if not m.transformers_only]


def _prepare(model):
    """Give the model state that explain() could disturb: frozen parameters, stale .grad."""
    params = list(model.parameters())
    for p in params[:3]:
        p.requires_grad_(False)
    for p in params[-2:]:
        p.grad = torch.full_like(p, 0.25)
    return model


def _assert_same(before, after):
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"] == 0
    for a, b in zip(before["grad"], after["grad"]):
        assert (a is None and b is None) or torch.equal(a, b)
    for a, b in zip(before["params"], after["params"]):
        assert torch.equal(a, b)
    assert torch.is_grad_enabled()
    assert not _get_current_function_mode_stack()


@pytest.mark.parametrize("method", CNN_METHODS)
def test_model_unchanged_after_success(resnet18, method):
    model = _prepare(resnet18)
    before = model_state(model)
    explainers.explain(model, torch.randn(1, 3, 64, 64), method=method, target=[1, 2])
    _assert_same(before, model_state(model))


class _Boom(Exception):
    pass


def _failing_target(output):
    raise _Boom("target failed")


@pytest.mark.parametrize("method", CNN_METHODS)
@pytest.mark.parametrize("failure", ["target", "layer_output", "bad_class"])
def test_model_unchanged_after_exception(resnet18, method, failure):
    model = _prepare(resnet18)
    before = model_state(model)
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises((_Boom, ValueError)):
        if failure == "target":
            explainers.explain(model, x, method=method, target=_failing_target)
        elif failure == "layer_output":  # the hook raises inside the forward pass
            explainers.explain(model, x, method=method if explainers.get_method(method).needs_layer else "gradcam",
                               layer="fc", target=1)
        else:
            explainers.explain(model, x, method=method, target=10_000)
    _assert_same(before, model_state(model))


def test_grad_mode_restored_inside_no_grad_context(resnet18):
    with torch.no_grad():
        e = explainers.explain(resnet18, torch.randn(1, 3, 64, 64), target=1)
        assert not torch.is_grad_enabled()
    assert e.layer_map.max() > 0


def test_nothing_retained(resnet18):
    """The returned Explanation holds numpy arrays only; no tensor of the call stays alive."""
    import gc
    x = torch.randn(1, 3, 64, 64)
    explainers.explain(resnet18, x, method="guided_gradcam", target=[1, 2])
    gc.collect()
    known = {id(t) for t in list(resnet18.parameters()) + list(resnet18.buffers())} | {id(x)}
    before = {id(o) for o in gc.get_objects() if isinstance(o, torch.Tensor)}
    for _ in range(3):
        e = explainers.explain(resnet18, x, method="guided_gradcam", target=[1, 2])
    gc.collect()
    after = {id(o) for o in gc.get_objects() if isinstance(o, torch.Tensor)} - known
    assert after - before == set()
    assert all(isinstance(v, np.ndarray) for v in (e[0].attribution, e[0].layer_map, e[0].weights))


HEAVY = {m.name for m in explainers.list_methods() if m.forward_heavy}
QUICK = {"scorecam": {"batch_size": 128}, "ablationcam": {"batch_size": 128}, "occlusion": {"stride": 8},
         "integrated_gradients": {"steps": 8}, "smoothgrad": {"samples": 4}}


@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m in HEAVY else m
                                    for m in CNN_METHODS])
def test_threads_on_a_shared_model_match_sequential_calls(resnet18, method):
    """8 threads explain 8 classes at once on one model: each gets the single-threaded map."""
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(11))
    classes = list(range(8))
    options = QUICK.get(method, {})
    expected = {c: explainers.explain(resnet18, x, method=method, target=c, **options).attribution for c in classes}
    results, errors = {}, []
    start = threading.Barrier(len(classes))

    def work(c):
        try:
            start.wait()
            for _ in range(1 if method in HEAVY else 3):
                results[c] = explainers.explain(resnet18, x, method=method, target=c, **options).attribution
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(c,)) for c in classes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for c in classes:
        assert_maps_close(results[c], expected[c], rel=1e-5)
    if explainers.get_method(method).class_discriminative:
        assert not np.allclose(expected[0], expected[1])
    assert resnet18.conv1._forward_hooks == {} and all(not m._forward_hooks for m in resnet18.modules())


def test_plain_forward_in_another_thread_is_not_disturbed(resnet18):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        reference = resnet18(x)
    stop = threading.Event()
    outputs, errors = [], []

    def explainer():
        while not stop.is_set():
            explainers.explain(resnet18, x, method="guided_gradcam", target=1)

    def predictor():
        try:
            for _ in range(20):
                with torch.no_grad():
                    outputs.append(resnet18(x))
        except Exception as err:  # pragma: no cover
            errors.append(err)

    t1, t2 = threading.Thread(target=explainer), threading.Thread(target=predictor)
    t1.start(); t2.start(); t2.join(); stop.set(); t1.join()
    assert not errors and len(outputs) == 20
    for out in outputs:
        assert not out.requires_grad
        torch.testing.assert_close(out, reference)
