"""Agents: a reinforcement-learning agent's episode in the shapes world's navigation environment,
frame by frame. For each frame the agent's view, where it looked for the action it chose (the
action's logit), for its value estimate, and why that action rather than another; the action
probabilities; the ground truth (is the map's peak on the goal or on the agent?).

An episode is computed once (one forward and one batched backward a frame, ``evaluation.rl``)
and kept in this session: stepping the slider, or playing, draws kept maps and runs no network.
Contrasting with an action other than the runner-up costs one forward and one backward the first
time, kept after."""
import tempfile
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import explainers
import model_zoo
from evaluation import rl
from evaluation.metrics import pointing_hit
from explainers import render
from model_zoo import agents
from model_zoo.shapes.navigation import ACTIONS, CUES, MAX_STEPS
from model_zoo.weights import ZooError
from ui import cache, routing, text, views

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

UPLOAD = "Your own: a Stable-Baselines3 zip"
PLAY_SECONDS = 0.5  # a frame's time on screen while playing
KEPT_RUNS = 8  # episodes kept in a session (a few hundred kB each)
WORLDS = {"none": "colours at random (as the shipped agent was trained)",
          "goal-red": "the goal always red (as the shortcut agent was trained)",
          "lying": "a distractor red, the goal not: does the agent follow the shape or the colour?"}

st.title("Reinforcement learning agents")
st.caption("The paper's fourth model family: Grad-CAM of an agent's action and of its value estimate, frame by "
           "frame, in the shapes world's navigation game (walk to the circle, avoid the other shapes). The "
           "episodes shown are held out: the world seed was never used for training.")


@st.cache_resource(show_spinner=False, max_entries=4)
def _registered(model_id: str) -> agents.LoadedAgent:
    return agents.load_agent(model_id)


def _uploaded(data: bytes, name: str) -> agents.LoadedAgent:
    """A Stable-Baselines3 zip as an agent of this environment (kept in the session by content)."""
    import hashlib
    key = hashlib.sha256(data).hexdigest()
    kept = st.session_state.setdefault("rl_uploads", {})
    if key not in kept:
        with tempfile.TemporaryDirectory(prefix="studio-agent-") as tmp:
            path = Path(tmp) / Path(name).name
            path.write_bytes(data)
            agent = agents.from_sb3(path)
        if len(agent.actions) != len(ACTIONS):
            raise ValueError(f"{name} has {len(agent.actions)} actions; the navigation environment has "
                             f"{len(ACTIONS)} ({', '.join(ACTIONS)})")
        agent.actions = ACTIONS
        agent.check_frame(np.zeros((64, 64, 3), np.uint8))  # which shapes differ, when they do
        kept.clear()  # one upload at a time
        kept[key] = agent
    return kept[key]


ready = [m for m in agents.agent_ids(viewer=cache.viewer()) if model_zoo.weights_available(m)]
c1, c2, c3, c4 = st.columns([3, 1, 3, 2])
choice = c1.selectbox("Agent", [*ready, UPLOAD], key="rl_agent",
                      format_func=lambda m: m if m == UPLOAD else f"{m}: {model_zoo.get_spec(m).description}")
episode = int(c2.number_input("Episode", 0, 9999, 0, key="rl_episode",
                              help=f"The episode's index in the held-out world (seed {rl.HELDOUT_SEED})."))
cue = c3.selectbox("World", CUES, key="rl_cue", format_func=lambda c: f"{c}: {WORLDS[c]}")
method = c4.selectbox("Method", explainers.method_names(classes=False), format_func=views.method_title, key="rl_method")

try:
    if choice == UPLOAD:
        up = st.file_uploader("A Stable-Baselines3 model zip (PPO, A2C or DQN with CnnPolicy) trained on this "
                              "environment (64 x 64 x 3 frames, 4 actions)", type=["zip"], key="rl_upload")
        if up is None:
            st.info("Upload a zip saved by Stable-Baselines3's `model.save(...)`. It is read without unpickling "
                    "anything; a policy built otherwise goes through the plugin route (README, 'Agents of your own').")
            st.stop()
        agent = _uploaded(up.getvalue(), up.name)
        agent_key = f"upload:{agent.sha256}"
    else:
        agent = _registered(choice)
        agent_key = f"{choice}:{agent.sha256}"
except (ZooError, ValueError) as err:
    st.error(f"Cannot use this agent: {text.plain(err)}")
    st.stop()

run_key = (agent_key, rl.HELDOUT_SEED, episode, cue, method)
runs = st.session_state.setdefault("rl_runs", {})
if run_key not in runs:
    bar = st.progress(0.0, text="Running the episode")
    started = time.perf_counter()
    try:
        steps = rl.explain_episode(agent, episode, rl.HELDOUT_SEED, cue, method,
                                   progress=lambda done, _: bar.progress(min(done / (MAX_STEPS + 1), 1.0),
                                                                          text=f"Frame {done} explained"))
    except (ValueError, RuntimeError) as err:
        bar.empty()
        st.error(f"Cannot explain this episode: {text.plain(err)}")
        st.stop()
    bar.empty()
    while len(runs) >= KEPT_RUNS:
        runs.pop(next(iter(runs)))
    runs[run_key] = {"steps": steps, "seconds": time.perf_counter() - started, "contrasts": {}}
