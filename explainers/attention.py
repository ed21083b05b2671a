"""LeGrad (Bousselham et al., "LeGrad: An Explainability Method for Vision Transformers via Feature
Formation Sensitivity", 2024): for each transformer block l from the chosen one to the last, the
block's own score s^l (the model's readout applied to the block's output tokens, as if no block
followed), differentiated with respect to the block's post-softmax attention probabilities A^l;
the positive part of that gradient averaged over heads and query tokens, the class token's key
dropped, reshaped to the patch grid; then averaged over the blocks. Attention values are not
multiplied in.

How the gradient with respect to A^l is read, whatever attention kernel the model uses (fused
``scaled_dot_product_attention`` never forms A): a head's output is O_h = A_h V_h and the block's
attention output Y = concat_h(O_h) W_o^T + b_o, so dS/dA_h = (dS/dY W_o)_h V_h^T, with V_h from the
attention's own input and value projection. Only the gradient at Y is taken by autograd. This is
exact, needs no change to the model's forward, and equals the gradient torchcam obtains by
re-running the attention on the probabilities it asks ``nn.MultiheadAttention`` to return
(``tests/explainers/test_legrad.py`` checks the two against each other).

The readout: a model gives ``readout(tokens, *token_inputs)`` (the studio's CLIP wrapper does: its
final norm on the class token, the projection, the cosine with each phrase); a torchvision
``VisionTransformer`` is read as it reads itself, ``heads(encoder.ln(tokens)[:, 0])``. torchcam's
default for torchvision reads the mean of all tokens instead; the test gives torchcam ours.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .layers import resolve_layer

__all__ = ["legrad", "blocks_from", "readout_of", "rollout", "attention_probabilities", "Recorder"]


def blocks_from(model: nn.Module, layer: str) -> list[str]:
    """The block named ``layer`` and the blocks after it in the same sequence."""
    parent, _, child = layer.rpartition(".")
    container = resolve_layer(model, parent) if parent else None
    names = [n for n, _ in container.named_children()] if isinstance(container, (nn.Sequential, nn.ModuleList)) else []
    if child not in names:
        raise ValueError(f"LeGrad reads transformer blocks: name one block of the model's sequence of blocks "
                         f"(such as encoder.layers.encoder_layer_11 or clip.visual.transformer.resblocks.11), "
                         f"not {layer!r}")
    return [f"{parent}.{n}" for n in names[names.index(child):]]


def _attention(block: nn.Module, name: str) -> nn.MultiheadAttention:
    found = [m for m in block.modules() if isinstance(m, nn.MultiheadAttention)]
    if len(found) != 1:
        raise ValueError(f"LeGrad needs one torch.nn.MultiheadAttention in each block; {name} has {len(found)} "
                         "(a CNN has none; Swin's windowed attention and timm's fused Attention are not read)")
    mha = found[0]
    if mha.bias_k is not None or mha.add_zero_attn:
        raise ValueError(f"{name}: attention with added key tokens is not read by LeGrad")
    return mha


def readout_of(model: nn.Module) -> Callable:
    """The function from a block's output tokens (and the model's token inputs) to the model's
    output, as if that block were the last."""
    own = getattr(model, "readout", None)
    if callable(own):
        return own
    encoder, heads = getattr(model, "encoder", None), getattr(model, "heads", None)
    if isinstance(getattr(encoder, "ln", None), nn.Module) and isinstance(heads, nn.Module) \
            and hasattr(model, "class_token"):
        return lambda tokens, *inputs: heads(encoder.ln(tokens)[:, 0])
    raise ValueError("LeGrad needs the model's readout from a block's tokens: a torchvision VisionTransformer, a "
                     "model with a readout(tokens, *token_inputs) method (the studio's CLIP wrapper), or a CNN's "
                     "Grad-CAM instead")


def _value_heads(mha: nn.MultiheadAttention, q: torch.Tensor) -> torch.Tensor:
    """V per head, N x heads x T x d, from the attention's input (batch first)."""
    d = mha.embed_dim
    if mha._qkv_same_embed_dim:
        w, b = mha.in_proj_weight[2 * d:], None if mha.in_proj_bias is None else mha.in_proj_bias[2 * d:]
    else:
        w, b = mha.v_proj_weight, None if mha.in_proj_bias is None else mha.in_proj_bias[2 * d:]
    v = torch.nn.functional.linear(q, w, b)
    n, t, _ = v.shape
    return v.reshape(n, t, mha.num_heads, d // mha.num_heads).transpose(1, 2)


class Recorder:
    """Hooks that record, during a forward pass someone else runs (a :class:`explainers.Capture`'s,
    so that an explanation costs no second forward), what LeGrad or rollout reads: each block's
    attention input and output and the block's output tokens. Use as a context manager around
    the forward; ``seen[i]`` holds block i's records (blocks in the order the method reads them)."""

    def __init__(self, model: nn.Module, layer: str, kind: str):
        if kind not in ("legrad", "rollout"):
            raise ValueError(f"kind must be 'legrad' or 'rollout', not {kind!r}")
        self.kind, self.layer = kind, layer
        if kind == "legrad":
            self.names = blocks_from(model, layer)
        else:
            later = blocks_from(model, layer)  # checks that ``layer`` is a block of a sequence
            parent = layer.rpartition(".")[0]
            every = [f"{parent}.{n}" for n, _ in resolve_layer(model, parent).named_children()]
            self.names = every[:len(every) - len(later) + 1]
        self.blocks = [resolve_layer(model, n) for n in self.names]
        self.attns = [_attention(b, n) for b, n in zip(self.blocks, self.names)]
        self.seen: dict[int, dict] = {i: {} for i in range(len(self.blocks))}
        self._hooks = []

    def __enter__(self):
        for i, (block, mha) in enumerate(zip(self.blocks, self.attns)):
            def on_attention(module, args, kwargs, output, i=i):
                q = args[0] if args else kwargs["query"]
                self.seen[i]["q"] = q if module.batch_first else q.transpose(0, 1)
                self.seen[i]["y"] = output[0]

            def on_block(module, args, output, i=i):
                self.seen[i]["tokens"] = output
            self._hooks.append(mha.register_forward_hook(on_attention, with_kwargs=True))
            if self.kind == "legrad":
                self._hooks.append(block.register_forward_hook(on_block))
        return self

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        return False


def legrad(model: nn.Module, call: Callable, x: torch.Tensor, layer: str, score_of: Callable,
           readout: Callable, inputs: tuple = (), prefix: int = 1, grid: tuple[int, int] | None = None,
           progress=None, recorded: Recorder | None = None) -> torch.Tensor:
    """LeGrad maps, k x N x h x w (unnormalised), for the k rows of ``score_of(output)`` (k x N).
    ``call(x)`` runs the model; ``readout(tokens, *inputs)`` reads a block's tokens as the output;
    ``prefix`` tokens (the class token) are dropped from the keys; ``grid`` (h, w) defaults to a
    square. ``recorded``: a :class:`Recorder` that was active during a forward with gradients from
    the input on (a capture's): no forward of its own then."""
    rec = recorded
    if rec is None or rec.kind != "legrad" or rec.layer != layer:
        rec = Recorder(model, layer, "legrad")
        with rec:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)  # the blocks' outputs join the graph whatever the parameters' flags
                call(x)
    names, attns, seen = rec.names, rec.attns, rec.seen
    maps = None
    for i, mha in enumerate(attns):
        got = seen[i]
        if "y" not in got or "tokens" not in got:
            raise ValueError(f"{names[i]} did not run in the forward pass")
        tokens = got["tokens"]
        if tokens.dim() != 3:
            raise ValueError(f"{names[i]} gives {tuple(tokens.shape)}: LeGrad needs tokens N x T x C")
        with torch.enable_grad():
            scores = score_of(readout(tokens, *inputs))  # k x N
        v = _value_heads(mha, got["q"]).detach()  # N x H x T x d
        w_o = mha.out_proj.weight.detach()
        rows = []
        for r in range(scores.shape[0]):
            (g_y,) = torch.autograd.grad(scores[r].sum(), got["y"], retain_graph=True)
            g_y = g_y if mha.batch_first else g_y.transpose(0, 1)
            g_o = g_y @ w_o  # N x T x D: the gradient at the heads' concatenated outputs
            n, t, _ = g_o.shape
            g_o = g_o.reshape(n, t, mha.num_heads, -1).transpose(1, 2)  # N x H x T(q) x d
            g_a = g_o @ v.transpose(-1, -2)  # N x H x T(q) x T(k): dS/dA
            rows.append(g_a.clamp(min=0).mean(dim=(1, 2))[:, prefix:])
        rel = torch.stack(rows)  # k x N x patches
        maps = rel if maps is None else maps + rel
        if progress is not None:
            progress(i + 1, len(attns))
    maps = maps / len(attns)
    patches = maps.shape[-1]
    h, w = grid or (int(round(patches ** 0.5)),) * 2
    if h * w != patches:
        raise ValueError(f"{patches} patch tokens do not form a square grid; give grid=(h, w)")
    return maps.reshape(*maps.shape[:2], h, w).detach()


