"""Your own Stable-Baselines3 agent: a zip trained here for a few hundred steps on the shapes
world's navigation environment, loaded without Stable-Baselines3 and without unpickling, gives
what Stable-Baselines3's own policy gives, and is explained; bad files get a message."""
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import explainers
from model_zoo import agents
from model_zoo.shapes.navigation import ACTIONS, ShapesNavigation
from model_zoo.weights import WeightsError

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in requirements-dev.txt")


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """PPO, A2C and DQN with CnnPolicy, each trained for a few hundred steps (seconds)."""
    root = tmp_path_factory.mktemp("sb3")
    out = {}
    kwargs = dict(seed=0, verbose=0, device="cpu")
    for name, make in {"PPO": lambda env: sb3.PPO("CnnPolicy", env, n_steps=64, batch_size=32, n_epochs=1, **kwargs),
                       "A2C": lambda env: sb3.A2C("CnnPolicy", env, n_steps=8, **kwargs),
                       "DQN": lambda env: sb3.DQN("CnnPolicy", env, buffer_size=300, learning_starts=64, **kwargs)
                       }.items():
        model = make(ShapesNavigation(seed=1))
        model.learn(200)
        model.save(root / f"{name.lower()}_agent.zip")
        out[name] = (root / f"{name.lower()}_agent.zip", model)
    return out


def _frames(n=4):
    env = ShapesNavigation(seed=60_000)
    return [env.reset(options={"index": i})[0] for i in range(n)]


@pytest.mark.parametrize("algorithm", ["PPO", "A2C", "DQN"])
def test_a_zip_gives_what_stable_baselines3_gives(zips, algorithm):
    path, trained = zips[algorithm]
    agent = agents.from_sb3(path, ACTIONS)
    assert agent.algorithm == algorithm and agent.observation_shape == (3, 64, 64) and agent.actions == ACTIONS
    obs = torch.as_tensor(np.stack(_frames())).permute(0, 3, 1, 2).float()  # as SB3 feeds it: channels first
    x = torch.cat([agent.input(f) for f in _frames()])
    with torch.no_grad():
        ours = agent.model(x)
        if algorithm == "DQN":
            q = trained.q_net(obs)
            torch.testing.assert_close(ours[:, :4], q, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ours[:, 4], q.max(1).values, rtol=1e-5, atol=1e-5)
        else:
            probs = trained.policy.get_distribution(obs).distribution.probs
            torch.testing.assert_close(torch.softmax(ours[:, :4], 1), probs, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(ours[:, 4:], trained.policy.predict_values(obs), rtol=1e-5, atol=1e-5)
    # the greedy action agrees with SB3's deterministic prediction
    actions, _ = trained.predict(np.stack(_frames()), deterministic=True)
    assert ours[:, :4].argmax(1).tolist() == [int(a) for a in actions]


def test_an_agent_is_explained_for_every_target(zips):
    path, _ = zips["PPO"]
    agent = agents.from_sb3(path, ACTIONS)
    x = agent.input(_frames(1)[0])
    targets = [explainers.ActionLogit(0), explainers.ActionProbability(1), explainers.ActionContrast(2, 3),
               explainers.Value()]
    for method in ("gradcam", "guided_gradcam", "gradcam_pp"):
        for e in explainers.explain(agent.model, x, method=method, layer=agent.default_layer, target=targets):
            assert e.attribution.shape[-2:] == (64, 64) and np.isfinite(e.attribution).all()
    layers = [info.name for info in explainers.list_layers(agent.model, x)]
    assert agent.default_layer in layers


def test_frames_of_another_shape_are_named(zips):
    agent = agents.from_sb3(zips["PPO"][0])
    with pytest.raises(ValueError, match=r"takes observations of shape 3x64x64 \(channels first; 64x64x3 channels "
                                         r"last\), but the environment gives 84x84x4"):
        agent.input(np.zeros((84, 84, 4), np.uint8))
    with pytest.raises(ValueError, match="3 action names given for an agent with 4 actions"):
        agents.from_sb3(zips["PPO"][0], ("up", "down", "left"))


class _Boom:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def _rewrite(src, dst, **replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, replace.get(name.replace(".", "_"), zin.read(name)))


def test_bad_files_are_refused_with_a_reason(zips, tmp_path):
    good = zips["PPO"][0]
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    with pytest.raises(WeightsError, match="not a Stable-Baselines3 model zip"):
        agents.from_sb3(text)
    evil = tmp_path / "evil.zip"
    buf = io.BytesIO()
    pickle.dump({"features_extractor.cnn.0.weight": _Boom()}, buf)
    _rewrite(good, evil, policy_pth=buf.getvalue())
    with pytest.raises(WeightsError, match=r"refused to load evil.zip:policy.pth: it would import posix.system when unpickled"):
        agents.from_sb3(evil)
    custom = tmp_path / "custom.zip"
    state = torch.load(io.BytesIO(zipfile.ZipFile(good).read("policy.pth")), weights_only=True)
    renamed = {k.replace("features_extractor.cnn", "features_extractor.body"): v for k, v in state.items()}
    buf = io.BytesIO()
    torch.save(renamed, buf)
    _rewrite(good, custom, policy_pth=buf.getvalue())
    with pytest.raises(WeightsError, match="not a CnnPolicy with NatureCNN .* plugin route"):
        agents.from_sb3(custom)


# -- the plugin route: any torch policy ------------------------------------------------------------

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "agent_plugin.py")


