"""Training the navigation agents (training.agents): the PPO stage starts from the imitation
weights (the policy Stable-Baselines3 trains computes what the plain torch agent computes, and
back), ./studio shapes train --model shapes-agent end to end on a small budget, and a machine
without Stable-Baselines3 told what to install."""
import json

import numpy as np
import pytest
import torch

from model_zoo import agents
from model_zoo.shapes import navigation as nav
from model_zoo.shapes.nets import ShapesAgent
from model_zoo.shapes.recipes import AGENT_RECIPES

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in requirements-dev.txt")


def test_the_ppo_policy_is_the_agent_both_ways():
    from training import agents as training
    torch.manual_seed(0)
    model = ShapesAgent(len(nav.ACTIONS)).eval()
    ppo = training._ppo(model, AGENT_RECIPES["shapes-agent"])
    frame, _ = nav.ShapesNavigation(seed=5).reset(seed=5)
    obs = torch.as_tensor(frame.transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        want = model(obs.float())
        dist = ppo.policy.get_distribution(ppo.policy.obs_to_tensor(frame.transpose(2, 0, 1))[0])
        value = ppo.policy.predict_values(ppo.policy.obs_to_tensor(frame.transpose(2, 0, 1))[0])
    np.testing.assert_allclose(dist.distribution.logits[0].numpy(), torch.log_softmax(want[0, :4], 0).numpy(),
                               atol=1e-5)
    assert float(value) == pytest.approx(float(want[0, 4]), abs=1e-5)
    back = ShapesAgent(len(nav.ACTIONS))
    back.load_state_dict(training._from_sb3(ppo.policy.state_dict()))
    assert torch.equal(back(obs.float()), model(obs.float()))
    ppo.get_env().close()


@pytest.mark.slow
def test_train_an_agent_from_the_command_line(tmp_path, capsys):
    from cli.shapes import main
    assert main(["train", "--model", "shapes-agent", "--n-single", "40", "--epochs", "1", "--ppo-steps", "2048",
                 "--heldout", "4", "--out", str(tmp_path)]) == 0
    card = json.loads((tmp_path / "shapes-agent.json").read_text())
    assert card["training"]["ppo"]["steps"] == 2048 and card["recipe"]["episodes"] == 40
    assert set(card["heldout"]) == set(nav.CUES) and card["heldout"]["none"]["episodes"] == 4
    assert set(card["gradcam"]) == set(nav.CUES) and card["gradcam"]["none"]["steps"] > 0
    agent = agents.load_agent("shapes-agent", weights=tmp_path / "shapes-agent.pt")
    assert agent.sha256 == card["sha256"]
    assert "shapes-agent: held-out success" in capsys.readouterr().out


def test_training_without_stable_baselines3_says_what_to_install(tmp_path, monkeypatch, capsys):
    from cli.shapes import main
    from training import agents as training
    monkeypatch.setattr(training, "_has_sb3", lambda: False)
    assert main(["train", "--model", "shapes-agent", "--n-single", "2", "--epochs", "1", "--heldout", "1",
                 "--out", str(tmp_path)]) == 1
    assert "pip install -r requirements-dev.txt" in capsys.readouterr().err
    assert not (tmp_path / "shapes-agent.pt").exists()
