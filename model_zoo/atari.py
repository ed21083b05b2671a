"""Atari through ``ale-py`` (its wheel ships the game ROMs): the standard preprocessing of DQN
(Mnih et al. 2015) as Gymnasium's wrappers give it (no-op starts, a frame skip of 4 with the
last two frames max-pooled, 84 x 84 grey frames) and a stack of the 4 newest frames, channels
first: the observations Stable-Baselines3's Atari agents take. Maps are drawn on the newest frame
of the stack (:func:`newest_frame`)."""
from __future__ import annotations

import numpy as np

__all__ = ["make", "newest_frame", "FRAME_STACK", "SCREEN"]

FRAME_STACK, SCREEN = 4, 84


def make(game: str = "Breakout", *, noop_max: int = 30, render_mode: str | None = None):
    """The Atari game ``game`` (``"Breakout"``, ``"Pong"``, ...: ALE's names) with the standard
    wrappers and a 4-frame stack; a clear message without ``ale-py`` or for an unknown game."""
    try:
        import ale_py
        import gymnasium as gym
    except ImportError:
        raise ValueError("Atari needs the ale-py package (pip install ale-py; its wheel ships the game ROMs; "
                         "requirements-dev.txt has it)") from None
    gym.register_envs(ale_py)
    try:
        env = gym.make(f"ALE/{game}-v5", frameskip=1, render_mode=render_mode)
    except gym.error.Error as err:
        raise ValueError(f"no Atari game {game!r} in ale-py {ale_py.__version__} ({str(err).splitlines()[0][:120]}); "
                         "names are as ALE spells them: Breakout, Pong, SpaceInvaders, ...") from None
    env = gym.wrappers.AtariPreprocessing(env, noop_max=noop_max, frame_skip=4, screen_size=SCREEN,
                                          grayscale_obs=True)
    return gym.wrappers.FrameStackObservation(env, FRAME_STACK)


def newest_frame(obs: np.ndarray) -> np.ndarray:
    """The newest frame of a stacked observation (stack x H x W, or H x W x stack when the
    stack is last), as H x W x 3 uint8 for drawing a map on."""
    obs = np.asarray(obs)
    if obs.ndim != 3:
        raise ValueError(f"a stacked observation has 3 dimensions, got shape {obs.shape}")
    frame = obs[-1] if obs.shape[0] <= obs.shape[-1] else obs[..., -1]
    return np.repeat(frame[..., None], 3, axis=2).astype(np.uint8)
