"""Agents to explain: a policy as a plain torch module whose output is ``[N, actions + 1]`` (the
action logits, then the value estimate), the layout ``explainers.targets``' agent targets read.
Its input is a frame in pixel units (N x C x H x W floats, 0 to 255).

Three ways in:

* the registry: the shipped shapes-world agents, and any torch policy a plugin registers with
  ``register_agent`` (the plugin route: ``STUDIO_MODELS=my_agents.py``); ``load_agent(id)``;
* ``from_sb3(path)``: a Stable-Baselines3 zip;
* Atari through ``model_zoo.atari`` (a zip trained there, maps on the newest frame).

``from_sb3(path)`` loads a Stable-Baselines3 ``.zip`` (PPO or A2C with a ``CnnPolicy``, or DQN)
without Stable-Baselines3 and without unpickling anything: the zip's ``policy.pth`` is read as a
plain state dict (``weights.read_state_dict``, ``weights_only=True``), the architecture is the
one ``CnnPolicy`` builds (NatureCNN: convolutions of 8, 4 and 3 pixels at strides 4, 2 and 1, a
linear layer, the action and value heads), checked against every tensor's shape, and the
observation space's shape and dtype come from the zip's ``data`` JSON (its readable fields,
not its pickled ones). Stable-Baselines3's own ``load`` unpickles parts of ``data``, which can
run code: a file from elsewhere is not loaded that way. DQN's output is its Q-values, then their
maximum (the value of the greedy policy).

Observations go in as Stable-Baselines3 feeds them: channels first, and images scaled by 1/255
inside the network (``normalize_images``), so the input (a frame's pixels as floats, 0 to 255)
is what Grad-CAM's pixel-space methods differentiate.
"""
from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .preprocess import Preprocess
from .registry import UNTRAINED, ModelSpec, fixed_path, get_spec, list_models, load, register
from .weights import WeightsError, read_state_dict

__all__ = ["NatureActorCritic", "LoadedAgent", "from_sb3", "frame_to_input", "register_agent", "load_agent",
           "agent_ids", "AGENT_TASK"]

AGENT_TASK = "agent"


class NatureActorCritic(nn.Module):
    """Stable-Baselines3's ``CnnPolicy`` in plain torch: NatureCNN (Mnih et al. 2015) on
    ``channels`` x H x W, a ``features``-wide linear layer, then ``actions`` logits and a value
    (``dqn=True``: Q-values, then their maximum). The input is in pixel units (0 to 255)."""

    def __init__(self, channels: int, size: tuple[int, int], actions: int, features: int = 512, dqn: bool = False):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(channels, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                                 nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, channels, *size)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features), nn.ReLU())
        self.action_net = nn.Linear(features, actions)
        self.value_net = None if dqn else nn.Linear(features, 1)

    def forward(self, x):
        h = self.linear(self.cnn(x / 255.0))
        scores = self.action_net(h)
        value = scores.max(1, keepdim=True).values if self.value_net is None else self.value_net(h)
        return torch.cat([scores, value], 1)


@dataclass
class LoadedAgent:
    model: nn.Module
    algorithm: str  # "PPO", "A2C", "DQN"
    observation_shape: tuple[int, ...]  # as the policy takes it: channels first
    actions: tuple[str, ...]
    default_layer: str | None  # None: the last spatial map, found when first explained (evaluation.rl)
    sha256: str
    source: str

    def check_frame(self, frame: np.ndarray) -> None:
        """A frame from an environment (H x W x C or C x H x W) this policy can take, or a
        message naming both shapes."""
        c, h, w = self.observation_shape
        if tuple(frame.shape) not in ((h, w, c), (c, h, w)):
            raise ValueError(f"this agent ({self.source}) takes observations of shape {c}x{h}x{w} (channels first; "
                             f"{h}x{w}x{c} channels last), but the environment gives {'x'.join(map(str, frame.shape))}")

    def input(self, frame: np.ndarray) -> torch.Tensor:
        """The policy's input for one frame: 1 x C x H x W floats in pixel units."""
        self.check_frame(frame)
        return frame_to_input(frame, self.observation_shape)


