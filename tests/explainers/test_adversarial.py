"""FGSM against its closed form on a linear model; PGD stays in its budget and flips a model that
FGSM at the same budget may not."""
import numpy as np
import pytest
import torch
from torch import nn

from explainers import adversarial as A


class Linear(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.fc = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(w)
            self.fc.bias.copy_(b)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _linear(seed=0, classes=3, shape=(3, 2, 2)):
    g = torch.Generator().manual_seed(seed)
    d = int(np.prod(shape))
    return Linear(torch.randn(classes, d, generator=g), torch.randn(classes, generator=g))


def test_fgsm_equals_its_closed_form_on_a_linear_model():
    model = _linear()
    mean, std = 0.5, 0.25
    p = torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    x = (p - mean) / std
    label = torch.tensor([0, 1, 2, 1])
    eps = 0.05
    att = A.fgsm(model, x, label, eps, mean=mean, std=std)
    # by hand: logits = W (p - mean) / std + b; dCE/dp = W^T (softmax - onehot) / std
    w, b = model.fc.weight.detach(), model.fc.bias.detach()
    logits = x.flatten(1) @ w.T + b
    grad = (torch.softmax(logits, 1) - torch.eye(3)[label]) @ w / std
    want = (p.flatten(1) + eps * grad.sign()).clamp(0, 1)
    torch.testing.assert_close(att.x.flatten(1) * std + mean, want)
    torch.testing.assert_close(att.perturbation.flatten(1), want - p.flatten(1))
    assert att.clean_prediction.tolist() == logits.argmax(1).tolist()
    # targeted: the step descends the target's cross-entropy
    t = torch.tensor([2, 2, 0, 0])
    att_t = A.fgsm(model, x, label, eps, target=t, mean=mean, std=std)
    grad_t = (torch.softmax(logits, 1) - torch.eye(3)[t]) @ w / std
    torch.testing.assert_close(att_t.x.flatten(1) * std + mean, (p.flatten(1) - eps * grad_t.sign()).clamp(0, 1))


def test_pgd_stays_in_the_ball_and_the_pixel_range_and_beats_fgsm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 3))
    with torch.no_grad():
        model[1].weight.mul_(3)
    p = torch.rand(128, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    x = (p - 0.5) / 0.25
    with torch.no_grad():
        label = model(x).argmax(1)
    assert min(label.bincount().tolist()) > 30  # decisions near the inputs to cross
    eps, norm = 0.1, dict(mean=0.5, std=0.25)
    f = A.fgsm(model, x, label, eps, **norm)
    g = A.pgd(model, x, label, eps, steps=20, seed=1, **norm)
    assert float(g.perturbation.abs().max()) <= eps + 1e-6
    pixels = g.x * 0.25 + 0.5
    assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
    assert g.flip_rate > f.flip_rate > 0.5
    torch.testing.assert_close(A.pgd(model, x, label, eps, steps=20, seed=1, **norm).x, g.x)  # seeded
    t = (label + 1) % 3  # targeted PGD with a large budget reaches its target
    tg = A.pgd(model, x, label, 0.5, steps=40, target=t, **norm)
    assert (tg.prediction == t).float().mean() > 0.9


def test_progress_hygiene_and_clear_errors():
    model = _linear().train()
    x = torch.zeros(2, 3, 2, 2)
    seen = []
    A.pgd(model, x, 0, 0.1, steps=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert model.training and all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="label 7 is out of range: the model has 3 classes"):
        A.fgsm(model, x, 7, 0.1)
    with pytest.raises(ValueError, match="epsilon is a fraction"):
        A.pgd(model, x, 0, 8)
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        A.fgsm(model, x, [0, 1, 2], 0.1)
