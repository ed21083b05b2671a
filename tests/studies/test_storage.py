"""Storage on SQLite and on a real PostgreSQL: append-only, one answer per trial, 20
participants at once, resuming after a reload and after a server restart, a database that is
down."""
import threading

import pytest
from sqlalchemy import text

import studies
from studies import design


def test_study_round_trip(saved_trust, trust_study):
    store, code, trials = saved_trust
    _, config, _, stimuli = trust_study
    s = store.study(code)
    assert (s.kind, s.n_trials, s.closed) == ("trust", len(trials), False)
    assert s.config["stronger"] == "shapes-resnet" and s.config["weights_sha256"] == config["weights_sha256"]
    assert store.trials(code) == trials
    assert store.stimulus(code, 3, "weaker") == stimuli[(3, "weaker")]
    assert store.study(code.upper()).code == code  # codes are case-insensitive
    with pytest.raises(studies.StudyNotFound, match="no study has the code 'nope'"):
        store.study("nope")


def test_the_participant_part_reads_what_a_participant_needs_and_nothing_more(saved_trust, db_url):
    """The participant's page gets ``ParticipantStore``: it joins, answers and reads the trials
    and stimuli the admin part wrote, and it has no way to read others' answers or to close."""
    _, code, trials = saved_trust
    part, admin = studies.ParticipantStore(db_url), studies.AdminStore(db_url)
    try:
        token = part.join(code)
        assert part.trials(code) == trials and part.stimulus(code, 0, "stronger")
        assert part.record(token, 0, 0, {"robot_a": "stronger"}, 1, 1) is True
        assert admin.counts(code) == (1, 1) and admin.responses(code)[0]["participant"] == token
        for admin_only in ("responses", "close_study", "save_study", "demographics", "recruits", "counts"):
            assert not hasattr(part, admin_only), admin_only
        for participant_only in ("join", "record", "answered", "save_demographics"):
            assert not hasattr(admin, participant_only), participant_only
    finally:
        part.dispose()
        admin.dispose()


def test_answers_are_appended_once_and_never_changed(saved_trust):
    store, code, _ = saved_trust
    token = store.join(code)
    assert store.record(token, 2, 0, {"robot_a": "stronger"}, 1, 1) is True
    assert store.record(token, 2, 0, {"robot_a": "stronger"}, -2, -2) is False  # a second submit
    (row,) = store.responses(code)
    assert (row["trial_idx"], row["answer"], row["score"]) == (2, 1, 1)
    assert store.answered(token) == {2}


def test_closed_study_takes_no_participants_or_answers(saved_trust):
    store, code, _ = saved_trust
    token = store.join(code)
    store.close_study(code)
    store.close_study(code)  # twice is fine
    assert store.study(code).closed
    with pytest.raises(studies.StudyClosed, match="closed"):
        store.join(code)
    with pytest.raises(studies.StudyClosed):
        store.record(token, 0, 0, {}, 1, 1)


def test_twenty_participants_at_once(saved_trust):
    """20 threads share one Store (as one app server does), each answering every trial in its
    own order, each sending some answers twice: every answer is stored exactly once."""
    store, code, trials = saved_trust
    n = len(trials)
    sent, errors = {}, []
    start = threading.Barrier(20)

    def participant(k):
        try:
            token = store.join(code)
            _, seed = store.participant(token)
            start.wait()
            for position, (t, flag) in enumerate(design.schedule(n, seed)):
                answer = (k + t) % 5 - 2
                store.record(token, t, position, {"robot_a": "stronger" if flag else "weaker"}, answer,
                             answer if flag else -answer)
                if t % 3 == 0:  # a double click
                    assert store.record(token, t, position, {}, answer, 0) is False
                sent[(token, t)] = answer
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=participant, args=(k,)) for k in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    rows = store.responses(code)
    assert len(rows) == 20 * n == len(sent)
    assert {(r["participant"], r["trial_idx"]): r["answer"] for r in rows} == sent
    assert store.counts(code) == (20, 20 * n)


def test_reload_and_server_restart_lose_nothing(saved_trust, db_url):
    store, code, trials = saved_trust
    token = store.join(code)
    _, seed = store.participant(token)
    plan = design.schedule(len(trials), seed)
    for position, (t, flag) in enumerate(plan[:3]):
        store.record(token, t, position, {}, 1, 1)
    store.dispose()  # the app server stops ...
    again = studies.Store(db_url)  # ... and starts again
    try:
        done = again.answered(token)
        assert done == {t for t, _ in plan[:3]}
        nxt = next(pos for pos, (t, _) in enumerate(plan) if t not in done)
        assert nxt == 3  # a reload continues at the next unanswered trial
        assert len(again.responses(code)) == 3
    finally:
        again.dispose()


