"""Training the shapes world's navigation agents: seeded, on the CPU, in minutes, with a card.

Two stages, both seeded:

1. **Imitation** of the shortest-path oracle, supervised: frames of training episodes with the
   agent on every free cell (every state the environment can show, not only the oracle's own
   walks, so the policy has seen where its own mistakes lead), each labelled with all the actions
   that start a shortest walk to the goal (an even share of the target each) and with the return
   the oracle earns from there (the value head's target).
2. **Reinforcement**: Stable-Baselines3's PPO fine-tunes the whole network on the environment's
   own reward. The network is Stable-Baselines3's ``ActorCriticCnnPolicy`` with the studio's trunk
   as its features extractor and ``net_arch=[]``, so its tensors map one to one onto the plain
   torch ``ShapesAgent`` that ships (the app runs without Stable-Baselines3).

Why not PPO alone: from scratch, 20,000 PPO steps on this machine took 740 s and left the agent
at 6.5% success; recognising the circle among seven other shapes from a sparse reward needs far
more. Imitation gives the recognition in a couple of minutes, PPO then optimises the reward
itself. The card reports the figures after each stage, measured on held-out episodes of a seed
never used for training, beside a random policy's.

Stable-Baselines3 is a dev extra (the shipped weights are plain torch, the app runs without it);
training a recipe with PPO steps without it is refused with a message that says how to install it.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from model_zoo.shapes import navigation as nav
from model_zoo.shapes.nets import AGENT_LAYER, ShapesAgent
from model_zoo.shapes.recipes import AGENT_RECIPES, AgentRecipe
from model_zoo.weights import sha256_of

__all__ = ["AgentRecipe", "AGENT_RECIPES", "oracle_states", "train_agent", "GAMMA"]

GAMMA = 0.99
VF_COEF = 0.5


def _return_from(d: int) -> float:
    """The discounted return of a shortest walk of ``d`` steps to the goal."""
    return sum(nav.STEP_COST * GAMMA ** k for k in range(d - 1)) + GAMMA ** (d - 1)


def oracle_states(seed: int, episodes: int, per_episode: int, cue: str = "none", distractors: int = 2,
                  progress=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Imitation data: per episode of the world ``seed``, up to ``per_episode`` free cells (drawn
    without replacement, seeded) with the agent drawn there. Returns frames (N x 3 x 64 x 64
    uint8), action targets (N x 4, the optimal actions' even shares) and value targets (N)."""
    rng = np.random.default_rng([seed, 11])
    frames, targets, values = [], [], []
    for i in range(episodes):
        lay = nav.layout(seed, i, distractors, cue)
        dist = nav.distances(lay.goal, lay.distractors)
        free = [c for c in dist if c != lay.goal]
        for k in rng.permutation(len(free))[:per_episode]:
            cell = free[int(k)]
            best = nav.optimal_actions(cell, lay.goal, lay.distractors, dist)
            t = np.zeros(len(nav.ACTIONS), np.float32)
            t[best] = 1.0 / len(best)
            frames.append(nav.render(lay, cell))
            targets.append(t)
            values.append(_return_from(dist[cell]))
        if progress is not None:
            progress.update(1)
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(np.stack(targets)), torch.tensor(values, dtype=torch.float32)


