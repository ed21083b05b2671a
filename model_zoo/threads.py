"""PyTorch's intra-op threads per model, one rule for the app, the CLI and evaluation.

A small model's pass (the shapes models: under 1 M parameters, a forward of ~1.5 ms) gains
nothing from a second thread, and with anything else on the same cores (the browser, a second
process) its OpenMP threads wait on each other: in the app a 2 ms backward took 50 to 470 ms now
and then (bench/README.md, "In the browser"), and ``./studio eval`` on shapes-resnet ran 3x
slower on a busy machine than with ``OMP_NUM_THREADS=1``. Large models keep every thread: one
alone makes resnet50's forward 1.6x slower on an idle machine."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["SMALL_MODEL_PARAMETERS", "ALL_THREADS", "threads_for", "torch_threads", "parameters"]

SMALL_MODEL_PARAMETERS = 2_000_000
ALL_THREADS = torch.get_num_threads()


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def threads_for(n_parameters: int) -> int:
    """The intra-op threads a model of ``n_parameters`` should use: 1 below
    ``SMALL_MODEL_PARAMETERS``, else all of them (``ALL_THREADS``, torch's at import)."""
    return 1 if n_parameters < SMALL_MODEL_PARAMETERS else ALL_THREADS


@contextlib.contextmanager
def torch_threads(n_parameters: int):
    """Run the block with :func:`threads_for` threads; all of them again afterwards."""
    wanted = threads_for(n_parameters)
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if torch.get_num_threads() != ALL_THREADS:
            torch.set_num_threads(ALL_THREADS)
