"""Many participants at once against one study database, as threads (the way one Streamlit server
serves its sessions): each joins with a platform id, is shown each trial of their schedule and
commits an answer, sometimes twice (a double click, two tabs); a failing database is retried as
the participant's page retries it. ``outage`` (a callable, e.g. stopping and restarting the
server) runs once, from its own thread, when a third of the answers are in.

What comes back says whether anything was lost or counted twice (the database is read at the
end) and how long commits took."""
from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from .storage import StorageError, Store

__all__ = ["field_load"]


def field_load(url: str, participants: int = 200, trials: int = 5, duplicate_share: float = 0.3,
               outage: Callable[[], None] | None = None, retry_s: float = 0.2, give_up_s: float = 120.0,
               seed: int = 0) -> dict:
    store = Store(url)
    payload = [{"method": "m", "label": "circle", "role": "trial"} for _ in range(trials)]
    stimuli = {(i, s): b"png" for i in range(trials) for s in ("stronger", "weaker")}
    code = store.save_study("load", "trust", {}, payload, stimuli)
    lock = threading.Lock()
    commits: list[float] = []
    counts = {"refused_duplicates": 0, "storage_errors": 0, "gave_up": 0, "answers_sent": 0}
    outage_started = threading.Event()
    total = participants * trials
    threads_outage: list[threading.Thread] = []

    def retrying(fn, *args):
        deadline = time.monotonic() + give_up_s
        while True:
            try:
                return fn(*args)
            except StorageError:
                with lock:
                    counts["storage_errors"] += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(retry_s)

    def participant(k: int):
        rng = np.random.default_rng([seed, k])
        try:
            joined = retrying(store.enrol, code, "generic", f"p{k:05d}", {"pid": f"p{k:05d}"})
            for t in rng.permutation(trials).tolist():
                retrying(store.mark_shown, joined.token, t)
                for attempt in range(2 if rng.random() < duplicate_share else 1):
                    started = time.perf_counter()
                    ok = retrying(store.record, joined.token, t, 0, {}, 1, 1)
                    took = time.perf_counter() - started
                    with lock:
                        counts["answers_sent"] += 1
                        if ok:
                            commits.append(took)
                            done = len(commits)
                        else:
                            counts["refused_duplicates"] += 1
                            done = len(commits)
                    if outage is not None and done >= total // 3 and not outage_started.is_set():
                        with lock:
                            if not outage_started.is_set():
                                outage_started.set()
                                th = threading.Thread(target=outage)
                                th.start()
                                threads_outage.append(th)
        except StorageError:
            with lock:
                counts["gave_up"] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=participant, args=(k,)) for k in range(participants)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for th in threads_outage:
        th.join()
    wall = time.perf_counter() - started
    rows = store.responses(code)
    pairs = {(r["participant"], r["trial_idx"]) for r in rows}
    per = {}
    for r in rows:
        per.setdefault(r["participant"], set()).add(r["trial_idx"])
    store.dispose()
    c = np.array(commits) if commits else np.zeros(1)
    return {"participants": participants, "trials": trials, "expected_answers": total, "stored_rows": len(rows),
            "distinct_answers": len(pairs), "complete_participants": sum(len(v) == trials for v in per.values()),
            "outage": outage_started.is_set(), **counts, "commit_p50_s": float(np.percentile(c, 50)),
            "commit_p95_s": float(np.percentile(c, 95)), "commit_max_s": float(c.max()), "wall_s": wall}