def _imitate(model: ShapesAgent, recipe: AgentRecipe, show_progress: bool) -> None:
    with tqdm(total=recipe.episodes, desc=f"{recipe.id}: oracle states", unit="episode",
              disable=not show_progress) as bar:
        x, t, v = oracle_states(recipe.seed, recipe.episodes, recipe.states_per_episode, recipe.cue, progress=bar)
    g = torch.Generator().manual_seed(recipe.seed)
    per_epoch = max(1, len(x) // recipe.batch)  # a tiny run (a test's) takes one smaller batch
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * per_epoch)
    model.train()
    with tqdm(total=recipe.epochs * per_epoch, desc=f"{recipe.id}: imitation", unit="batch",
              disable=not show_progress) as bar:
        for _ in range(recipe.epochs):
            order = torch.randperm(len(x), generator=g)
            for b in range(per_epoch):
                idx = order[b * recipe.batch:(b + 1) * recipe.batch]
                out = model(x[idx].float())
                loss = F.cross_entropy(out[:, :-1], t[idx]) + F.mse_loss(out[:, -1], v[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
    model.eval()


def _sb3_policy_class():
    """Stable-Baselines3's features extractor around the studio's trunk (imported lazily: a dev extra)."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from model_zoo.shapes.nets import AgentTrunk

    class StudioTrunk(BaseFeaturesExtractor):
        def __init__(self, observation_space, features_dim: int = 256):
            super().__init__(observation_space, features_dim)
            self.trunk = AgentTrunk(observation_space.shape[0], features_dim)

        def forward(self, observations):
            return self.trunk(observations)

    return StudioTrunk


def _ppo(model: ShapesAgent, recipe: AgentRecipe):
    """Stable-Baselines3's PPO on the navigation environment (8 seeded copies), its policy holding
    ``model``'s weights."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(nav.ShapesNavigation, n_envs=8, seed=recipe.seed + 1,
                       env_kwargs={"seed": recipe.seed + 1, "cue": recipe.cue})
    ppo = PPO("CnnPolicy", env, learning_rate=recipe.ppo_lr, n_steps=256, batch_size=256, n_epochs=4,
              gamma=GAMMA, ent_coef=0.001, vf_coef=VF_COEF, seed=recipe.seed, device="cpu", verbose=0,
              policy_kwargs={"features_extractor_class": _sb3_policy_class(), "net_arch": [],
                             "features_extractor_kwargs": {"features_dim": model.trunk.features}})
    missing, unexpected = ppo.policy.load_state_dict(_to_sb3(model.state_dict()), strict=False)
    if unexpected or [k for k in missing if k != "log_std"]:
        raise RuntimeError(f"the agent's tensors do not map onto the PPO policy: {unexpected or missing}")
    return ppo


def _reinforce(model: ShapesAgent, recipe: AgentRecipe, show_progress: bool) -> None:
    """PPO on the environment's reward, starting from ``model``'s weights; copies the result back."""
    ppo = _ppo(model, recipe)
    with tqdm(total=recipe.ppo_steps, desc=f"{recipe.id}: PPO", unit="step", disable=not show_progress) as bar:
        ppo.learn(recipe.ppo_steps, callback=_progress_callback(bar))
    model.load_state_dict(_from_sb3(ppo.policy.state_dict()))
    ppo.get_env().close()


def _progress_callback(bar):
    """A Stable-Baselines3 callback that moves a tqdm bar (its own needs ``rich``)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            bar.update(self.training_env.num_envs)
            return True

    return Progress()


def _to_sb3(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        if k.startswith("trunk."):
            for name in ("features_extractor", "pi_features_extractor", "vf_features_extractor"):
                out[f"{name}.{k}"] = v
        else:
            out[k] = v
    return out


def _from_sb3(state: dict) -> dict:
    return {k.removeprefix("features_extractor."): v for k, v in state.items()
            if k.startswith(("features_extractor.trunk.", "action_net.", "value_net."))}


def _has_sb3() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def train_agent(recipe: AgentRecipe, out_dir: Path, heldout: int = 300, show_progress: bool = True) -> dict:
    """Train ``recipe`` and write ``<id>.pt`` and ``<id>.json`` into ``out_dir``; return the card:
    per cue, the success, return and steps on ``heldout`` held-out episodes (``rl.scores``) and
    where the chosen action's Grad-CAM falls (``rl.groundtruth``), the random policy's figures,
    and the figures after the imitation stage alone. Seeded within ``torch.random.fork_rng``."""
    from evaluation import rl  # the card's measures
    from model_zoo.agents import LoadedAgent
    if recipe.ppo_steps and not _has_sb3():
        raise RuntimeError(f"{recipe.id}'s recipe fine-tunes with Stable-Baselines3's PPO, which is not installed: "
                           "pip install -r requirements-dev.txt (./studio test installs it), or --ppo-steps 0")
    with torch.random.fork_rng():
        torch.manual_seed(recipe.seed)
        started = time.perf_counter()
        model = ShapesAgent(len(nav.ACTIONS))
        _imitate(model, recipe, show_progress)
        imitation_s = time.perf_counter() - started
        agent = LoadedAgent(model, "torch", (3, 64, 64), nav.ACTIONS, AGENT_LAYER, "", recipe.id)
        after_imitation = rl.scores(agent, heldout, rl.HELDOUT_SEED, recipe.cue)
        ppo = None
        if recipe.ppo_steps:
            _reinforce(model, recipe, show_progress)
            model.eval()
            ppo = {"steps": recipe.ppo_steps, "learning_rate": recipe.ppo_lr}
        seconds = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{recipe.id}.pt"
    torch.save(model.state_dict(), path)
    card = {"id": recipe.id, "title": recipe.title, "task": "agent", "recipe": asdict(recipe),
            "training": {"imitation_seconds": round(imitation_s, 1), "ppo": ppo},
            "heldout_seed": rl.HELDOUT_SEED, "heldout_episodes": heldout,
            "after_imitation": after_imitation,
            "heldout": {cue: rl.scores(agent, heldout, rl.HELDOUT_SEED, cue) for cue in nav.CUES},
            "random_policy": rl.scores(None, heldout, rl.HELDOUT_SEED, recipe.cue),
            "gradcam": {cue: rl.groundtruth(agent, heldout, rl.HELDOUT_SEED, cue) for cue in nav.CUES},
            "parameters": sum(p.numel() for p in model.parameters()),
            "training_seconds": round(seconds, 1), "torch": torch.__version__, "machine": platform.machine(),
            "threads": torch.get_num_threads(), "sha256": sha256_of(path),
            "retrain": f"./studio shapes train --model {recipe.id}"}
    (out_dir / f"{recipe.id}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
