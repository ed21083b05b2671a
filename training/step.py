"""One optimiser step of the shapes world's training loops, with its progress bar."""
from __future__ import annotations

__all__ = ["step"]


def step(opt, sched, loss, bar) -> None:
    """Backward ``loss``, step the optimiser and its schedule, and advance ``bar`` showing the loss."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    bar.update(1)
    bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
