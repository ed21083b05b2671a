"""Layer outputs of any layout as N x C x h x w maps: convolutional maps, transformer tokens and
channels-last grids, by one documented rule that a caller can override with ``reshape=``.

The rule (:func:`to_maps`), for a layer's output ``t``:

- ``N x C x h x w``: used as is (a CNN's feature map) ...
- ... unless the layer is channels-last: its output's last axis is the width of a LayerNorm that
  is the layer itself or the last LayerNorm inside it (Swin's blocks and norms, ConvNeXt-style
  ``N x h x w x C`` stages), and the second axis is not that width; then it is permuted to
  ``N x C x h x w``.
- ``N x T x C`` (tokens, ViT): T = h * w with a square grid (no class token), or T = 1 + h * w
  (the first token is the class token and is dropped, as pytorch-grad-cam's documented ViT
  reshape transform does). Any other T is an error that asks for ``reshape=``.

``reshape``, when given, is a callable from the layer's output to ``N x C x h x w``; it must only
rearrange values (a view, permute, slice), since it is applied to the gradients as well.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = ["Layout", "layout_of", "to_maps"]


@dataclass(frozen=True)
class Layout:
    """How one layer's output becomes ``N x C x h x w``: ``kind`` is "nchw", "nhwc", "tokens"
    or "custom"; ``prefix`` the tokens dropped in front (the class token); ``grid`` (h, w)."""

    kind: str
    grid: tuple[int, int]
    prefix: int = 0
    reshape: Callable | None = None
    ndim: int = 4

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (N x ...) as N x C x h x w; extra leading axes (k x N x ...) are kept."""
        if self.kind == "custom":
            if t.dim() == self.ndim:
                return self.reshape(t)
            return self.reshape(t.flatten(0, 1)).unflatten(0, tuple(t.shape[:2]))
        if self.kind == "nchw":
            return t
        if self.kind == "nhwc":
            return t.movedim(-1, -3)
        h, w = self.grid
        tokens = t[..., self.prefix:, :]
        return tokens.reshape(*tokens.shape[:-2], h, w, tokens.shape[-1]).movedim(-1, -3)

    @property
    def channel_axis(self) -> int:
        """The channel axis in the layer's own (batched) layout: 1 for N x C x h x w, -1 for
        tokens and channels-last grids. Undefined for a custom reshape."""
        if self.kind == "custom":
            raise ValueError("this method needs to change single channels of the layer's output, "
                             "which a custom reshape= does not say how to find")
        return 1 if self.kind == "nchw" else -1

    def describe(self) -> str:
        if self.kind == "tokens":
            drop = " after the class token" if self.prefix else ""
            return f"tokens{drop} as a {self.grid[0]}x{self.grid[1]} grid"
        return {"nchw": "N x C x h x w map", "nhwc": "channels-last grid, permuted",
                "custom": "reshaped by the caller's reshape="}[self.kind]


def _last_layernorm_width(module: nn.Module) -> int | None:
    norms = [m for m in module.modules() if isinstance(m, nn.LayerNorm)]
    if not norms or len(norms[-1].normalized_shape) != 1:
        return None
    return int(norms[-1].normalized_shape[0])


def _square(n: int) -> int | None:
    r = math.isqrt(n)
    return r if r * r == n and r > 0 else None


def layout_of(name: str, module: nn.Module, output, reshape: Callable | None = None) -> Layout:
    """The layout of ``module``'s ``output`` under the rule above, or a ``ValueError`` naming
    the shape and the way out (``reshape=``)."""
    if not isinstance(output, torch.Tensor):
        raise ValueError(f"layer {name!r} outputs a {type(output).__name__}; pick a layer whose "
                         "output is one tensor (N x C x h x w, tokens N x T x C or N x h x w x C)")
    if reshape is not None:
        try:
            maps = reshape(output.detach())
        except Exception as err:  # the caller's code: report it with the shape it was given
            raise ValueError(f"reshape= failed on layer {name!r}'s output of shape "
                             f"{tuple(output.shape)}: {err}") from err
        if not isinstance(maps, torch.Tensor) or maps.dim() != 4 or maps.shape[0] != output.shape[0]:
            got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
            raise ValueError(f"reshape= must return N x C x h x w for layer {name!r}; it returned {got}")
        return Layout("custom", (int(maps.shape[-2]), int(maps.shape[-1])), reshape=reshape, ndim=output.dim())
    shape = tuple(output.shape)
    if output.dim() == 4:
        width = _last_layernorm_width(module)
        if width is not None and shape[-1] == width and shape[1] != width:
            return Layout("nhwc", (shape[1], shape[2]))
        return Layout("nchw", (shape[2], shape[3]))
    if output.dim() == 3:
        t = shape[1]
        for prefix in (0, 1):
            side = _square(t - prefix)
            if side:
                return Layout("tokens", (side, side), prefix)
        raise ValueError(f"layer {name!r} outputs {t} tokens (shape {shape}), neither a square grid "
                         "nor a class token plus a square grid; pass reshape= (a function from the "
                         "output to N x C x h x w)")
    raise ValueError(f"layer {name!r} outputs a tensor of shape {shape}; Grad-CAM needs a spatial "
                     "map (N x C x h x w), tokens (N x T x C) or a channels-last grid (N x h x w x C)")


def to_maps(name: str, module: nn.Module, output: torch.Tensor, reshape: Callable | None = None) -> torch.Tensor:
    """``output`` as N x C x h x w under the rule (see the module docstring)."""
    return layout_of(name, module, output, reshape).apply(output)
