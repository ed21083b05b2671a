"""An agent's episode in the shapes world's navigation environment, explained frame by frame:
for each frame the action the agent chose (its most likely), the action probabilities, the
value, and the maps of the chosen action's logit and of the value, from one forward pass and
one batched backward per frame; and the figures an agent's card gives: success, return and steps
on held-out episodes (``scores``), and where its maps fall against the ground truth
(``groundtruth``)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

import explainers
from model_zoo.agents import LoadedAgent
from evaluation.metrics import pointing_hit
from model_zoo.shapes.navigation import ShapesNavigation

__all__ = ["agent_layer", "explain_episode", "contrast_map", "episode_gif", "scores", "groundtruth", "HELDOUT_SEED",
           "TOLERANCE_PX"]

HELDOUT_SEED = 90_000  # the world of held-out episodes: never used for training
TOLERANCE_PX = 4.0


def agent_layer(agent: LoadedAgent) -> str:
    """The agent's layer for its maps: its own default, or (a plugin that named none) the last
    spatial feature map, found once by ``explainers.default_layer`` and kept on the agent."""
    if agent.default_layer is None:
        agent.default_layer = explainers.default_layer(agent.model, torch.zeros(1, *agent.observation_shape))
    return agent.default_layer


def explain_episode(agent: LoadedAgent, index: int, seed: int = HELDOUT_SEED, cue: str = "none", method: str = "gradcam",
                    layer: str | None = None, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Episode ``index`` of the world ``seed``, the agent acting greedily. Per frame: ``frame``
    (64 x 64 x 3), ``probabilities``, ``value``, ``action`` (None on the last frame, after the
    episode ended), ``likeliest`` (the policy's most likely action there, the last frame too),
    ``runner_up`` (the next most likely), ``action_map``, ``value_map`` and ``contrast_map`` (why
    ``likeliest`` rather than ``runner_up``; 64 x 64 each), ``reward`` (of the action taken there)
    and ``info`` (the ground truth: cells and masks)."""
    env = ShapesNavigation(seed=seed, cue=cue)
    env.reset(seed=seed)
    frame, info = env.reset(options={"index": index})
    layer = layer or agent_layer(agent)
    out, done = [], False
    while True:
        cap = explainers.Capture(agent.model, agent.input(frame), layer=layer,
                                 pixels=explainers.get_method(method).needs_pixels)
        scores = cap.output.detach()[0]
        probs = torch.softmax(scores[:-1], 0).numpy()
        chosen, runner_up = (int(k) for k in np.argsort(-probs, kind="stable")[:2])
        e_action, e_value, e_contrast = cap.explain(method, [
            explainers.ActionLogit(chosen, agent.actions[chosen]), explainers.Value(),
            explainers.ActionContrast(chosen, runner_up, (agent.actions[chosen], agent.actions[runner_up]))])
        step = {"frame": frame, "probabilities": probs, "value": float(scores[-1]),
                "action": None if done else chosen, "likeliest": chosen, "runner_up": runner_up,
                "action_map": e_action.attribution, "value_map": e_value.attribution,
                "contrast_map": e_contrast.attribution, "reward": None, "info": info}
        out.append(step)
        if progress:
            progress(len(out), 0)
        if done:
            return out
        frame, reward, terminated, truncated, info = env.step(chosen)
        step["reward"] = float(reward)
        done = terminated or truncated


def contrast_map(agent: LoadedAgent, frame: np.ndarray, a: int, b: int, method: str = "gradcam",
                 layer: str | None = None) -> np.ndarray:
    """Why action ``a`` rather than ``b`` on one frame (64 x 64): one forward and one backward."""
    cap = explainers.Capture(agent.model, agent.input(frame), layer=layer or agent_layer(agent),
                             pixels=explainers.get_method(method).needs_pixels)
    (e,) = cap.explain(method, [explainers.ActionContrast(a, b, (agent.actions[a], agent.actions[b]))])
    return e.attribution


def episode_gif(steps: list[dict], actions, alpha: float = 0.5, scale: int = 4, ms_per_frame: int = 600) -> bytes:
    """An animated GIF of an explained episode, for slides: per frame, the frame, the chosen
    action's map and the value's map side by side (each ``scale`` times enlarged), with the step,
    the action and the value written underneath."""
    import io

    from PIL import Image, ImageDraw

    from explainers import render

    def panel(frame, m):
        (m01,) = render.normalize([np.maximum(m, 0)], "per_map")
        return render.overlay(frame, m01, alpha)

    pictures = []
    for k, step in enumerate(steps):
        row = np.concatenate([step["frame"], panel(step["frame"], step["action_map"]),
                              panel(step["frame"], step["value_map"])], 1)
        big = Image.fromarray(row).resize((row.shape[1] * scale, row.shape[0] * scale), Image.NEAREST)
        canvas = Image.new("RGB", (big.width, big.height + 22), "white")
        canvas.paste(big, (0, 0))
        act = "episode over" if step["action"] is None else f"action {actions[step['action']]}"
        ImageDraw.Draw(canvas).text((4, big.height + 5), f"step {k}: {act}, value {step['value']:+.2f}   "
                                    "| frame | action's map | value's map", fill="black")
        pictures.append(canvas)
    out = io.BytesIO()
    pictures[0].save(out, format="GIF", save_all=True, append_images=pictures[1:], duration=ms_per_frame, loop=0)
    return out.getvalue()


