"""One Atari step explained: Breakout through ale-py with the standard wrappers and a 4-frame
stack, a Stable-Baselines3 PPO agent trained for a few steps inside the test, loaded as plain
torch, its chosen action's Grad-CAM drawn on the newest frame."""
import numpy as np
import pytest

import explainers
from explainers import render
from model_zoo import agents, atari

pytest.importorskip("ale_py", reason="ale-py is in requirements-dev.txt")
sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in requirements-dev.txt")


def test_one_atari_step_is_explained_on_the_newest_frame(tmp_path):
    env = atari.make("Breakout")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    for _ in range(3):  # the ball in play: the stack holds different frames
        obs, *_ = env.step(1)
    model = sb3.PPO("CnnPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, verbose=0, device="cpu")
    model.learn(32)
    model.save(tmp_path / "breakout.zip")
    agent = agents.from_sb3(tmp_path / "breakout.zip", tuple(env.unwrapped.get_action_meanings()))
    assert agent.observation_shape == (4, 84, 84) and agent.actions == ("NOOP", "FIRE", "RIGHT", "LEFT")
    x = agent.input(obs)
    chosen = int(agent.model(x)[0, :4].argmax())
    assert chosen == int(model.predict(obs, deterministic=True)[0])
    e = explainers.explain(agent.model, x, layer=agent.default_layer, target=explainers.ActionLogit(chosen))
    assert e.attribution.shape == (84, 84) and np.isfinite(e.attribution).all()
    frame = atari.newest_frame(obs)
    assert frame.shape == (84, 84, 3) and np.array_equal(frame[..., 0], obs[-1])
    picture = render.overlay(frame, render.normalize([np.maximum(e.attribution, 0)], "per_map")[0], 0.5)
    assert np.asarray(picture).shape[:2] == (84, 84)


def test_bad_games_and_stacks_are_named():
    with pytest.raises(ValueError, match="no Atari game 'Brekout'"):
        atari.make("Brekout")
    with pytest.raises(ValueError, match="a stacked observation has 3 dimensions"):
        atari.newest_frame(np.zeros((84, 84)))
