"""Simulatability and bias discovery (issue 30, part 3) with simulated participants (part 5):
the study's trials are what the model says and where its map peaks; participants who read the
maps score higher than those who guess, with an interval; scoring against the model, not the
truth; and the power a design would have had."""
from __future__ import annotations

import numpy as np
import pytest

from studies import design, participation, simulate, stats, tasks


@pytest.fixture(scope="module")
def simulate_study():
    d = design.StudyDesign("simulate", "What will the robot say?", ("shapes-biased",), methods=("guided_gradcam", "none"),
                           arms=True, n_images=20, source={"source": "shapes", "seed": 31000, "candidates": 400,
                                                          "learn": 3})
    return design.build_study(d)


def test_the_simulatability_trials_mix_right_and_wrong_and_score_against_the_model(simulate_study):
    config, trials, stimuli = simulate_study
    counted = [t for t in trials if t["role"] == "trial"]
    assert config["model_right"] == config["model_wrong"] == 10 and config["learning_scenes"] == 3
    assert sum(t["role"] == "learn" for t in trials) == 3 * 2  # each learning scene in both arms
    for t in counted:
        assert t["model_says"] in t["options"] and len(set(t["options"])) == 2
        assert t["model_right"] == (t["model_says"] == t["object_class"])
        if not t["model_right"]:  # shapes-biased goes by the corner mark
            assert t["model_says"] == t["mark_class"]
    wrong = next(t for t in counted if not t["model_right"])
    assert participation.score_answer("simulate", wrong, True, wrong["model_says"]) == (
        wrong["options"].index(wrong["model_says"]), 1)
    assert participation.score_answer("simulate", wrong, True, wrong["object_class"])[1] == 0  # the truth scores 0
    assert participation.score_answer("simulate", {**wrong, "role": "learn"}, True, "Seen") == (0, 0)
    maps = [t for t in counted if t["method"] == "guided_gradcam"]
    assert np.mean([t["peak_on_mark"] for t in maps]) > 0.9  # the maps show the shortcut
    assert all(t["peak_on_mark"] is None for t in counted if t["method"] == "none")


def test_map_readers_score_higher_than_guessers_with_an_interval(simulate_study):
    config, trials, _ = simulate_study
    rows, arm_of = simulate.run_task_study("simulate", trials, ["guided_gradcam", "none"], participants=24, seed=1)
    c = stats.arm_comparison(rows, arm_of, "guided_gradcam", "none")
    assert c["participants_first"] == c["participants_second"] == 12
    assert c["mean_first"] > 0.85 and abs(c["mean_second"] - 0.5) < 0.15
    assert c["ci_low"] > 0 and c["permutation_p"] < 0.01
    guessing, _ = simulate.run_task_study("simulate", trials, ["guided_gradcam", "none"], participants=24, seed=1,
                                          reads_map=False)
    g = stats.arm_comparison(guessing, arm_of, "guided_gradcam", "none")
    assert g["ci_low"] < 0 < g["ci_high"]  # nobody reads the map: no difference between the arms


def test_bias_discovery_is_scored_against_the_shortcut():
    d = design.StudyDesign("bias", "What does the robot rely on?", ("shapes-biased",), methods=("guided_gradcam",),
                           n_images=6)
    config, trials, stimuli = design.build_study(d)
    assert all(t["options"] == list(tasks.RELIES_ON) and t["answer"] == tasks.SHORTCUT for t in trials)
    assert participation.score_answer("bias", trials[0], True, "the small mark in a corner")[1] == 1
    assert participation.score_answer("bias", trials[0], True, "the shape")[1] == 0
    rng = np.random.default_rng(0)
    readers = [participation.score_answer("bias", t, True, simulate.task_answer("bias", t, t["options"], rng, True))[1]
               for t in trials for _ in range(5)]
    assert np.mean(readers) > 0.8
    with pytest.raises(design.DesignError, match="one model"):
        design.StudyDesign("bias", "t", ("shapes-biased", "shapes-resnet")).check()


def test_a_design_is_screened_with_simulated_participants(simulate_study):
    _, trials, _ = simulate_study
    small = simulate.screen_design("simulate", trials, ["guided_gradcam", "none"], participants=4, draws=40)
    large = simulate.screen_design("simulate", trials, ["guided_gradcam", "none"], participants=16, draws=40)
    assert small["power"] < large["power"] and large["power"] > 0.9
    assert large["how"] == "simulated participants who read the maps (40 studies)"


@pytest.mark.slow
def test_the_readmes_peak_on_the_mark_figures():
    """README: on a 60-scene simulatability design, the Guided Grad-CAM peak lies on the corner mark
    in all 60 test scenes, the Grad-CAM peak in 70%."""
    d = design.StudyDesign("simulate", "x", ("shapes-biased",), methods=("gradcam", "guided_gradcam"), arms=True,
                           n_images=60, source={"source": "shapes", "seed": 31000, "candidates": 400, "learn": 3})
    _, trials, _ = design.build_study(d)
    peaks = {m: [t["peak_on_mark"] for t in trials if t["role"] == "trial" and t["method"] == m]
             for m in ("gradcam", "guided_gradcam")}
    assert len(peaks["guided_gradcam"]) == 60 and all(peaks["guided_gradcam"])
    assert np.mean(peaks["gradcam"]) == pytest.approx(0.70, abs=1e-9)


@pytest.mark.parametrize("kind, models", [("trust", ("shapes-resnet", "shapes-weak")), ("bias", ("shapes-biased",))])
def test_a_method_that_reads_attention_is_refused_for_a_cnn_study(kind, models):
    d = design.StudyDesign(kind, "t", models, methods=("gradcam", "legrad"), stronger=models[0] if kind == "trust"
                           else None, n_images=1)
    with pytest.raises(design.DesignError, match="legrad cannot explain shapes-"):
        design.build_study(d)
