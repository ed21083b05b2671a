"""The shapes world's navigation environment: the Gymnasium API, determinism from (seed, index),
the ground truth every frame carries, the rewards, the cues."""
import numpy as np
import torch
import pytest
from gymnasium.utils.env_checker import check_env

from model_zoo.shapes import navigation as nav


def _cell_of(mask):
    """The grid cell holding a mask's centroid."""
    ys, xs = np.nonzero(mask)
    return int((xs.mean() - nav.MARGIN) // nav.CELL), int((ys.mean() - nav.MARGIN) // nav.CELL)


def test_it_follows_the_gymnasium_api():
    env = nav.ShapesNavigation()
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert env.action_space.n == 4 and nav.ACTIONS == ("up", "down", "left", "right")


def test_an_episode_is_a_function_of_seed_and_index():
    a, b = nav.ShapesNavigation(), nav.ShapesNavigation()
    a.reset(seed=40_000)
    first, _ = a.reset()  # the next episode: index 1
    again, info = b.reset(seed=40_000, options={"index": 1})
    assert np.array_equal(first, again) and info["index"] == 1
    other, _ = b.reset(options={"index": 2})
    assert not np.array_equal(first, other)
    b.reset(options={"index": 1})
    for action in (0, 3, 1, 2, 3):  # the same actions give the same frames and rewards
        fa, ra, ta, *_ = a.step(action)
        fb, rb, tb, *_ = b.step(action)
        assert np.array_equal(fa, fb) and (ra, ta) == (rb, tb)
        if ta:
            break
    # a cue changes colours, not the layout
    plain, red = nav.layout(5, 3), nav.layout(5, 3, cue="goal-red")
    assert (plain.goal, plain.distractors, plain.start) == (red.goal, red.distractors, red.start)
    assert np.array_equal(plain.masks["goal"], red.masks["goal"])


def test_every_frame_carries_its_ground_truth():
    env = nav.ShapesNavigation(distractors=3)
    for index in range(20):
        frame, info = env.reset(seed=7, options={"index": index})
        masks = info["masks"]
        assert _cell_of(masks["goal"]) == info["goal_cell"]
        assert [_cell_of(m) for m in masks["distractors"]] == list(info["distractor_cells"])
        assert _cell_of(masks["agent"]) == info["agent_cell"]
        every = [masks["agent"], masks["goal"], *masks["distractors"]]
        assert sum(m.astype(int) for m in every).max() == 1  # disjoint
        assert all(m.sum() >= 20 for m in every)
        # a shape's pixels are one colour (plus the renderer's noise of 4 grey levels)
        for m in (masks["goal"], *masks["distractors"]):
            assert frame[m].astype(float).std(axis=0).max() < 8
        # the marker: black outline, white plus
        assert set(np.unique(frame[masks["agent"]])) == {0, 255}
        # the start is at least two steps from every shape
        ax, ay = info["agent_cell"]
        assert all(abs(ax - c) + abs(ay - r) >= 2 for c, r in (info["goal_cell"], *info["distractor_cells"]))


def test_rewards_walls_and_the_step_limit():
    env = nav.ShapesNavigation()
    _, info = env.reset(seed=40_000, options={"index": 0})
    total, steps = 0.0, 0
    while True:  # the oracle: a shortest walk round the distractors
        a = nav.shortest_path_action(info["agent_cell"], info["goal_cell"], info["distractor_cells"])
        _, r, terminated, truncated, info = env.step(a)
        total, steps = total + r, steps + 1
        if terminated or truncated:
            break
    assert terminated and r == 1.0 and total == pytest.approx(1.0 + nav.STEP_COST * (steps - 1))
    # into a distractor: -1 and the end
    _, info = env.reset(options={"index": 0})
    target = info["distractor_cells"][0]
    while True:
        a = nav.shortest_path_action(info["agent_cell"], target, [info["goal_cell"]])
        _, r, terminated, _, info = env.step(a)
        if terminated:
            break
    assert r == -1.0 and info["agent_cell"] == target
    # a wall: an episode starting on the top row stays there when it walks up, until the limit
    index = next(i for i in range(200) if nav.layout(40_000, i).start[1] == 0)
    _, info = env.reset(options={"index": index})
    for k in range(nav.MAX_STEPS):
        _, r, terminated, truncated, after = env.step(0)
        assert after["agent_cell"] == info["agent_cell"] and r == nav.STEP_COST and not terminated
        assert truncated == (k == nav.MAX_STEPS - 1)


def test_held_out_episodes_are_solvable_and_not_by_chance():
    """The oracle solves every episode (a path round the distractors always exists); a random
    policy solves few (28% of these 200, measured)."""
    env = nav.ShapesNavigation()
    rng = np.random.default_rng(0)
    won = {"oracle": 0, "random": 0}
    for policy in won:
        for index in range(200):
            _, info = env.reset(seed=50_000, options={"index": index})
            while True:
                a = nav.shortest_path_action(info["agent_cell"], info["goal_cell"], info["distractor_cells"]) \
                    if policy == "oracle" else int(rng.integers(4))
                _, r, terminated, truncated, info = env.step(a)
                if terminated or truncated:
                    break
            won[policy] += r == 1.0
    assert won["oracle"] == 200 and won["random"] < 100


def test_the_cues_paint_the_goal_or_a_distractor_red():
    env_red, env_lie = nav.ShapesNavigation(cue="goal-red"), nav.ShapesNavigation(cue="lying")
    for index in range(10):
        red, info = env_red.reset(seed=3, options={"index": index})
        lie, info2 = env_lie.reset(seed=3, options={"index": index})
        goal_red = red[info["masks"]["goal"]].mean(axis=0)
        assert goal_red[0] > 200 and goal_red[1:].max() < 50
        lying = lie[info2["masks"]["distractors"][0]].mean(axis=0)
        goal = lie[info2["masks"]["goal"]].mean(axis=0)
        assert lying[0] > 200 and lying[1:].max() < 50 and np.abs(goal - nav.RED).sum() > 100


def test_bad_settings_and_actions_are_named():
    with pytest.raises(ValueError, match="unknown cue 'blue'; choose one of none, goal-red, lying"):
        nav.ShapesNavigation(cue="blue")
    with pytest.raises(ValueError, match="distractors must be 1 to 6"):
        nav.layout(1, 0, distractors=9)
    env = nav.ShapesNavigation()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    env.reset(seed=1)
    with pytest.raises(ValueError, match="action 7 is not one of 0..3"):
        env.step(7)


def test_distances_and_optimal_actions_by_hand():
    # goal at (2, 2), a wall of distractors at (1, 2) and (2, 1): from (0, 2) the way round is long
    dist = nav.distances((2, 2), [(1, 2), (2, 1)])
    assert dist[(2, 2)] == 0 and dist[(3, 2)] == 1 and dist[(2, 3)] == 1
    assert dist[(0, 2)] == 4  # (0,2) -> (0,3) -> (1,3) -> (2,3) -> (2,2)
    assert (1, 2) not in dist and (2, 1) not in dist  # blocked cells are not walked
    assert nav.optimal_actions((0, 2), (2, 2), [(1, 2), (2, 1)]) == [1]  # down only
    assert nav.optimal_actions((3, 3), (2, 2), []) == [0, 2]  # up or left, both shortest
    assert nav.optimal_actions((2, 2), (2, 2), []) == []
    assert nav.shortest_path_action((3, 3), (2, 2), []) == 0  # the first in the order up, down, left, right
    # a cell walled in by distractors cannot reach the goal
    assert nav.optimal_actions((0, 0), (4, 4), [(1, 0), (0, 1)]) == []


def test_render_draws_the_agent_where_it_is_told():
    lay = nav.layout(5, 3)
    env = nav.ShapesNavigation(seed=5)
    frame, info = env.reset(seed=5, options={"index": 3})
    assert np.array_equal(nav.render(lay, info["agent_cell"]), frame)
    elsewhere = (4, 4) if lay.start != (4, 4) else (0, 0)
    other = nav.render(lay, elsewhere)
    cx, cy = (int(v) for v in nav.cell_centre(elsewhere))
    assert (other[cy, cx] == 255).all()  # the plus sign's white centre
    assert not np.array_equal(other, frame)


def test_the_imitation_targets_are_the_oracles():
    from training.agents import GAMMA, oracle_states
    x, t, v = oracle_states(7, episodes=3, per_episode=4)
    assert x.shape == (12, 3, 64, 64) and x.dtype == torch.uint8
    assert torch.allclose(t.sum(1), torch.ones(12))
    rng_cells = []
    for i in range(3):
        lay = nav.layout(7, i)
        dist = nav.distances(lay.goal, lay.distractors)
        for k in range(4):
            frame = x[4 * i + k].permute(1, 2, 0).numpy()
            # find the agent's cell: the one whose rendering gives this frame
            cell = next(c for c in dist if c != lay.goal and np.array_equal(nav.render(lay, c), frame))
            rng_cells.append(cell)
            best = nav.optimal_actions(cell, lay.goal, lay.distractors)
            assert set(torch.nonzero(t[4 * i + k]).flatten().tolist()) == set(best)
            d = dist[cell]  # d - 1 step costs, then the goal's +1, discounted
            assert float(v[4 * i + k]) == pytest.approx(sum(nav.STEP_COST * GAMMA ** j for j in range(d - 1))
                                                        + GAMMA ** (d - 1), abs=1e-6)
    assert len(set(rng_cells)) > 1