@pytest.fixture
def example_agent(monkeypatch):
    import model_zoo
    monkeypatch.setenv("STUDIO_MODELS", EXAMPLE)
    model_zoo.load_plugins()
    assert "example-agent" in agents.agent_ids()
    return agents.load_agent("example-agent")


def test_a_plugins_policy_is_an_agent_like_the_shipped_ones(example_agent, tmp_path):
    from evaluation.rl import explain_episode
    import model_zoo
    spec = model_zoo.get_spec("example-agent")
    assert spec.task == "agent" and spec.untrained and spec.observation_shape == (3, 64, 64)
    assert example_agent.actions == ACTIONS and example_agent.default_layer == "policy.network.3"
    steps = explain_episode(example_agent, 1)
    x = example_agent.input(steps[0]["frame"])
    with torch.no_grad():
        logits = example_agent.model(x)[0, :4]
    assert np.allclose(steps[0]["probabilities"], torch.softmax(logits, 0).numpy(), atol=1e-6)
    # its Grad-CAM by hand at the declared layer, through the wrapper's own heads
    acts = {}
    handle = example_agent.model.policy.network[3].register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    out = example_agent.model(x)
    handle.remove()
    (grad,) = torch.autograd.grad(out[0, steps[0]["likeliest"]], acts["a"])
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * acts["a"]).sum(1))[0]
    up = torch.nn.functional.interpolate(cam[None, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    want = up.detach().numpy()
    assert want.max() > 0  # not a dead map: the comparison means something
    np.testing.assert_allclose(steps[0]["action_map"], want, rtol=1e-4, atol=1e-6 * want.max())
    # its own weights, read through the registry's checked path
    torch.save(example_agent.model.state_dict(), tmp_path / "mine.pt")
    again = agents.load_agent("example-agent", weights=tmp_path / "mine.pt")
    assert torch.equal(again.model(x), example_agent.model(x))


def test_a_policy_that_breaks_the_contract_is_named(tmp_path):
    from model_zoo import registry
    agents.register_agent("test-agent-logits-only", lambda: torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(3 * 64 * 64, 4)), actions=ACTIONS, weights="untrained")
    agents.register_agent("test-agent-84", lambda: torch.nn.Sequential(
        torch.nn.Conv2d(3, 2, 4, 4), torch.nn.Flatten(), torch.nn.Linear(2 * 21 * 21, 5)), actions=ACTIONS,
        observation_shape=(3, 84, 84), weights="untrained")
    try:
        with pytest.raises(ValueError, match=r"returns \(1, 4\); an agent returns \[N, 5\]: the logits of up, down, "
                                             r"left, right, then the value estimate"):
            agents.load_agent("test-agent-logits-only")
        wide = agents.load_agent("test-agent-84")
        frame, _ = ShapesNavigation().reset(seed=1)
        with pytest.raises(ValueError, match="takes observations of shape 3x84x84 .* the environment gives 64x64x3"):
            wide.input(frame)
        with pytest.raises(ValueError, match="'shapes-resnet' is a classification model, not an agent"):
            agents.load_agent("shapes-resnet")
        with pytest.raises(ValueError, match="observation_shape must be C x H x W"):
            agents.register_agent("test-agent-bad", lambda: None, actions=ACTIONS, observation_shape=(64, 64))
    finally:
        for name in ("test-agent-logits-only", "test-agent-84"):
            registry._REGISTRY.pop(name, None)
