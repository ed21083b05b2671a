"""python -m cli.agent --episode: an agent's episode explained frame by frame, on a
Stable-Baselines3 PPO agent trained inside the test; bad input gets a message."""
import json

import numpy as np
import pytest

from cli import agent as agent_cli
from evaluation.rl import explain_episode
from model_zoo import agents
from model_zoo.shapes.navigation import ACTIONS, ShapesNavigation

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in requirements-dev.txt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("agent") / "ppo_agent.zip"
    model = sb3.PPO("CnnPolicy", ShapesNavigation(seed=1), n_steps=64, batch_size=32, n_epochs=1, seed=0,
                    verbose=0, device="cpu")
    model.learn(128)
    model.save(path)
    return path, model


def test_an_episode_is_explained_frame_by_frame(trained):
    path, model = trained
    frames = explain_episode(agents.from_sb3(path, ACTIONS), 2, seed=90_000)
    env = ShapesNavigation(seed=90_000)
    env.reset(seed=90_000)
    obs, _ = env.reset(options={"index": 2})
    for k, f in enumerate(frames):  # the same frames the environment gives, the actions SB3 takes
        assert np.array_equal(f["frame"], obs)
        assert f["probabilities"].sum() == pytest.approx(1.0, abs=1e-5)
        assert f["action_map"].shape == f["value_map"].shape == (64, 64)
        if f["action"] is None:
            assert k == len(frames) - 1
            break
        assert f["action"] == int(model.predict(obs.transpose(2, 0, 1), deterministic=True)[0])
        obs, reward, *_ = env.step(f["action"])
        assert f["reward"] == reward
    assert frames[-1]["action"] is None and len(frames) >= 2


def test_the_command_writes_the_frames_maps_and_a_summary(trained, tmp_path, capsys):
    path, _ = trained
    out = tmp_path / "out"
    assert agent_cli.main(["--agent", str(path), "--episode", "2", "--out", str(out)]) == 0
    summary = json.loads((out / "episode.json").read_text())
    n = len(summary["frames"])
    for kind in ("frame", "action", "value"):
        assert sorted(p.name for p in out.glob(f"{kind}_*.png")) == [f"{kind}_{k:03d}.png" for k in range(n)]
    assert summary["algorithm"] == "PPO" and summary["episode"] == 2 and summary["frames"][-1]["action"] is None
    assert summary["return"] == pytest.approx(sum(f["reward"] for f in summary["frames"][:-1]))
    assert f"{n} frames" in capsys.readouterr().out


def test_bad_input_is_named(tmp_path, capsys):
    assert agent_cli.main(["--agent", str(tmp_path / "none.zip")]) == 2
    assert "neither a registered agent" in capsys.readouterr().err
    bad = tmp_path / "bad.zip"
    bad.write_text("hello")
    assert agent_cli.main(["--agent", str(bad)]) == 2
    assert "not a Stable-Baselines3 model zip" in capsys.readouterr().err


def test_the_help_says_what_it_writes():
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "cli.agent", "--help"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0 and "--episode" in done.stdout and "--agent" in done.stdout
    assert "./studio agent [args]" in (root / "studio").read_text()


def test_the_shipped_agent_by_name_writes_a_gif_and_explain_points_here(tmp_path, capsys):
    from PIL import Image
    from cli.explain import main as explain_main
    out = tmp_path / "shipped"
    assert agent_cli.main(["--agent", "shapes-agent", "--episode", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "episode.json").read_text())
    frames = explain_episode(agents.load_agent("shapes-agent"), 1)
    assert [f["action"] for f in summary["frames"]] == [None if f["action"] is None else ACTIONS[f["action"]]
                                                         for f in frames]
    gif = Image.open(out / "episode.gif")
    assert gif.n_frames == len(frames)
    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    assert explain_main([str(tmp_path / "x.png"), "--model", "shapes-agent", "--out", str(tmp_path / "o")]) != 0
    assert "shapes-agent is an agent: explain its episodes with ./studio agent --agent shapes-agent" \
        in capsys.readouterr().err
