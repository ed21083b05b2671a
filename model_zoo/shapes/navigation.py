"""The shapes world as a reinforcement-learning environment (the Gymnasium API): an agent marker
walks a grid among a goal shape and distractor shapes, drawn by the shapes world's renderer on
its noisy, cluttered backgrounds.

* Observations: 64 x 64 x 3 uint8 frames (what a CNN policy sees; Stable-Baselines3's
  ``CnnPolicy`` takes them as they are).
* Actions: 0 up, 1 down, 2 left, 3 right; one grid cell a step (a 5 x 5 grid of 12-px cells;
  walking into the border leaves the agent where it is).
* Rewards: +1 for reaching the goal's cell, -1 for a distractor's (either ends the episode),
  ``STEP_COST`` (-0.01) a step; an episode is cut after ``MAX_STEPS`` steps.
* The goal is always a ``GOAL_CLASS`` shape (a circle); distractors are shapes of the other
  classes. Colours are random unless ``cue="goal-red"``: the goal is always red, a shortcut an
  agent can learn instead of the shape; ``cue="lying"`` paints one distractor red instead (and
  the goal another colour), to see which an agent follows.
* Every episode is a pure function of (seed, index), like the scenes: ``reset(seed=s)`` starts
  the world ``s`` at episode 0, ``reset(options={"index": i})`` picks episode ``i``, and a plain
  ``reset()`` moves to the next one.
* Every frame carries its ground truth in ``info``: the masks (visible pixels) of the agent,
  the goal and each distractor, and their grid cells.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .world import CLASSES, SIZE, _background, _clutter, _colour, _shape_mask

__all__ = ["ShapesNavigation", "Layout", "layout", "ACTIONS", "GRID", "CELL", "GOAL_CLASS", "MAX_STEPS",
           "STEP_COST", "CUES", "cell_centre", "shortest_path_action", "distances", "optimal_actions", "render"]

ACTIONS = ("up", "down", "left", "right")
_MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))  # (dx, dy) in cells
GRID, CELL, MARGIN = 5, 12, 2  # 5 x 5 cells of 12 px, 2 px border: 2 + 60 + 2 = 64
GOAL_CLASS = CLASSES.index("circle")
MAX_STEPS = 30
STEP_COST = -0.01
CUES = ("none", "goal-red", "lying")
RED = np.array([230.0, 20.0, 20.0])
_CUE_CODE = {c: k for k, c in enumerate(CUES)}


def cell_centre(cell: tuple[int, int]) -> tuple[float, float]:
    """The pixel centre (x, y) of a grid cell (column, row)."""
    return MARGIN + CELL * cell[0] + CELL / 2, MARGIN + CELL * cell[1] + CELL / 2


@dataclass(frozen=True, eq=False)
class Layout:
    """One episode's fixed part: the background with the shapes drawn, where they are, and where
    the agent starts."""
    base: np.ndarray  # 64 x 64 x 3 float, the background and shapes (no agent)
    goal: tuple[int, int]  # cell (column, row)
    distractors: tuple[tuple[int, int], ...]
    distractor_classes: tuple[int, ...]
    masks: dict  # "goal": mask, "distractors": tuple of masks (each shape's pixels)
    start: tuple[int, int]
    seed: int
    index: int
    cue: str


def layout(seed: int, index: int, distractors: int = 2, cue: str = "none") -> Layout:
    """Episode ``index`` of the world ``seed``: a goal, ``distractors`` distractors and the
    agent's start on distinct cells, the start at least two steps from every shape and a path
    to the goal round the distractors."""
    if cue not in _CUE_CODE:
        raise ValueError(f"unknown cue {cue!r}; choose one of {', '.join(CUES)}")
    if not 1 <= distractors <= 6:
        raise ValueError(f"distractors must be 1 to 6, got {distractors}")
    # the cue does not enter the stream: the same episode under every cue, only the colours differ
    rng = np.random.default_rng([int(seed), int(index), 7, int(distractors)])
    cells = [(c, r) for r in range(GRID) for c in range(GRID)]
    while True:
        picked = [cells[int(k)] for k in rng.choice(len(cells), size=2 + distractors, replace=False)]
        start, shapes = picked[0], picked[1:]
        if all(abs(start[0] - c) + abs(start[1] - r) >= 2 for c, r in shapes) \
                and shortest_path_action(start, shapes[0], shapes[1:]) is not None:
            break  # and the goal can be reached round the distractors
    goal, others = shapes[0], tuple(shapes[1:])
    classes = tuple(int(c) for c in rng.choice([k for k in range(len(CLASSES)) if k != GOAL_CLASS],
                                               size=distractors, replace=True))
    img, bg = _background(rng, SIZE)
    _clutter(rng, img, SIZE)
    colours = []
    for _ in range(1 + distractors):
        colour = _colour(rng)
        while np.abs(colour - bg).sum() < 150 or np.abs(colour - RED).sum() < 120:
            colour = _colour(rng)
        colours.append(colour)
    if cue == "goal-red":
        colours[0] = RED
    elif cue == "lying":
        colours[1] = RED
    masks = []
    for (cell, label, colour) in zip(shapes, (GOAL_CLASS, *classes), colours):
        cx, cy = cell_centre(cell)
        mask = _shape_mask(label, cx, cy, float(rng.uniform(4.3, 5.0)), float(rng.uniform(0, 2 * math.pi)), SIZE)
        img[mask] = colour[None, :] + rng.normal(0, 4, (int(mask.sum()), 3))
        masks.append(mask)
    return Layout(img, goal, others, classes, {"goal": masks[0], "distractors": tuple(masks[1:])}, start,
                  int(seed), int(index), cue)


def _agent_mask(cell: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The agent marker at a cell: a white plus sign (3 px arms) with a black outline; (outline
    mask, white mask)."""
    cx, cy = (int(v) for v in cell_centre(cell))
    white = np.zeros((SIZE, SIZE), bool)
    white[cy - 4:cy + 4, cx - 1:cx + 1] = True
    white[cy - 1:cy + 1, cx - 4:cx + 4] = True
    outline = np.zeros_like(white)
    outline[cy - 5:cy + 5, cx - 2:cx + 2] = True
    outline[cy - 2:cy + 2, cx - 5:cx + 5] = True
    return outline, white


