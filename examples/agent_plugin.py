"""An example agent plugin: a torch policy of your own, laid out as CleanRL's PPO agents are
(``network``, ``actor``, ``critic``), registered through ``model_zoo.agents.register_agent``.
Load it with

    STUDIO_MODELS=examples/agent_plugin.py ./studio dashboard        # Explain > Agents
    STUDIO_MODELS=examples/agent_plugin.py ./studio agent --agent example-agent --episode 0

The studio's contract for an agent: frames in pixel units (N x C x H x W floats, 0 to 255) in,
``[N, actions + 1]`` out, the action logits then the value estimate. A policy whose heads are
separate (as here) is wrapped in a few lines. Point ``weights=`` at your trained state dict
(the wrapper's keys: ``policy.network.0.weight``, ...); this example has none and says so
(``"untrained"``): its maps show the machinery, not what a trained agent sees."""
import torch
from torch import nn

from model_zoo.agents import register_agent


class CleanRLStyleAgent(nn.Module):
    """An actor-critic as CleanRL writes one: a shared CNN, an actor and a critic head."""

    def __init__(self, channels: int = 3, actions: int = 4):
        super().__init__()
        self.network = nn.Sequential(nn.Conv2d(channels, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
                                     nn.Flatten(), nn.Linear(32 * 16 * 16, 128), nn.ReLU())
        self.actor = nn.Linear(128, actions)
        self.critic = nn.Linear(128, 1)


class AsStudioAgent(nn.Module):
    """The studio's layout for any policy: pixels in, the logits and the value out."""

    def __init__(self, policy: CleanRLStyleAgent):
        super().__init__()
        self.policy = policy

    def forward(self, x):
        h = self.policy.network(x / 255.0)
        return torch.cat([self.policy.actor(h), self.policy.critic(h)], 1)


register_agent(
    "example-agent", lambda: AsStudioAgent(CleanRLStyleAgent()),
    actions=("up", "down", "left", "right"), observation_shape=(3, 64, 64),
    weights="untrained",  # or a path: weights="checkpoints/my_agent.pt"
    default_layer="policy.network.3",  # the last 16 x 16 map (None: found when first explained)
    title="Example CleanRL-style agent (plugin)",
    description="a plugin's small actor-critic for the navigation game; untrained",
)
