"""Guided Backpropagation (Springenberg et al., 2015) without touching the model.

At every ReLU the backward signal is R^l = (f^l > 0) * (R^{l+1} > 0) * R^{l+1}: the usual ReLU
mask on the forward input, plus a mask that lets only positive gradients through. A
``TorchFunctionMode`` sees every ReLU the forward pass runs (``nn.ReLU``, in-place ReLU and
functional ``F.relu`` alike, and ReLU6, ``min(max(x, 0), 6)``, of the mobile networks:
``nn.ReLU6``, ``F.relu6``, ``F.hardtanh`` with a lower bound of 0) and puts a gradient hook on
its output that clamps the incoming gradient at zero; the ReLU's own backward applies the forward mask. The hook consults a
per-call :class:`GuidedSwitch`, so one forward pass can serve both the exact gradient (for
Grad-CAM) and the guided one (for Guided Backprop). The mode is thread-local; the hooks live on
the call's own tensors and die with its graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["GuidedSwitch", "guided_relus"]

_RELUS = frozenset({F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6})
_HARDTANH = frozenset({F.hardtanh, F.hardtanh_})


def _is_relu(func, args, kwargs) -> bool:
    """A ReLU, or a hardtanh clipped below at 0 (nn.ReLU6 calls F.hardtanh(x, 0, 6))."""
    if func in _RELUS:
        return True
    if func in _HARDTANH:
        low = args[1] if len(args) > 1 else (kwargs or {}).get("min_val", -1.0)
        return low == 0
    return False


class GuidedSwitch:
    """Decides, at backward time, whether ReLU gradients are guided (clamped) or exact."""

    __slots__ = ("guided", "relus")

    def __init__(self, guided: bool = False):
        self.guided = guided
        self.relus = 0  # ReLUs hooked so far in the forward pass (where the layer sits among them)

    def hook(self, grad: torch.Tensor):
        return grad.clamp(min=0) if self.guided else None


class guided_relus(TorchFunctionMode):
    """Context manager: ReLUs run inside it get the guided-backprop gradient hook."""

    def __init__(self, switch: GuidedSwitch):
        super().__init__()
        self.switch = switch

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.requires_grad and _is_relu(func, args, kwargs):
            out.register_hook(self.switch.hook)
            self.switch.relus += 1
        return out