def attention_probabilities(mha: nn.MultiheadAttention, q: torch.Tensor) -> torch.Tensor:
    """Softmax attention probabilities, N x heads x T x T, recomputed from the attention's input
    (batch first) and its query and key projections: softmax(Q_h K_h^T / sqrt(d)). A fused kernel
    (``scaled_dot_product_attention``, what ``nn.MultiheadAttention`` runs when it is not asked
    for its weights) never forms them; recomputing them needs nothing from the kernel and no change
    to the model's forward. No attention mask is applied (a ViT's self-attention has none)."""
    d = mha.embed_dim
    if mha._qkv_same_embed_dim:
        wq, wk = mha.in_proj_weight[:d], mha.in_proj_weight[d:2 * d]
    else:
        wq, wk = mha.q_proj_weight, mha.k_proj_weight
    bq = bk = None
    if mha.in_proj_bias is not None:
        bq, bk = mha.in_proj_bias[:d], mha.in_proj_bias[d:2 * d]
    n, t, _ = q.shape
    h = mha.num_heads

    def heads(w, b):
        return torch.nn.functional.linear(q, w, b).reshape(n, t, h, d // h).transpose(1, 2)
    qh, kh = heads(wq, bq), heads(wk, bk)
    return torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d // h), dim=-1)


def rollout(model: nn.Module, call: Callable, x: torch.Tensor, layer: str, prefix: int = 1,
            grid: tuple[int, int] | None = None, head_fusion: str = "mean",
            recorded: Recorder | None = None) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, ACL 2020), N x h x w: for each block from the first of
    the chosen block's sequence up to the chosen block, the attention probabilities fused over heads
    (``mean`` or ``max``), the residual added as the identity and rows renormalised,
    0.5 A + 0.5 I; their product from the first block up; the class token's row, its own entry
    dropped, as the patch grid. Class-agnostic: it reads the attention, not the score. ``recorded``:
    a :class:`Recorder` active during a forward someone else ran (no forward of its own then)."""
    rec = recorded
    if rec is None or rec.kind != "rollout" or rec.layer != layer:
        rec = Recorder(model, layer, "rollout")
        with rec, torch.no_grad():
            call(x)
    attns = rec.attns
    inputs = {i: got["q"] for i, got in rec.seen.items() if "q" in got}
    if len(inputs) != len(attns):
        raise ValueError(f"{rec.names[len(inputs)]} did not run in the forward pass")
    joint = None
    with torch.no_grad():
        for i, mha in enumerate(attns):
            a = attention_probabilities(mha, inputs[i])
            a = a.mean(1) if head_fusion == "mean" else a.amax(1)
            eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
            a = 0.5 * a + 0.5 * eye
            a = a / a.sum(-1, keepdim=True)
            joint = a if joint is None else a @ joint
    cls = joint[:, 0, prefix:]
    patches = cls.shape[-1]
    h, w = grid or (int(round(patches ** 0.5)),) * 2
    if h * w != patches:
        raise ValueError(f"{patches} patch tokens do not form a square grid; give grid=(h, w)")
    return cls.reshape(-1, h, w)