def distances(goal: tuple[int, int], blocked) -> dict:
    """Every cell's number of steps to ``goal`` on a walk round the ``blocked`` cells (breadth-first
    search from the goal; cells that cannot reach it are left out)."""
    from collections import deque
    blocked = set(blocked)
    dist = {goal: 0}
    queue = deque([goal])
    while queue:
        cell = queue.popleft()
        for dx, dy in _MOVES:
            nxt = (cell[0] + dx, cell[1] + dy)
            if 0 <= nxt[0] < GRID and 0 <= nxt[1] < GRID and nxt not in dist and nxt not in blocked:
                dist[nxt] = dist[cell] + 1
                queue.append(nxt)
    return dist


def optimal_actions(at: tuple[int, int], goal: tuple[int, int], blocked, dist: dict | None = None) -> list[int]:
    """Every action that starts a shortest walk from ``at`` to ``goal`` round the ``blocked``
    cells (empty when the goal cannot be reached, or ``at`` is the goal)."""
    dist = distances(goal, blocked) if dist is None else dist
    if at not in dist or at == goal:
        return []
    return [a for a, (dx, dy) in enumerate(_MOVES) if dist.get((at[0] + dx, at[1] + dy), -1) == dist[at] - 1]


def shortest_path_action(at: tuple[int, int], goal: tuple[int, int], blocked) -> int | None:
    """The first action (in the order up, down, left, right) of a shortest walk from ``at`` to
    ``goal`` that avoids the ``blocked`` cells; None when there is none. The oracle the tests and
    the agent's card compare with."""
    best = optimal_actions(at, goal, blocked)
    return best[0] if best else None


def render(lay: Layout, agent: tuple[int, int]) -> np.ndarray:
    """The frame (64 x 64 x 3 uint8) of episode ``lay`` with the agent at cell ``agent``."""
    img = lay.base.copy()
    outline, white = _agent_mask(agent)
    img[outline] = 0.0
    img[white] = 255.0
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


class ShapesNavigation(gym.Env):
    """Walk to the circle, avoid the other shapes (the module's docstring has the rules)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, seed: int = 40_000, distractors: int = 2, cue: str = "none", render_mode: str | None = None):
        if cue not in _CUE_CODE:
            raise ValueError(f"unknown cue {cue!r}; choose one of {', '.join(CUES)}")
        self.world_seed, self.distractors, self.cue = int(seed), int(distractors), cue
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.index = -1
        self.layout: Layout | None = None
        self.agent = (0, 0)
        self.steps = 0

    def _frame(self) -> np.ndarray:
        return render(self.layout, self.agent)

    def _info(self) -> dict:
        outline, _ = _agent_mask(self.agent)
        lay = self.layout
        return {"seed": lay.seed, "index": lay.index, "step": self.steps, "agent_cell": self.agent,
                "goal_cell": lay.goal, "distractor_cells": lay.distractors,
                "masks": {"agent": outline, "goal": lay.masks["goal"] & ~outline,
                          "distractors": tuple(m & ~outline for m in lay.masks["distractors"])}}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.world_seed, self.index = int(seed), -1
        self.index = int(options["index"]) if options and "index" in options else self.index + 1
        self.layout = layout(self.world_seed, self.index, self.distractors, self.cue)
        self.agent, self.steps = self.layout.start, 0
        return self._frame(), self._info()

    def step(self, action):
        if self.layout is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not one of 0..{len(ACTIONS) - 1} ({', '.join(ACTIONS)})")
        dx, dy = _MOVES[int(action)]
        nxt = (self.agent[0] + dx, self.agent[1] + dy)
        if 0 <= nxt[0] < GRID and 0 <= nxt[1] < GRID:
            self.agent = nxt
        self.steps += 1
        reward, terminated = STEP_COST, False
        if self.agent == self.layout.goal:
            reward, terminated = 1.0, True
        elif self.agent in self.layout.distractors:
            reward, terminated = -1.0, True
        truncated = not terminated and self.steps >= MAX_STEPS
        return self._frame(), float(reward), terminated, truncated, self._info()

    def render(self):
        return self._frame() if self.layout is not None else None


gym.register("GradCAMStudio/ShapesNavigation-v0", entry_point=ShapesNavigation, max_episode_steps=None)
