"""LeGrad (issue 29) against torchcam 0.5.0's implementation of the same definition, on a small
torchvision ViT with random weights and the readout the model itself uses; on the CLIP ViT
wrapper; and a clear message where there is no attention to read."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

import explainers
from explainers import attention

torchcam = pytest.importorskip("torchcam.methods")


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=2,
                                                 hidden_dim=32, mlp_dim=64, num_classes=5).eval()
    # random weights are small: scale the attention's query and key so its softmax is far from flat
    with torch.no_grad():
        torch.nn.init.normal_(model.heads.head.weight, std=0.5)  # torchvision initialises the head to zero
        for layer in model.encoder.layers:
            layer.self_attention.in_proj_weight[:64] *= 4
    return model


def _r(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.parametrize("first", [0, 1, 2])
def test_legrad_matches_torchcam(vit, first):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 32)
    names = [f"encoder.layers.encoder_layer_{i}" for i in range(first, 3)]
    readout = attention.readout_of(vit)
    for cls in (1, 3):
        with torchcam.LeGrad(vit, names, score_projection=lambda t: readout(t)) as extractor:
            scores = vit(x)
            (theirs,) = extractor(cls, scores, normalized=False)
        ours = explainers.explain(vit, x, method="legrad", layer=names[0], target=cls)
        assert ours.layer_map.shape == (2, 4, 4)
        for i in range(2):
            assert np.abs(ours.layer_map[i]).max() > 0
            assert _r(ours.layer_map[i], theirs[i].numpy()) >= 0.99
            assert ours.layer_map[i] == pytest.approx(theirs[i].numpy(), rel=1e-4, abs=1e-7)


@pytest.mark.slow  # building the 150 M-parameter ViT-B/32 takes seconds
def test_legrad_on_the_clip_vit_gives_its_patch_grid():
    pytest.importorskip("open_clip")
    import model_zoo
    loaded = model_zoo.load("clip-vit-b-32", "untrained")
    tokens = loaded.model.tokenize(["a photo of a cat", "a dog"])
    x = torch.randn(1, 3, 224, 224)
    cap = explainers.Capture(loaded.model, x, layer="clip.visual.transformer.resblocks.10", inputs=(tokens,))
    e = cap.explain("legrad", explainers.TextSimilarity(tokens, 1))
    assert e.layer_map.shape == (7, 7) and e.attribution.shape == (224, 224)
    assert np.isfinite(e.layer_map).all() and e.layer_map.max() > 0
    g = cap.explain("gradcam", explainers.TextSimilarity(tokens, 1))  # the token layout rule: 7 x 7 too
    assert g.layer_map.shape == (7, 7)


class NoAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Conv2d(3, 8, 8, 8)
        self.blocks = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))

    def forward(self, x):
        return self.readout(self.blocks(self.embed(x).flatten(2).transpose(1, 2)))

    def readout(self, tokens):
        return tokens.mean(1)


def test_legrad_names_what_it_cannot_read(vit):
    cnn = torchvision.models.resnet18(num_classes=3).eval()
    with pytest.raises(ValueError, match="layer4.1 has 0 \\(a CNN has none"):
        explainers.explain(cnn, torch.randn(1, 3, 32, 32), method="legrad", layer="layer4.1", target=0)
    with pytest.raises(ValueError, match="LeGrad needs the model's readout from a block's tokens"):
        explainers.Capture(cnn, torch.randn(1, 3, 32, 32), layer="layer4").explain("legrad", 0)
    with pytest.raises(ValueError, match="LeGrad reads transformer blocks: name one block"):
        explainers.explain(vit, torch.randn(1, 3, 32, 32), method="legrad", layer="conv_proj", target=0)
    with pytest.raises(ValueError, match="one torch.nn.MultiheadAttention in each block; blocks.0 has 0"):
        explainers.explain(NoAttention().eval(), torch.randn(1, 3, 16, 16), method="legrad", layer="blocks.0",
                           target=0)


def test_a_one_shot_explanation_reads_the_attention_from_its_own_forward(vit):
    """explain() records what LeGrad and rollout read during the capture's forward: one forward in
    all (a kept Capture made for other methods runs one more for them), and the same maps."""
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    calls = []
    handle = vit.conv_proj.register_forward_hook(lambda *a: calls.append(1))
    try:
        for method in ("legrad", "rollout"):
            calls.clear()
            once = explainers.explain(vit, x, method=method, layer="encoder.layers.encoder_layer_1", target=3)
            assert len(calls) == 1, method
            kept = explainers.Capture(vit, x, layer="encoder.layers.encoder_layer_1").explain(method, 3)
            assert np.allclose(once.layer_map, kept.layer_map, rtol=1e-5, atol=1e-7), method
    finally:
        handle.remove()


def test_legrad_leaves_the_model_as_it_was_and_a_batch_is_its_images(vit):
    torch.manual_seed(2)
    x = torch.randn(3, 3, 32, 32)
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in vit.modules())
    calls = []
    handle = vit.conv_proj.register_forward_hook(lambda *a: calls.append(1))
    cap = explainers.Capture(vit, x, layer="encoder.layers.encoder_layer_1")
    calls.clear()
    batch = cap.explain("legrad", 2)
    assert len(calls) == 1  # its cost: one forward (with hooks), then short backwards
    handle.remove()
    assert all(torch.equal(before[k], v) for k, v in vit.state_dict().items())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in vit.modules()) == hooks
    for i in range(3):
        one = explainers.explain(vit, x[i:i + 1], method="legrad", layer="encoder.layers.encoder_layer_1", target=2)
        assert one.layer_map == pytest.approx(batch.layer_map[i], rel=1e-4, abs=1e-7)


def test_legrad_is_offered_only_for_models_with_attention(vit):
    assert "legrad" in explainers.method_names(model=vit)
    assert "legrad" not in explainers.method_names(model=torchvision.models.resnet18())
    assert "legrad" in explainers.method_names()  # the CLI lists every method


def test_attention_rollout_by_hand_on_a_two_layer_vit():
    """Attention rollout against a hand computation on a 2-layer toy ViT: the attention read from
    each block with need_weights=True (another path than ours, which recomputes it from the block's
    input because the model's own fused call never forms it), 0.5 A + 0.5 I, rows renormalised,
    multiplied from the first block up, the class token's row."""
    torch.manual_seed(4)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                               hidden_dim=32, mlp_dim=64, num_classes=5).eval()
    with torch.no_grad():
        for layer in vit.encoder.layers:
            layer.self_attention.in_proj_weight[:64] *= 4
    x = torch.randn(2, 3, 32, 32)
    seen = []

    def weights(m, a, o):  # the block's attention asked again, for its weights (a guard: the hook re-enters)
        if not getattr(m, "_asked", False):
            m._asked = True
            seen.append(m(a[0], a[1], a[2], need_weights=True, average_attn_weights=True)[1])
            m._asked = False
    hooks = [b.self_attention.register_forward_hook(weights) for b in vit.encoder.layers]
    with torch.no_grad():
        vit(x)
    for h in hooks:
        h.remove()
    eye = torch.eye(17)
    joint = None
    for a in seen:
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        joint = a if joint is None else a @ joint
    want = joint[:, 0, 1:].reshape(2, 4, 4).numpy()
    got = explainers.explain(vit, x, method="rollout", layer="encoder.layers.encoder_layer_1", target=3)
    assert got.layer_map == pytest.approx(want, abs=1e-6)
    one = explainers.explain(vit, x, method="rollout", layer="encoder.layers.encoder_layer_0", target=3)
    first = 0.5 * seen[0] + 0.5 * eye
    first = first / first.sum(-1, keepdim=True)
    assert one.layer_map == pytest.approx(first[:, 0, 1:].reshape(2, 4, 4).numpy(), abs=1e-6)
    other = explainers.explain(vit, x, method="rollout", layer="encoder.layers.encoder_layer_1", target=0)
    assert other.layer_map == pytest.approx(got.layer_map)  # class-agnostic
    assert not explainers.get_method("rollout").class_discriminative
    assert "rollout" not in explainers.method_names(model=torchvision.models.resnet18())