def _greedy(agent: LoadedAgent, frame: np.ndarray) -> int:
    with torch.no_grad():
        return int(torch.argmax(agent.model(agent.input(frame))[0, :-1]))


def scores(agent: LoadedAgent | None, episodes: int, seed: int = HELDOUT_SEED, cue: str = "none") -> dict:
    """Episodes ``0..episodes-1`` of the world ``seed`` played greedily by ``agent``, or by a
    uniformly random policy (seeded by ``seed``) when ``agent`` is None: the share that reach the
    goal, the share that end on a distractor, the mean return and the mean steps."""
    env = ShapesNavigation(seed=seed, cue=cue)
    env.reset(seed=seed)
    rng = np.random.default_rng([seed, 5])
    won = lost = steps = 0
    total = 0.0
    for i in range(episodes):
        frame, _ = env.reset(options={"index": i})
        while True:
            a = int(rng.integers(env.action_space.n)) if agent is None else _greedy(agent, frame)
            frame, reward, terminated, truncated, _ = env.step(a)
            total += reward
            steps += 1
            if terminated or truncated:
                won += reward > 0
                lost += terminated and reward < 0
                break
    n = max(episodes, 1)
    return {"episodes": episodes, "cue": cue, "success": won / n, "hit_distractor": lost / n,
            "mean_return": total / n, "mean_steps": steps / n}


def _mass(m: np.ndarray, mask: np.ndarray) -> float:
    pos = np.maximum(m, 0)
    return float(pos[mask].sum() / pos.sum()) if pos.sum() > 0 else 0.0


def groundtruth(agent: LoadedAgent, episodes: int, seed: int = HELDOUT_SEED, cue: str = "none",
                method: str = "gradcam", layer: str | None = None) -> dict:
    """Where the chosen action's map falls, over every step of episodes ``0..episodes-1``:

    * ``peak_on_goal_or_agent``: the share of steps whose map peaks within ``TOLERANCE_PX`` of the
      goal's or the agent's pixels;
    * on the steps where a distractor is nearer the agent than the goal (grid steps):
      ``goal_beats_nearer_distractor``, the share where the goal's pixels hold more of the map's
      positive mass than that distractor's, and the mean masses of both;
    * ``cue_mass``: under ``cue="lying"`` (the first distractor is the red one; None otherwise),
      the mean share of the positive mass on the red distractor on each episode's first frame,
      and ``goal_mass_first_frame`` beside it. The first frames are the same observations for
      every agent, so two agents' cue masses compare pairwise; later frames depend on where each
      agent went (one that wanders adds frames, and mass, of its own)."""
    hits = steps = near = wins = 0
    goal_mass, dis_mass, cue_mass, first_goal = [], [], [], []
    for i in range(episodes):
        for t, step in enumerate(explain_episode(agent, i, seed, cue, method, layer)):
            if step["action"] is None:
                continue
            info, m = step["info"], step["action_map"]
            masks = info["masks"]
            steps += 1
            hits += pointing_hit(m, masks["goal"] | masks["agent"], TOLERANCE_PX)
            if cue == "lying" and t == 0:
                cue_mass.append(_mass(m, masks["distractors"][0]))
                first_goal.append(_mass(m, masks["goal"]))
            ax, ay = info["agent_cell"]
            far = abs(ax - info["goal_cell"][0]) + abs(ay - info["goal_cell"][1])
            nearer = [(abs(ax - c) + abs(ay - r), k) for k, (c, r) in enumerate(info["distractor_cells"])
                      if abs(ax - c) + abs(ay - r) < far]
            if nearer:
                k = min(nearer)[1]
                g, d = _mass(m, masks["goal"]), _mass(m, masks["distractors"][k])
                near += 1
                wins += g > d
                goal_mass.append(g)
                dis_mass.append(d)
    return {"episodes": episodes, "steps": steps, "cue": cue, "method": method,
            "layer": layer or agent_layer(agent), "tolerance_px": TOLERANCE_PX,
            "peak_on_goal_or_agent": hits / max(steps, 1),
            "steps_with_nearer_distractor": near, "goal_beats_nearer_distractor": wins / max(near, 1),
            "goal_mass_when_distractor_nearer": float(np.mean(goal_mass)) if goal_mass else None,
            "distractor_mass_when_nearer": float(np.mean(dis_mass)) if dis_mass else None,
            "cue_mass": float(np.mean(cue_mass)) if cue_mass else None,
            "goal_mass_first_frame": float(np.mean(first_goal)) if first_goal else None}
