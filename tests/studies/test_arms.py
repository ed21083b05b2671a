"""Between-subjects arms (issue 30, part 2): balanced assignment by permuted blocks, drawn once at
joining in the same transaction and never again; 1,000 joins with resumes through two replicas
at once keep the arm sizes within one of each other (SQLite and PostgreSQL); a no-explanation
arm; and the arms compared with participants as the unit."""
from __future__ import annotations

import itertools
import threading
from collections import Counter

import numpy as np
import pytest

import studies
from studies import design, field, stats
from studies.participants import arm_for


@pytest.mark.parametrize("arms", [["gradcam", "none"], ["a", "b", "c"]])
def test_every_prefix_of_the_permuted_blocks_is_balanced(arms):
    drawn = [arm_for(i, arms, seed=5) for i in range(301)]
    for n in range(1, len(drawn) + 1):
        sizes = Counter(drawn[:n])
        assert max(sizes.get(a, 0) for a in arms) - min(sizes.get(a, 0) for a in arms) <= 1
    assert drawn == [arm_for(i, arms, seed=5) for i in range(301)]  # the same study draws the same arms
    assert drawn != [arm_for(i, arms, seed=6) for i in range(301)]  # another seed, another order


@pytest.fixture(scope="module")
def arm_study():
    d = design.StudyDesign("trust", "Which robot?", ("shapes-resnet", "shapes-weak"), methods=("gradcam", "none"),
                           stronger="shapes-resnet", n_images=3, require_correct=True, arms=True)
    return d, *design.build_study(d)


def test_a_no_explanation_arm_shows_the_picture_alone(arm_study):
    d, config, trials, stimuli = arm_study
    assert config["arms"] is True and config["methods"] == ["gradcam", "none"]
    none = [i for i, t in enumerate(trials) if t["method"] == "none"]
    maps = [i for i, t in enumerate(trials) if t["method"] == "gradcam"]
    assert len(none) == len(maps) == 3
    for i, j in zip(none, maps):
        assert trials[i]["image"] == trials[j]["image"] and trials[i]["label"] == trials[j]["label"]
        assert stimuli[(i, "stronger")] == stimuli[(i, "weaker")] != stimuli[(j, "stronger")]  # the same picture
    assert field.arm_trials(trials, "none") == set(none)
    with pytest.raises(design.DesignError, match="at least two arms"):
        design.StudyDesign("trust", "t", ("shapes-resnet", "shapes-weak"), methods=("gradcam",),
                           stronger="shapes-resnet", arms=True).check()
    with pytest.raises(design.DesignError, match="unknown: none"):
        design.StudyDesign("trust", "t", ("shapes-resnet", "shapes-weak"), methods=("gradcam", "none"),
                           stronger="shapes-resnet").check()  # no explanation only as an arm


def test_a_thousand_joins_through_two_replicas_stay_balanced(db_url, arm_study):
    d, config, trials, stimuli = arm_study
    admin = studies.AdminStore(db_url)
    code = admin.save_study(d.title, d.kind, config, trials, stimuli)
    replicas = [studies.ParticipantStore(db_url), studies.ParticipantStore(db_url)]
    first_arm: dict[str, str] = {}
    tokens: dict[str, str] = {}
    errors = []
    lock = threading.Lock()

    def joins(replica, ids):
        try:
            for pid in ids:
                joined = replica.enrol(code, "prolific", pid, {"PROLIFIC_PID": pid})
                arm = replica.arm(joined.token)
                with lock:
                    if pid in tokens:  # a resume: the same participant, the same arm
                        assert joined.resumed and tokens[pid] == joined.token and first_arm[pid] == arm
                    else:
                        tokens[pid], first_arm[pid] = joined.token, arm
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    rng = np.random.default_rng(0)
    ids = [f"P{i:04d}" for i in range(800)]
    again = [ids[int(i)] for i in rng.integers(0, 800, 200)]  # 200 of the 1,000 joins come back
    work = ids + again
    threads = [threading.Thread(target=joins, args=(replicas[k % 2], work[k::2])) for k in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        assert len(tokens) == 800 and len(set(tokens.values())) == 800
        sizes = Counter(first_arm.values())
        assert set(sizes) == {"gradcam", "none"} and abs(sizes["gradcam"] - sizes["none"]) <= 1
        stored = {t: replicas[0].arm(t) for t in tokens.values()}
        assert all(stored[tokens[p]] == first_arm[p] for p in ids)  # nobody changed arm
        assert replicas[0].arm(replicas[0].join(code)) in ("gradcam", "none")
    finally:
        for r in replicas:
            r.dispose()
        admin.dispose()


def test_the_arms_are_compared_with_participants_as_the_unit():
    rows, arm_of = [], {}
    means_a, means_b = [2, 1, 1.5, 2, 0.5, 1], [0, 0.5, -0.5, 0, 1]
    for k, (arm, means) in enumerate((("gradcam", means_a), ("none", means_b))):
        for i, m in enumerate(means):
            p = f"{arm}{i}"
            arm_of[p] = arm
            rows += [{"participant": p, "score": m - 0.5}, {"participant": p, "score": m + 0.5}]  # mean m
    out = stats.arm_comparison(rows, arm_of, "gradcam", "none")
    assert out["participants_first"] == 6 and out["participants_second"] == 5
    assert out["difference"] == pytest.approx(np.mean(means_a) - np.mean(means_b))
    pooled = means_a + means_b
    observed = abs(np.mean(means_a) - np.mean(means_b))
    diffs = [abs(np.mean([pooled[i] for i in idx]) - np.mean([pooled[i] for i in range(11) if i not in idx]))
             for idx in itertools.combinations(range(11), 6)]
    assert out["permutation_p"] == pytest.approx(np.mean([d >= observed - 1e-12 for d in diffs]))
    assert out["ci_low"] < out["difference"] < out["ci_high"] and out["ci_low"] > 0
    few = stats.arm_comparison(rows[:8], arm_of, "gradcam", "none")  # 4 and 0 participants
    assert np.isnan(few["ci_low"]) and np.isnan(few["permutation_p"])


def test_complete_means_every_trial_of_ones_own_arm():
    trials = [{"method": m, "role": "trial"} for m in ("gradcam", "none", "gradcam", "none")]
    roles = [t["role"] for t in trials]
    rows = [{"participant": "a", "trial_idx": 0, "score": 1}, {"participant": "a", "trial_idx": 2, "score": 1},
            {"participant": "b", "trial_idx": 1, "score": 0}]
    sees = {"a": field.arm_trials(trials, "gradcam"), "b": field.arm_trials(trials, "none")}
    out = field.exclusions(["a", "b"], rows, roles, field.FieldSettings(), sees)
    assert out == {"a": None, "b": "incomplete (1 of 2 trials)"}
    assert field.exclusions(["a"], rows[:2], roles, field.FieldSettings())["a"] == "incomplete (2 of 4 trials)"
