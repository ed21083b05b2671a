"""What a participant meets: the answer scale, their blinded and balanced schedule, and how an
answer is scored. Plain Python and numpy: the participant's page imports this, never torch."""
from __future__ import annotations

import numpy as np

__all__ = ["KINDS", "TRUST_SCALE", "schedule", "score_answer", "submit_answer", "trust_slots", "discrimination_options"]

KINDS = ("trust", "discrimination", "simulate", "bias")  # the last two: studies.tasks
# the paper's 5-point scale, as shown (answer = preference for Robot A)
TRUST_SCALE = (
    ("Robot A is clearly more reliable", 2),
    ("Robot A is slightly more reliable", 1),
    ("Both are equally reliable", 0),
    ("Robot B is slightly more reliable", -1),
    ("Robot B is clearly more reliable", -2),
)


def schedule(n_trials: int, seed: int) -> list[tuple[int, bool]]:
    """A participant's order of trials and, per trial, whether the stronger model is Robot A
    (trust) or the options come in stored order (discrimination): a random permutation, and the
    flag balanced (exactly half, rounding at random)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_trials)
    n_a = n_trials // 2 + (int(rng.integers(0, 2)) if n_trials % 2 else 0)
    flags = np.zeros(n_trials, bool)
    flags[:n_a] = True
    rng.shuffle(flags)
    return [(int(t), bool(f)) for t, f in zip(order, flags)]


def trust_slots(flag: bool) -> tuple[str, str]:
    """(Robot A's slot, Robot B's slot): the stronger model's map is Robot A when ``flag``."""
    return ("stronger", "weaker") if flag else ("weaker", "stronger")


def discrimination_options(trial: dict, flag: bool) -> list[str]:
    """The two class names in the order this participant sees them."""
    return list(trial["classes"] if flag else trial["classes"][::-1])


def score_answer(kind: str, trial: dict, flag: bool, choice: str) -> tuple[int, int]:
    """(answer as given, score). Trust: the answer is the preference for Robot A (+2 ... -2),
    the score that preference turned towards the stronger model (the paper's measure).
    Discrimination: the answer is the index of the chosen class in the trial's stored order,
    the score 1 when it is the class whose map was shown, else 0. Simulatability: 1 when the
    choice is what the model says (agreement with the model, not the truth); bias discovery: 1
    when it is the known shortcut. A learning-phase scene scores (0, 0)."""
    if kind == "trust":
        scale = dict(TRUST_SCALE)
        if choice not in scale:
            raise ValueError(f"{choice!r} is not on the trust scale")
        answer = scale[choice]
        return answer, answer if flag else -answer
    if trial.get("role") == "learn":  # a learning-phase scene: seen, not answered
        return 0, 0
    if kind in ("simulate", "bias"):  # what the model will say / what it relies on: one of the options
        if choice not in trial["options"]:
            raise ValueError(f"{choice!r} is not one of this trial's options")
        right = trial["model_says"] if kind == "simulate" else trial["answer"]
        return trial["options"].index(choice), int(choice == right)
    if kind == "discrimination":
        if choice not in trial["classes"]:
            raise ValueError(f"{choice!r} is not one of this trial's classes")
        return trial["classes"].index(choice), int(choice == trial["explained"])
    raise ValueError(f"unknown study kind {kind!r}")


def submit_answer(store, kind: str, token: str, trial: dict, trial_idx: int, position: int, shown: dict,
                  flag: bool, choice: str) -> tuple[int, int]:
    """Score a participant's ``choice`` (:func:`score_answer`) and commit it to ``store``, in one
    call: (answer, score). A bad choice raises ValueError before anything is stored; the store's
    StorageError or StudyClosed passes through (the page keeps the answer and retries)."""
    answer, score = score_answer(kind, trial, flag, choice)
    store.record(token, trial_idx, position, shown, answer, score)
    return answer, score
