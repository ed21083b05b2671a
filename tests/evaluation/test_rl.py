"""The agents' card figures (evaluation.rl): success, return and steps of a policy by hand; where
a map falls, on a hand-made agent that sees nothing but red (its Grad-CAM is its red pixels); and
the shipped agents' cards, reproduced."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from evaluation import rl
from model_zoo import agents
from model_zoo.agents import LoadedAgent
from model_zoo.shapes import card
from model_zoo.shapes.navigation import ACTIONS, ShapesNavigation


class Redness(nn.Module):
    """1 x 64 x 64: how red each pixel is (strictly red only: r > 180, g and b < 50)."""

    def forward(self, x):
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        return torch.relu(r - 180) * torch.relu(50 - g) * torch.relu(50 - b) / 1e4


class RedSeer(nn.Module):
    """Logits and value linear in the mean redness: Grad-CAM at ``red`` is the redness itself."""

    def __init__(self, action: int = 3):
        super().__init__()
        self.red = Redness()
        self.head = nn.Linear(1, 5)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.1], [0.2], [0.3], [0.4], [0.5]]))
            self.head.bias.zero_()
            self.head.bias[action] = 10.0  # always this action

    def forward(self, x):
        return self.head(self.red(x).mean((2, 3)))


def _agent(action: int = 3) -> LoadedAgent:
    return LoadedAgent(RedSeer(action).eval(), "torch", (3, 64, 64), ACTIONS, "red", "", "red-seer")


def test_scores_of_a_fixed_policy_by_hand():
    env = ShapesNavigation(seed=123)
    env.reset(seed=123)
    won = lost = steps = 0
    total = 0.0
    for i in range(20):  # always right
        env.reset(options={"index": i})
        while True:
            _, r, term, trunc, _ = env.step(3)
            total, steps = total + r, steps + 1
            if term or trunc:
                won, lost = won + (r > 0), lost + (term and r < 0)
                break
    got = rl.scores(_agent(3), 20, seed=123)
    assert got["success"] == won / 20 and got["hit_distractor"] == lost / 20
    assert got["mean_return"] == pytest.approx(total / 20) and got["mean_steps"] == steps / 20
    random_a, random_b = rl.scores(None, 50, seed=123), rl.scores(None, 50, seed=123)
    assert random_a == random_b and 0 < random_a["success"] < 0.6  # seeded, and mostly lost


def test_where_the_map_falls_on_an_agent_that_sees_red():
    # the goal red: every map is the goal's pixels, so the peak is on it and it outweighs any distractor
    red_goal = rl.groundtruth(_agent(), 15, seed=321, cue="goal-red")
    assert red_goal["steps"] > 15 and red_goal["steps_with_nearer_distractor"] > 0
    assert red_goal["peak_on_goal_or_agent"] == 1.0 and red_goal["goal_beats_nearer_distractor"] == 1.0
    assert red_goal["goal_mass_when_distractor_nearer"] > 0.9 and red_goal["distractor_mass_when_nearer"] == 0.0
    # a distractor red instead: the map sits on it, its mass is the cue's, the goal gets none
    lying = rl.groundtruth(_agent(), 15, seed=321, cue="lying")
    assert lying["cue_mass"] > 0.9 and lying["goal_beats_nearer_distractor"] == 0.0
    assert lying["peak_on_goal_or_agent"] < 0.2
    assert lying["goal_mass_first_frame"] == 0.0
    assert red_goal["cue_mass"] is None and red_goal["goal_mass_first_frame"] is None  # no lying cue


def test_the_shipped_agents_cards_are_what_they_claim():
    shipped, shortcut = card("shapes-agent"), card("shapes-agent-shortcut")
    assert shipped["heldout"]["none"]["success"] >= 0.90
    assert shipped["random_policy"]["success"] < 0.5
    gt = shipped["gradcam"]["none"]
    assert gt["peak_on_goal_or_agent"] >= 0.85
    assert gt["goal_mass_when_distractor_nearer"] > gt["distractor_mass_when_nearer"]
    ratio = shortcut["gradcam"]["lying"]["cue_mass"] / shipped["gradcam"]["lying"]["cue_mass"]
    assert ratio > 1  # the shortcut agent looks at the lying red distractor more
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"cue-mass ratio {ratio:.1f}" in readme


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["shapes-agent", "shapes-agent-shortcut"])
def test_the_cards_figures_are_reproduced(model_id):
    c = card(model_id)
    agent = agents.load_agent(model_id)
    n = c["heldout_episodes"]
    for cue, figures in c["heldout"].items():
        assert rl.scores(agent, n, c["heldout_seed"], cue) == pytest.approx(figures)
    for cue, figures in c["gradcam"].items():
        got = rl.groundtruth(agent, figures["episodes"], c["heldout_seed"], cue)
        assert got == pytest.approx(figures, abs=1e-6)
    assert rl.scores(None, n, c["heldout_seed"], c["recipe"]["cue"]) == pytest.approx(c["random_policy"])


def test_the_episode_gif_has_a_frame_per_step():
    from PIL import Image
    import io
    steps = rl.explain_episode(_agent(), 0, seed=321, cue="goal-red")
    gif = Image.open(io.BytesIO(rl.episode_gif(steps, ACTIONS)))
    assert gif.format == "GIF" and gif.n_frames == len(steps)
    assert gif.size == (3 * 64 * 4, 64 * 4 + 22)
    gif.seek(0)
    first = np.asarray(gif.convert("RGB"))[: 64 * 4, : 64 * 4]
    error = np.abs(first[::4, ::4].astype(int) - steps[0]["frame"].astype(int))
    assert error.mean() < 8  # the frame itself, in a GIF's 256-colour palette (3.9 measured)
