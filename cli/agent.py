"""python -m cli.agent: an agent's episode in the shapes world's navigation environment, explained
frame by frame (``--episode``): for each frame the picture, the chosen action's map and the
value's map as PNG overlays, ``episode.gif`` (all of them animated, for slides) and
``episode.json`` (actions, probabilities, values, rewards).

    ./studio agent --episode 3                              # the shipped agent
    ./studio agent --agent shapes-agent-shortcut --cue lying --episode 3
    ./studio agent --agent my_ppo.zip --episode 3 --out agent-out
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from explainers import render
from model_zoo.shapes.navigation import ACTIONS, CUES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cli.agent", description=__doc__.splitlines()[0])
    p.add_argument("--agent", default="shapes-agent",
                   help="a registered agent (shapes-agent, shapes-agent-shortcut, a plugin's) or a Stable-Baselines3 "
                        "zip (PPO, A2C or DQN, CnnPolicy) trained on the navigation environment (default: shapes-agent)")
    p.add_argument("--episode", type=int, default=0, help="the episode's index in the world --seed")
    p.add_argument("--seed", type=int, default=90_000, help="the world (held-out by default)")
    p.add_argument("--cue", choices=CUES, default="none")
    p.add_argument("--method", default="gradcam")
    p.add_argument("--layer", default=None, help="dotted layer name (default: the agent's own default layer)")
    p.add_argument("--out", type=Path, default=Path("agent-out"))
    p.add_argument("--alpha", type=float, default=0.5)
    return p


def _overlay(frame, m, alpha):
    (m01,) = render.normalize([np.maximum(m, 0)], "per_map")
    return render.overlay(frame, m01, alpha)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from evaluation.rl import agent_layer, episode_gif, explain_episode
    from model_zoo import agents
    from model_zoo.weights import ZooError
    try:
        if args.episode < 0:
            raise ValueError(f"--episode must be 0 or more, got {args.episode}")
        if args.agent in agents.agent_ids():
            agent = agents.load_agent(args.agent)
        elif Path(args.agent).is_file():
            agent = agents.from_sb3(Path(args.agent), ACTIONS)
        else:
            raise ValueError(f"--agent {args.agent!r} is neither a registered agent ({', '.join(agents.agent_ids())}) "
                             "nor a file")
        with tqdm(desc=f"episode {args.episode}", unit="frame", file=sys.stderr) as bar:
            frames = explain_episode(agent, args.episode, args.seed, args.cue, args.method, args.layer,
                                     progress=lambda done, _: bar.update(1))
    except (ZooError, ValueError, KeyError) as err:
        reason = str(err).strip("'")  # a KeyError's message comes quoted
        print(f"error: {reason}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, f in enumerate(frames):
        Image.fromarray(f["frame"]).save(args.out / f"frame_{k:03d}.png")
        _overlay(f["frame"], f["action_map"], args.alpha).save(args.out / f"action_{k:03d}.png")
        _overlay(f["frame"], f["value_map"], args.alpha).save(args.out / f"value_{k:03d}.png")
        rows.append({"frame": k, "action": None if f["action"] is None else agent.actions[f["action"]],
                     "probabilities": dict(zip(agent.actions, map(float, f["probabilities"]))), "value": f["value"],
                     "reward": f["reward"], "agent_cell": list(f["info"]["agent_cell"]),
                     "goal_cell": list(f["info"]["goal_cell"])})
    summary = {"agent": Path(args.agent).name, "algorithm": agent.algorithm, "sha256": agent.sha256, "seed": args.seed,
               "episode": args.episode, "cue": args.cue, "method": args.method,
               "layer": args.layer or agent_layer(agent), "frames": rows,
               "return": sum(r["reward"] for r in rows if r["reward"] is not None),
               "reached_goal": any(r["reward"] == 1.0 for r in rows)}
    (args.out / "episode.json").write_text(json.dumps(summary, indent=2))
    (args.out / "episode.gif").write_bytes(episode_gif(frames, agent.actions, args.alpha))
    print(f"{len(frames)} frames, return {summary['return']:.2f}, "
          f"{'reached the goal' if summary['reached_goal'] else 'did not reach the goal'}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
