"""Simulated participants, to check that the study machinery detects a real difference. A
simulated participant sees what a person sees (the two PNGs) and the object's box, and prefers
the map with more of its energy inside the box."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["energy_in_box", "box_energy_answer", "task_answer", "run_task_study", "screen_design"]


def energy_in_box(png: bytes, box) -> float:
    """Share of a pixel-space map's energy (distance from mid-grey, summed over colours) that
    lies inside ``box`` = [x0, y0, x1, y1] (half-open)."""
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float32)
    e = np.abs(a - 127.5).sum(axis=2)
    x0, y0, x1, y1 = box
    total = float(e.sum())
    return float(e[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0


def box_energy_answer(png_a: bytes, png_b: bytes, box, rng: np.random.Generator,
                      noise: float = 0.05) -> int:
    """An answer on the 5-point scale (+2: A clearly more reliable ... -2: B clearly): the
    difference of in-box energy shares, plus a little noise, cut at 0.03 and 0.15."""
    d = energy_in_box(png_a, box) - energy_in_box(png_b, box) + rng.normal(0, noise)
    if abs(d) < 0.03:
        return 0
    sign = 1 if d > 0 else -1
    return sign * (2 if abs(d) >= 0.15 else 1)


# ----------------------------------------------------------------------------- the task kinds (issue 30)

def task_answer(kind: str, trial: dict, options: list[str], rng: np.random.Generator, reads_map: bool,
                slip: float = 0.05) -> str:
    """A simulated participant's choice on a simulatability (``"simulate"``) or bias-discovery
    (``"bias"``) trial. A map reader reads what a person reads off the map, where its peak is
    (``trial["peak_on_mark"]``, measured on the map when the study was built): peak on the corner
    mark means the model goes by the mark (so it will say the mark's class; it relies on the mark),
    else by the shape; with probability ``slip`` it picks at random. A participant without a map to
    read (the no-explanation arm), or who does not read it, guesses."""
    if not reads_map or trial.get("peak_on_mark") is None or rng.random() < slip:
        return str(options[int(rng.integers(len(options)))])
    if kind == "simulate":
        return trial["mark_class"] if trial["peak_on_mark"] else trial["object_class"]
    return "the small mark in a corner" if trial["peak_on_mark"] else "the shape"


def run_task_study(kind: str, trials: list[dict], arms: list[str], participants: int, seed: int = 0,
                   reads_map: bool = True, study_seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    """Simulated participants of a task study with between-subjects ``arms``: each joins in turn
    (its arm drawn as the store draws it, ``studies.participants.arm_for``) and answers its arm's
    counted trials. Returns (rows: participant, trial_idx, score; participant -> arm)."""
    from .participants import arm_for
    from .participation import score_answer
    rng = np.random.default_rng(seed)
    rows, arm_of = [], {}
    for n in range(participants):
        p = f"sim{n}"
        arm = arm_for(n, arms, study_seed)
        arm_of[p] = arm
        for i, t in enumerate(trials):
            if t.get("role", "trial") != "trial" or t["method"] != arm:
                continue
            choice = task_answer(kind, t, t["options"], rng, reads_map)
            rows.append({"participant": p, "trial_idx": i, "score": score_answer(kind, t, True, choice)[1]})
    return rows, arm_of


def screen_design(kind: str, trials: list[dict], arms: list[str], participants: int, draws: int = 200,
                  alpha: float = 0.05, seed: int = 0) -> dict:
    """The power this design would have had with simulated participants who read the maps: the
    share of ``draws`` simulated studies of ``participants`` participants where the first map arm
    beats the control arm (no explanation, or the last arm) in the permutation test of the arms."""
    from .stats import arm_comparison
    control = "none" if "none" in arms else arms[-1]
    treated = next(a for a in arms if a != control)
    hits, diffs = 0, []
    for d in range(draws):
        rows, arm_of = run_task_study(kind, trials, arms, participants, seed=seed + d, study_seed=seed + d)
        c = arm_comparison(rows, arm_of, treated, control, n_boot=200, n_perm=400, seed=d)
        diffs.append(c["difference"])
        hits += c["permutation_p"] <= alpha and c["difference"] > 0
    return {"power": hits / draws, "draws": draws, "participants": participants, "arms": [treated, control],
            "mean_difference": float(np.mean(diffs)), "how": f"simulated participants who read the maps ({draws} studies)"}
