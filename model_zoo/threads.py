"""PyTorch's intra-op threads: the app's rule per model, and the command lines' rule per machine.

The app (``torch_threads``): a small model's pass (the shapes models: under 1 M parameters, a forward of ~1.5 ms) gains
nothing from a second thread, and with anything else on the same cores (the browser, a second
process) its OpenMP threads wait on each other: in the app a 2 ms backward took 50 to 470 ms now
and then (bench/README.md, "In the browser"). Large models keep every thread: one alone makes
resnet50's forward 1.6x slower on an idle machine.

The command lines (``for_batch_work``): they run batches (evaluation's deletion curves,
Score-CAM's masked images), where a second thread pays even on the shapes models, unless other
processes hold the cores. Measured on this 2-core machine (``python -m cli.evaluate --model
shapes-resnet``, every method): idle, 20 images took 75.6 s on 2 threads and 126.2 s on 1; with
two busy processes beside it, 10 images took 261.4 s on 2 threads and 106.8 s on 1. So they use
the cores that are free when they start (``/proc/stat`` sampled for a quarter second), at least
one: idle, this rule took 78.4 s for the 20 images (2 threads)."""
from __future__ import annotations

import contextlib
import os
import time

import torch
from torch import nn

__all__ = ["SMALL_MODEL_PARAMETERS", "ALL_THREADS", "threads_for", "torch_threads", "parameters", "free_cores",
           "for_batch_work"]

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


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat; None where there is no /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields)  # idle + iowait


def free_cores(sample_s: float = 0.25) -> float | None:
    """How many cores other processes leave idle, over ``sample_s`` seconds (None: unknown)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample_s)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def for_batch_work(free: float | None = None) -> int:
    """Threads for a command line's batch work: the free cores (rounded, at least one, at most
    ``ALL_THREADS``); all of them when the load cannot be read."""
    free = free_cores() if free is None else free
    if free is None:
        return ALL_THREADS
    return max(1, min(ALL_THREADS, int(free + 0.5)))
