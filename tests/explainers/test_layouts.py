"""Layers of any shape: the reshape rule for tokens and channels-last grids, and its override."""
import numpy as np
import pytest
import torch
from torch import nn

import explainers
from explainers.layouts import layout_of


class Tokens(nn.Module):
    """A toy transformer: a patch embedding to T tokens (with a class token or not), a block
    with two LayerNorms, and a head on the mean token (or the class token)."""

    def __init__(self, cls_token: bool, side: int = 3, dim: int = 6):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 2, stride=2)
        self.cls = nn.Parameter(torch.randn(1, 1, dim)) if cls_token else None
        self.block = nn.Module()
        self.block.norm1 = nn.LayerNorm(dim)
        self.block.norm2 = nn.LayerNorm(dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 4)
        self.side = side

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # N x T x C
        if self.cls is not None:
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
        a = self.block.norm1(t)
        t = t + self.mix(a.mean(dim=1, keepdim=True)) * a  # every token reaches the pooled output
        t = self.block.norm2(t)
        return self.head(t.mean(dim=1))


@pytest.mark.parametrize("cls_token", [False, True])
def test_tokens_are_read_as_a_grid(cls_token):
    torch.manual_seed(0)
    model = Tokens(cls_token).eval()
    x = torch.randn(1, 3, 6, 6)
    assert explainers.default_layer(model, x) == "block.norm1"  # the first norm of the last block
    capture = explainers.Capture(model, x)
    assert capture.activation.shape == (1, 6, 3, 3)
    assert capture.layout == ("tokens after the class token as a 3x3 grid" if cls_token else "tokens as a 3x3 grid")
    e = capture.explain("gradcam", 1)
    # by hand: tokens (after the class token) -> 3 x 3 grid of C channels, Grad-CAM on that grid
    tokens = []

    def keep(module, inputs, output):
        output.retain_grad()
        tokens.append(output)
    handle = model.block.norm1.register_forward_hook(keep)
    try:
        model(x)[0, 1].backward()
    finally:
        handle.remove()
    t = tokens[0][0, int(cls_token):]  # T x C
    g = tokens[0].grad[0, int(cls_token):]
    a = t.T.reshape(6, 3, 3)
    alpha = g.T.reshape(6, 3, 3).mean(dim=(1, 2))
    expected = torch.relu((alpha[:, None, None] * a).sum(0)).detach().numpy()
    np.testing.assert_allclose(e.layer_map, expected, rtol=1e-5, atol=1e-7)
    model.zero_grad()


def test_channels_last_layernorm_output_is_permuted():
    norm = nn.LayerNorm(8)
    out = torch.randn(2, 5, 5, 8)
    layout = layout_of("norm", norm, out)
    assert layout.kind == "nhwc" and layout.grid == (5, 5)
    torch.testing.assert_close(layout.apply(out), out.permute(0, 3, 1, 2))
    # a CNN map whose width happens to equal nothing LayerNorm-like stays N x C x h x w
    assert layout_of("conv", nn.Conv2d(3, 8, 1), torch.randn(2, 8, 5, 5)).kind == "nchw"
    # ConvNeXt-style: a LayerNorm inside, but the output is N x C x h x w (C is axis 1)
    block = nn.Sequential(nn.Conv2d(8, 8, 1), nn.LayerNorm(8))
    assert layout_of("block", block, torch.randn(2, 8, 4, 4)).kind == "nchw"


def test_token_counts_that_are_no_grid_are_named():
    with pytest.raises(ValueError, match=r"outputs 7 tokens \(shape \(1, 7, 4\)\), neither a square grid nor a "
                                         r"class token plus a square grid; pass reshape="):
        layout_of("blk", nn.Identity(), torch.randn(1, 7, 4))
    with pytest.raises(ValueError, match=r"outputs a tensor of shape \(1, 4\)"):
        layout_of("fc", nn.Identity(), torch.randn(1, 4))


def test_reshape_overrides_the_rule_and_is_checked():
    torch.manual_seed(0)
    model = Tokens(cls_token=True).eval()
    x = torch.randn(1, 3, 6, 6)

    def drop_cls(t):  # the rule's own reading, written by the caller
        return t[:, 1:, :].reshape(t.shape[0], 3, 3, t.shape[2]).permute(0, 3, 1, 2)

    def transposed(t):  # another reading: the grid transposed
        return drop_cls(t).transpose(2, 3)

    a = explainers.explain(model, x, layer="block.norm1", target=2)
    b = explainers.explain(model, x, layer="block.norm1", target=2, reshape=drop_cls)
    c = explainers.explain(model, x, layer="block.norm1", target=2, reshape=transposed)
    np.testing.assert_allclose(b.layer_map, a.layer_map, rtol=1e-6)
    np.testing.assert_allclose(c.layer_map, a.layer_map.T, rtol=1e-6)
    with pytest.raises(ValueError, match=r"reshape= must return N x C x h x w for layer 'block.norm1'; "
                                         r"it returned \(1, 10, 6\)"):
        explainers.explain(model, x, layer="block.norm1", reshape=lambda t: t)
    with pytest.raises(ValueError, match=r"reshape= failed on layer 'block.norm1'.*shape \(1, 10, 6\)"):
        explainers.explain(model, x, layer="block.norm1", reshape=lambda t: t.reshape(5, 5, 5))
    with pytest.raises(TypeError, match="reshape must be a callable"):
        explainers.explain(model, x, layer="block.norm1", reshape="tokens")
    with pytest.raises(ValueError, match="does not say how to find"):
        explainers.explain(model, x, method="ablationcam", layer="block.norm1", reshape=drop_cls)


def test_every_method_runs_on_tokens():
    torch.manual_seed(0)
    model = Tokens(cls_token=True).eval()
    x = torch.randn(2, 3, 6, 6)
    for method in explainers.method_names(model=model):
        options = {"patch": 2, "stride": 2} if method == "occlusion" else {}
        e = explainers.explain(model, x, method=method, target=1, **options)
        assert np.isfinite(e.attribution).all() and e.attribution.shape[0] == 2
        if e.layer_map is not None:
            assert e.layer_map.shape == (2, 3, 3)


def test_list_layers_shows_token_layers_with_their_reading():
    torch.manual_seed(0)
    model = Tokens(cls_token=True).eval()
    infos = {i.name: i for i in explainers.list_layers(model, torch.randn(1, 3, 6, 6))}
    assert infos["block.norm1"].shape == (6, 3, 3)
    assert "tokens after the class token as a 3x3 grid" in str(infos["block.norm1"])
    assert infos["embed"].shape == (6, 3, 3) and str(infos["embed"]) == "embed (Conv2d, 6x3x3)"
