"""An agent's episode in the shapes world's navigation environment, explained frame by frame:
for each frame the action the agent chose (its most likely), the action probabilities, the
value, and the maps of the chosen action's logit and of the value, from one forward pass and
one batched backward per frame."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

import explainers
from model_zoo.agents import LoadedAgent
from model_zoo.shapes.navigation import ShapesNavigation

__all__ = ["explain_episode"]


def explain_episode(agent: LoadedAgent, index: int, seed: int = 90_000, cue: str = "none", method: str = "gradcam",
                    layer: str | None = None, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Episode ``index`` of the world ``seed``, the agent acting greedily. Per frame: ``frame``
    (64 x 64 x 3), ``probabilities``, ``value``, ``action`` (None on the last frame, after the
    episode ended), ``action_map`` and ``value_map`` (64 x 64), ``reward`` (of the action taken
    there) and ``info`` (the ground truth: cells and masks)."""
    env = ShapesNavigation(seed=seed, cue=cue)
    env.reset(seed=seed)
    frame, info = env.reset(options={"index": index})
    layer = layer or agent.default_layer
    out, done = [], False
    while True:
        cap = explainers.Capture(agent.model, agent.input(frame), layer=layer,
                                 pixels=explainers.get_method(method).needs_pixels)
        scores = cap.output.detach()[0]
        probs = torch.softmax(scores[:-1], 0).numpy()
        chosen = int(np.argmax(probs))
        e_action, e_value = cap.explain(method, [explainers.ActionLogit(chosen, agent.actions[chosen]),
                                                 explainers.Value()])
        step = {"frame": frame, "probabilities": probs, "value": float(scores[-1]),
                "action": None if done else chosen, "action_map": e_action.attribution,
                "value_map": e_value.attribution, "reward": None, "info": info}
        out.append(step)
        if progress:
            progress(len(out), 0)
        if done:
            return out
        frame, reward, terminated, truncated, info = env.step(chosen)
        step["reward"] = float(reward)
        done = terminated or truncated