run = runs[run_key]
steps = run["steps"]
rewards = [s["reward"] for s in steps if s["reward"] is not None]
reached = bool(rewards) and rewards[-1] > 0
st.markdown(f"**Episode {episode}**: {len(rewards)} steps, return {sum(rewards):+.2f}, "
            + ("reached the goal." if reached else "hit a distractor." if rewards and rewards[-1] < 0
               else "ran out of steps."))
st.caption(f"Computed in {run['seconds']:.2f} s ({len(steps)} frames, one forward and one backward each); "
           f"layer `{rl.agent_layer(agent)}`, {views.method_title(method)}, each map normalised to its own maximum.")

slider_key = f"rl_frame_{'_'.join(map(str, run_key))}"
if slider_key + "_pending" in st.session_state:  # where a play ended
    st.session_state[slider_key] = st.session_state.pop(slider_key + "_pending")
left, right = st.columns([5, 1])
k = left.slider("Frame", 0, len(steps) - 1, 0, key=slider_key) if len(steps) > 1 else 0
play = right.button("Play", key="rl_play", help="Every frame from this one on, then back to the slider.")
alpha = views.opacity_slider("rl_alpha")


def _caption(j: int) -> str:
    s = steps[j]
    what = "episode over" if s["action"] is None else f"goes {ACTIONS[s['action']]}"
    return f"Frame {j}: {what}, value {s['value']:+.2f}"


def _pictures(j: int, where) -> None:
    """The frame and its three maps (no widgets: drawn while playing too)."""
    s = steps[j]
    a, b = s["likeliest"], s["runner_up"]
    cols = where.columns(4)
    cols[0].image(s["frame"], caption=_caption(j), width="stretch")
    cols[1].image(render.picture(s["frame"], s["action_map"], alpha), width="stretch",
                  caption=f"Where it looked for '{agent.actions[a]}' (its most likely action)")
    cols[2].image(render.picture(s["frame"], s["value_map"], alpha), width="stretch",
                  caption="Where it looked for its value estimate")
    cols[3].image(render.picture(s["frame"], s["contrast_map"], alpha), width="stretch",
                  caption=f"Why '{agent.actions[a]}' rather than '{agent.actions[b]}' (the runner-up)")


view = st.empty()
if play:
    for j in range(k, len(steps)):
        with view.container():
            _pictures(j, st)
            st.caption(" · ".join(f"{n} {p:.0%}" for n, p in zip(agent.actions, steps[j]["probabilities"])))
        time.sleep(PLAY_SECONDS)
    st.session_state[slider_key + "_pending"] = len(steps) - 1
    st.rerun()

with view.container():
    _pictures(k, st)
s = steps[k]
masks = s["info"]["masks"]
on_target = pointing_hit(s["action_map"], masks["goal"] | masks["agent"], rl.TOLERANCE_PX)
st.caption(f"Ground truth: the action map's peak is {'on' if on_target else 'not on'} the goal or the agent "
           f"(within {rl.TOLERANCE_PX:.0f} px).")

probs_col, why_col = st.columns([2, 3])
with probs_col:
    order = list(range(len(agent.actions)))
    fig = go.Figure(go.Bar(x=s["probabilities"], y=list(agent.actions), orientation="h",
                           marker_color=["#d62728" if i == s["likeliest"] else "#7f7f7f" for i in order],
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(height=200, margin=dict(l=0, r=0, t=28, b=0), title="Action probabilities",
                      xaxis=dict(tickformat=".0%", range=[0, 1]))
    st.plotly_chart(fig, key="rl_probs")
with why_col:
    a = s["likeliest"]
    others = [i for i in range(len(agent.actions)) if i != a]
    b = st.selectbox(f"Why '{agent.actions[a]}' rather than ...", others, index=others.index(s["runner_up"]),
                     format_func=lambda i: f"{agent.actions[i]} ({s['probabilities'][i]:.1%})",
                     key=f"rl_versus_{slider_key}_{k}")
    if b == s["runner_up"]:
        contrast = s["contrast_map"]
    else:
        if (k, b) not in run["contrasts"]:
            run["contrasts"][(k, b)] = rl.contrast_map(agent, s["frame"], a, b, method)
        contrast = run["contrasts"][(k, b)]
    st.image(render.picture(s["frame"], contrast, alpha), width=260,
             caption=f"Why '{agent.actions[a]}' rather than '{agent.actions[b]}': the difference of their logits")

gif_key = (run_key, round(alpha, 2))
if st.session_state.get("rl_gif_key") != gif_key:
    st.session_state["rl_gif"] = rl.episode_gif(steps, agent.actions, alpha)
    st.session_state["rl_gif_key"] = gif_key
st.download_button("Download the episode as a GIF (frame, action's map, value's map)", st.session_state["rl_gif"],
                   file_name=f"episode_{episode}_{cue}.gif", mime="image/gif", key="rl_gif_button")
