"""Take part in a study: reached with a study code (``?study=CODE`` shows this page alone). The
participant sees the instructions, then one trial at a time, blinded; each answer is committed
before the next trial appears, and a reload continues at the next unanswered trial. Nothing the
URL carries is rendered as Markdown, and a participant never sees a database address or a
driver's error: a failed save keeps the chosen answer and retries."""
import streamlit as st

from studies import participation
from ui import studies

store = studies.store(participant=True)
code = st.query_params.get("study") or st.text_input("Study code", key="participate_code",
                                                      help="The code the researcher gave you.")
if not code:
    st.title("Take part in a study")
    st.info("Enter the study code you were given.")
    st.stop()
study = studies.guarded(store.study, code, participant=True)
st.title(study.title)

token = st.query_params.get("p")
if token:
    owner, seed = studies.guarded(store.participant, token, participant=True)
    if owner != study.code:
        st.error("This participant link belongs to another study; start again from the study link.")
        st.stop()
else:
    if study.closed:
        st.error("This study is closed and takes no more answers. Thank you for your interest.")
        st.stop()
    st.markdown(study.config.get("instructions") or "")
    st.caption(f"{study.n_trials} short questions. Your answers are saved as you go; if you reload "
               "the page you continue where you left off.")
    if st.button("Start", type="primary", key="participate_start"):
        st.query_params["study"] = study.code
        st.query_params["p"] = studies.guarded(store.join, study.code, participant=True)
        st.rerun()
    st.stop()

plan = participation.schedule(study.n_trials, seed)
done = studies.guarded(store.answered, token, participant=True)
remaining = [(pos, t, flag) for pos, (t, flag) in enumerate(plan) if t not in done]
st.progress(len(done) / study.n_trials, text=f"{len(done)} of {study.n_trials} answered")
if not remaining:
    st.success("All your answers are saved. Thank you for taking part!")
    st.stop()
if study.closed:
    st.error("This study has been closed; your earlier answers are saved. Thank you!")
    st.stop()

position, trial_idx, flag = remaining[0]
trial = studies.guarded(store.trials, study.code, participant=True)[trial_idx]
pending_key = f"participate_pending_{token}_{trial_idx}"
pending = st.session_state.get(pending_key)  # an answer given whose save failed: kept, not lost
with st.form(key=f"trial_{position}", clear_on_submit=True):
    if study.kind == "trust":
        first, second = participation.trust_slots(flag)
        st.markdown("Both robots say this image shows **{}**. Here is what each one looked at."
                    .format(studies.plain(trial["label"])))
        left, right = st.columns(2)
        left.image(studies.guarded(store.stimulus, study.code, trial_idx, first, participant=True),
                   caption="Robot A", width=256)
        right.image(studies.guarded(store.stimulus, study.code, trial_idx, second, participant=True),
                    caption="Robot B", width=256)
        options = [label for label, _ in participation.TRUST_SCALE]
        question = "Which robot is more reliable?"
        shown = {"robot_a": first, "robot_b": second}
    else:
        options = participation.discrimination_options(trial, flag)
        st.image(studies.guarded(store.stimulus, study.code, trial_idx, "map", participant=True), width=256)
        question = "Which of these does the picture show?"
        shown = {"options": list(options)}
    choice = st.radio(question, options, index=options.index(pending) if pending in options else None,
                      key=f"answer_{position}")
    submitted = st.form_submit_button("Save answer and continue", type="primary")


def save(choice_: str) -> None:
    """Score and commit; on a database failure keep the answer (pending) and show the retry."""
    answer, score = participation.score_answer(study.kind, trial, flag, choice_)
    st.session_state[pending_key] = choice_
    if studies.save_answer(store, token, trial_idx, position, shown, answer, score):
        del st.session_state[pending_key]
    st.rerun()  # the next trial appears only after the answer is committed


if submitted:
    if choice is None:
        st.warning("Pick an answer first.")
        st.stop()
    save(choice)
if pending is not None:
    st.warning("Saving failed; your answer is kept. We retried a few times: press \"Retry saving my "
               "answer\" in a moment. Nothing you answered before is lost.")
    if st.button("Retry saving my answer", key="participate_retry"):
        save(pending)
