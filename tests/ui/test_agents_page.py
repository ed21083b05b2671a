"""The Agents page through AppTest: an episode of the shipped agent explained frame by frame (the
maps the library gives), stepping a computed frame runs no network, play, "why a rather than b",
the GIF, and your own Stable-Baselines3 zip (one that fits, and one whose frames do not)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from evaluation import rl
from model_zoo import agents
from model_zoo.shapes.nets import ShapesAgent

ROOT = Path(__file__).resolve().parents[2]


def _open() -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=120).run()
    at.switch_page("pages/agents.py").run()
    assert not at.exception, at.exception
    return at


def test_the_shipped_agents_episode_is_explained_frame_by_frame():
    at = _open()
    assert at.selectbox(key="rl_agent").value == "shapes-agent"
    steps = rl.explain_episode(agents.load_agent("shapes-agent"), 0)
    rewards = [s["reward"] for s in steps if s["reward"] is not None]
    assert any(f"**Episode 0**: {len(rewards)} steps, return {sum(rewards):+.2f}" in m.value for m in at.markdown)
    slider = next(s for s in at.slider if s.key.startswith("rl_frame_"))
    assert slider.max == len(steps) - 1
    assert len(at.get("image")) >= 5  # the frame, three maps, the chosen contrast
    assert at.get("download_button")  # the episode's GIF


def test_stepping_to_a_computed_frame_runs_no_forward_pass():
    at = _open()
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: calls.append(type(m).__name__) if isinstance(m, ShapesAgent) else None)
    try:
        slider = next(s for s in at.slider if s.key.startswith("rl_frame_"))
        slider.set_value(1).run()
        assert not at.exception, at.exception
        slider = next(s for s in at.slider if s.key.startswith("rl_frame_"))
        slider.set_value(0).run()
    finally:
        handle.remove()
    assert calls == []
    assert any(c.value.startswith("Ground truth: the action map's peak is") for c in at.caption)


def test_why_a_rather_than_another_action_and_play():
    at = _open()
    steps = rl.explain_episode(agents.load_agent("shapes-agent"), 0)
    s = steps[0]
    box = next(b for b in at.selectbox if b.key.startswith("rl_versus_"))
    assert box.value == s["runner_up"]
    other = next(i for i in range(4) if i not in (s["likeliest"], s["runner_up"]))
    box.set_value(other).run()
    assert not at.exception, at.exception
    want = rl.contrast_map(agents.load_agent("shapes-agent"), s["frame"], s["likeliest"], other)
    captions = [im.proto.imgs[0].caption for im in at.get("image")]
    assert any(f"rather than '{agents.load_agent('shapes-agent').actions[other]}': the difference" in c
               for c in captions), captions
    assert want.shape == (64, 64) and np.abs(want - s["contrast_map"]).max() > 1e-3  # another pair, another map
    at.button(key="rl_play").click().run()
    assert not at.exception, at.exception
    slider = next(s for s in at.slider if s.key.startswith("rl_frame_"))
    assert slider.value == len(steps) - 1  # played to the end


def test_the_shortcut_agent_and_the_lying_world():
    at = _open()
    at.selectbox(key="rl_agent").set_value("shapes-agent-shortcut").run()
    at.selectbox(key="rl_cue").set_value("lying").run()
    assert not at.exception, at.exception
    steps = rl.explain_episode(agents.load_agent("shapes-agent-shortcut"), 0, cue="lying")
    rewards = [s["reward"] for s in steps if s["reward"] is not None]
    assert any(f"{len(rewards)} steps, return {sum(rewards):+.2f}" in m.value for m in at.markdown)


@pytest.fixture(scope="module")
def sb3_zips(tmp_path_factory):
    sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in requirements-dev.txt")
    from gymnasium.wrappers import ResizeObservation
    from model_zoo.shapes.navigation import ShapesNavigation
    folder = tmp_path_factory.mktemp("zips")
    fits, wrong = folder / "fits.zip", folder / "wide.zip"
    sb3.PPO("CnnPolicy", ShapesNavigation(seed=1), n_steps=64, batch_size=32, n_epochs=1, seed=0, verbose=0,
            device="cpu").learn(64).save(fits)
    sb3.PPO("CnnPolicy", ResizeObservation(ShapesNavigation(seed=1), (84, 84)), n_steps=64, batch_size=32,
            n_epochs=1, seed=0, verbose=0, device="cpu").save(wrong)
    return fits, wrong


def test_your_own_stable_baselines3_zip(sb3_zips):
    fits, wrong = sb3_zips
    at = _open()
    at.selectbox(key="rl_agent").set_value("Your own: a Stable-Baselines3 zip").run()
    assert at.info and "without unpickling" in at.info[0].value
    at.file_uploader(key="rl_upload").set_value(("fits.zip", fits.read_bytes(), "application/zip")).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    steps = rl.explain_episode(agents.from_sb3(fits, ("up", "down", "left", "right")), 0)
    rewards = [s["reward"] for s in steps if s["reward"] is not None]
    assert any(f"{len(rewards)} steps, return {sum(rewards):+.2f}" in m.value for m in at.markdown)
    at.file_uploader(key="rl_upload").set_value(("wide.zip", wrong.read_bytes(), "application/zip")).run()
    assert not at.exception
    (err,) = at.error
    assert "3x84x84" in err.value and "64x64x3" in err.value
    at.file_uploader(key="rl_upload").set_value(("junk.zip", b"not a zip", "application/zip")).run()
    assert not at.exception
    assert "not a Stable-Baselines3 model zip" in at.error[0].value.replace("\\", "")