def test_schema_is_created_once_and_kept(db_url, trust_study):
    d, config, trials, stimuli = trust_study
    first = studies.Store(db_url)
    code = first.save_study(d.title, d.kind, config, trials, stimuli)
    second = studies.Store(db_url)  # create_all on an existing schema keeps the data
    assert second.study(code).n_trials == len(trials)
    with second.engine.connect() as conn:
        tables = {"studies", "trials", "stimuli", "participants", "responses", "closures"}
        for t in tables:
            conn.execute(text(f"SELECT 1 FROM {t} LIMIT 1"))
    first.dispose(), second.dispose()


def test_database_down_is_a_clear_error(tmp_path):
    with pytest.raises(studies.StorageError, match=r"study database \(postgresql\+psycopg://postgres:\*\*\*@127.0.0.1:9/x\) cannot be used"):
        studies.Store("postgresql+psycopg://postgres:pw@127.0.0.1:9/x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(studies.StorageError, match="cannot be used"):
        studies.Store(f"sqlite:///{blocker}/inside/studies.sqlite")


def test_close_study_in_another_letter_case_closes_it(saved_trust):
    """close_study('ABCD1234') inserted the raw code; the foreign-key error that followed was
    swallowed as 'already closed', and the study stayed open."""
    store, code, _ = saved_trust
    token = store.join(code)
    store.close_study(f"  {code.upper()} ")
    assert store.study(code).closed
    with pytest.raises(studies.StudyClosed):
        store.record(token, 0, 0, {"robot_a": "stronger"}, 1, 1)
    with pytest.raises(studies.StudyNotFound):
        store.close_study("nosuchcd")


def test_only_the_unique_constraint_is_a_duplicate_answer(saved_trust, db_url):
    """Any other constraint violation is a storage error, never 'already answered'."""
    store, code, _ = saved_trust
    token = store.join(code)
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON responses "
                              "BEGIN SELECT RAISE(ABORT, 'check failed: refused by trigger'); END"))
        else:
            conn.execute(text("ALTER TABLE responses ADD CONSTRAINT refuse CHECK (answer < 100)"))
    answer = 1 if store.engine.dialect.name == "sqlite" else 500
    with pytest.raises(studies.StorageError, match="cannot be used"):
        store.record(token, 0, 0, {"robot_a": "stronger"}, answer, 1)
    assert store.answered(token) == set()


def test_no_answer_lands_after_the_study_closes(saved_trust):
    """The closed check is part of the insert: once close_study has returned, every answer
    sent is refused, also from participants in the middle of their trials."""
    import threading
    store, code, trials = saved_trust
    tokens = [store.join(code) for _ in range(4)]
    closed = threading.Event()
    landed, refused, late = [], [], []

    def answer(token):
        for t in range(len(trials)):
            after_close = closed.is_set()
            try:
                store.record(token, t, t, {"robot_a": "stronger"}, 1, 1)
                landed.append(t)
                if after_close:
                    late.append(t)
            except studies.StudyClosed:
                refused.append(t)

    threads = [threading.Thread(target=answer, args=(tok,)) for tok in tokens]
    for th in threads:
        th.start()
    store.close_study(code)
    closed.set()
    for th in threads:
        th.join()
    assert late == []
    assert len(landed) + len(refused) == len(tokens) * len(trials)
    assert len(store.responses(code)) == len(landed)
    with pytest.raises(studies.StudyClosed):
        store.record(tokens[0], 0, 0, {}, 1, 1)


@pytest.mark.slow
def test_schema_creation_is_race_free(tmp_path):
    """15 processes opening one fresh SQLite file at once: one used to fail with 'table studies
    already exists'. Plain subprocesses (not multiprocessing, whose spawned children would
    re-import whatever __main__ an in-process AppTest left behind)."""
    import subprocess
    import sys
    from pathlib import Path
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    root = Path(__file__).resolve().parents[2]
    go = tmp_path / "go"
    code = ("import os, sys, time; import studies\n"
            "while not os.path.exists(sys.argv[2]): time.sleep(0.005)\n"  # start together
            "studies.Store(sys.argv[1]).dispose()")
    procs = [subprocess.Popen([sys.executable, "-c", code, url, str(go)], cwd=root, stderr=subprocess.PIPE, text=True)
             for _ in range(15)]
    import time
    time.sleep(3)  # let them all import
    go.write_text("")
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in results] == [0] * 15, [err[-500:] for rc, err in results if rc]
    store = studies.Store(url)
    assert store.studies() == []