def frame_to_input(frame: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """A frame (channels last, or already first) as a 1 x C x H x W float tensor, 0 to 255."""
    x = torch.as_tensor(np.asarray(frame), dtype=torch.float32)
    if tuple(x.shape) != tuple(shape):
        x = x.permute(2, 0, 1)
    return x.unsqueeze(0).contiguous()


_SB3_PREFIXES = {  # algorithm -> (the features extractor's prefix, the action head, the value head)
    "PPO": ("features_extractor.", "action_net.", "value_net."),
    "A2C": ("features_extractor.", "action_net.", "value_net."),
    "DQN": ("q_net.features_extractor.", "q_net.q_net.0.", None),
}


def from_sb3(path, actions: tuple[str, ...] | None = None) -> LoadedAgent:
    """A Stable-Baselines3 ``.zip`` (PPO, A2C or DQN with ``CnnPolicy``) as a :class:`LoadedAgent`;
    a clear :class:`WeightsError` for a file that is not one, or a policy built otherwise (a
    custom features extractor, an MLP after the CNN: load those through the plugin route)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
            with z.open("policy.pth") as f:
                blob = f.read()
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as err:
        raise WeightsError(f"{path.name} is not a Stable-Baselines3 model zip (it needs 'data' and 'policy.pth'): "
                           f"{err}") from None
    module = str((data.get("policy_class") or {}).get("__module__", ""))  # readable beside the pickled class
    algorithm = "DQN" if ".dqn." in module else "PPO" if "clip_range" in data else "A2C"
    space = data.get("observation_space") or {}
    raw = space.get("_shape", space.get("shape"))
    if not isinstance(raw, list) or not all(isinstance(v, int) for v in raw):
        raise WeightsError(f"{path.name}: its observation space has no readable shape: not a Stable-Baselines3 "
                           "image policy")
    shape = tuple(raw)
    if len(shape) != 3:
        raise WeightsError(f"{path.name}: observations of shape {'x'.join(map(str, shape))}; image policies take "
                           "C x H x W")
    with tempfile.TemporaryDirectory(prefix="studio-sb3-") as tmp:
        inner = Path(tmp) / "policy.pth"
        inner.write_bytes(blob)
        state, digest = read_state_dict(inner, f"{path.name}:policy.pth")
    feats, act, val = _SB3_PREFIXES[algorithm]
    need = [f"{feats}cnn.0.weight", f"{feats}cnn.2.weight", f"{feats}cnn.4.weight", f"{feats}linear.0.weight",
            f"{act}weight"]
    missing = [k for k in need if k not in state]
    if missing:
        raise WeightsError(f"{path.name}: not a CnnPolicy with NatureCNN (no {', '.join(missing[:3])}); "
                           "load a policy built otherwise through the plugin route (README, 'Explain your own model')")
    mlp = [k for k in state if k.startswith(("mlp_extractor.policy_net.", "mlp_extractor.value_net.", "q_net.q_net.2"))]
    if mlp:
        raise WeightsError(f"{path.name}: its policy has hidden layers after the CNN ({mlp[0]}, ...), whose activation "
                           "the file does not say without unpickling; load it through the plugin route")
    n_actions = int(state[f"{act}weight"].shape[0])
    model = NatureActorCritic(shape[0], shape[1:], n_actions, int(state[f"{feats}linear.0.weight"].shape[0]),
                              dqn=algorithm == "DQN")
    ours = {f"cnn.{k}": f"{feats}cnn.{k}" for k in ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias")}
    ours.update({"linear.0.weight": f"{feats}linear.0.weight", "linear.0.bias": f"{feats}linear.0.bias",
                 "action_net.weight": f"{act}weight", "action_net.bias": f"{act}bias"})
    if val is not None:
        ours.update({"value_net.weight": f"{val}weight", "value_net.bias": f"{val}bias"})
    wrong = [f"{theirs} {tuple(state[theirs].shape)} (expected {tuple(p.shape)})"
             for mine, p in model.state_dict().items() for theirs in [ours[mine]]
             if theirs in state and tuple(state[theirs].shape) != tuple(p.shape)]
    absent = [ours[m] for m in model.state_dict() if ours[m] not in state]
    if wrong or absent:
        raise WeightsError(f"{path.name}: its tensors do not fit a NatureCNN policy on {'x'.join(map(str, shape))}: "
                           + "; ".join([*wrong, *(f"no {a}" for a in absent)][:4]))
    model.load_state_dict({mine: state[theirs] for mine, theirs in ours.items()})
    names = tuple(actions) if actions else tuple(f"action {k}" for k in range(n_actions))
    if len(names) != n_actions:
        raise ValueError(f"{len(names)} action names given for an agent with {n_actions} actions")
    return LoadedAgent(model.eval(), algorithm, shape, names, "cnn.5", digest, path.name)


def register_agent(id: str, build, *, actions, observation_shape=(3, 64, 64), weights=None,
                   default_layer: str | None = None, title: str | None = None, family: str = "plugin",
                   description: str = "") -> ModelSpec:
    """Register a torch policy of your own (the plugin route for agents). ``build()`` returns the
    network: frames in pixel units (N x C x H x W, 0 to 255) to ``[N, len(actions) + 1]``, the
    action logits then the value estimate. ``observation_shape`` is the frame it takes, channels
    first; ``weights`` the path of its state dict (None: ``load_agent(id, weights=PATH)`` gives
    one; ``"untrained"``: a random initialisation, named as such); ``default_layer`` None: the last spatial feature map, found when first explained."""
    from functools import partial
    from pathlib import Path as _Path
    shape = tuple(int(v) for v in observation_shape)
    if len(shape) != 3:
        raise ValueError(f"observation_shape must be C x H x W, got {observation_shape!r}")
    untrained = isinstance(weights, str) and weights == UNTRAINED
    path = _Path(weights).expanduser().resolve() if weights is not None and not untrained \
        else _Path(f"<no weights file for {id}>")
    return register(ModelSpec(
        id=id, title=title or id, family=family, build=lambda _n: build(), categories=tuple(actions),
        preprocess=Preprocess(resize=shape[1], crop=shape[1]), default_layer=default_layer,
        weights_file=partial(fixed_path, path), description=description, task=AGENT_TASK,
        observation_shape=shape, untrained=untrained))


def agent_ids(viewer: str | None = None) -> list[str]:
    """The registered agents (the shipped ones and the plugins')."""
    return [m for m in list_models(viewer=viewer) if get_spec(m).task == AGENT_TASK]


def load_agent(model_id: str, weights=None) -> LoadedAgent:
    """A registered agent with its weights (the registry's checked path: ``weights_only``, every
    tensor's shape), checked by one forward pass on a blank frame: its output must be
    ``[1, actions + 1]``."""
    spec = get_spec(model_id)
    if spec.task != AGENT_TASK:
        raise ValueError(f"{model_id!r} is a {spec.task} model, not an agent; agents: {', '.join(agent_ids()) or 'none'}")
    loaded = load(model_id, weights, categories=list(spec.categories))
    shape = spec.observation_shape
    with torch.no_grad():
        try:
            out = loaded.model(torch.zeros(1, *shape))
        except Exception as err:
            raise ValueError(f"{model_id} fails on a blank {'x'.join(map(str, shape))} frame (its declared "
                             f"observation shape): {str(err).splitlines()[0][:200]}") from None
    want = len(spec.categories) + 1
    if out.ndim != 2 or out.shape[1] != want:
        raise ValueError(f"{model_id} returns {tuple(out.shape)}; an agent returns [N, {want}]: the logits of "
                         f"{', '.join(spec.categories)}, then the value estimate")
    return LoadedAgent(loaded.model, spec.family, shape, tuple(spec.categories), loaded.default_layer,
                       loaded.sha256 or "", model_id)
