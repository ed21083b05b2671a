"""Take part in a study: reached with a study code (``?study=CODE`` shows this page alone). The
participant sees the instructions, then one trial at a time, blinded; each answer is committed
before the next trial appears, and a reload continues at the next unanswered trial."""
import streamlit as st

from studies import design
from ui import studies

store = studies.store()
code = st.query_params.get("study") or st.text_input("Study code", key="participate_code",
                                                      help="The code the researcher gave you.")
if not code:
    st.title("Take part in a study")
    st.info("Enter the study code you were given.")
    st.stop()
study = studies.guarded(store.study, code)
st.title(study.title)

token = st.query_params.get("p")
if token:
    owner, seed = studies.guarded(store.participant, token)
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
        st.query_params["p"] = studies.guarded(store.join, study.code)
        st.rerun()
    st.stop()

plan = design.schedule(study.n_trials, seed)
done = studies.guarded(store.answered, token)
remaining = [(pos, t, flag) for pos, (t, flag) in enumerate(plan) if t not in done]
st.progress(len(done) / study.n_trials, text=f"{len(done)} of {study.n_trials} answered")
if not remaining:
    st.success("All your answers are saved. Thank you for taking part!")
    st.stop()
if study.closed:
    st.error("This study has been closed; your earlier answers are saved. Thank you!")
    st.stop()

position, trial_idx, flag = remaining[0]
trial = studies.guarded(store.trials, study.code)[trial_idx]
with st.form(key=f"trial_{position}", clear_on_submit=True):
    if study.kind == "trust":
        first, second = ("stronger", "weaker") if flag else ("weaker", "stronger")
        st.markdown(f"Both robots say this image shows **{trial['label']}**. Here is what each one looked at.")
        left, right = st.columns(2)
        left.image(studies.guarded(store.stimulus, study.code, trial_idx, first), caption="Robot A", width=256)
        right.image(studies.guarded(store.stimulus, study.code, trial_idx, second), caption="Robot B", width=256)
        labels = [label for label, _ in design.TRUST_SCALE]
        choice = st.radio("Which robot is more reliable?", labels, index=None, key=f"answer_{position}")
        shown = {"robot_a": first, "robot_b": second}
    else:
        options = trial["classes"] if flag else trial["classes"][::-1]
        st.image(studies.guarded(store.stimulus, study.code, trial_idx, "map"), width=256)
        choice = st.radio("Which of these does the picture show?", options, index=None, key=f"answer_{position}")
        shown = {"options": list(options)}
    submitted = st.form_submit_button("Save answer and continue", type="primary")

if submitted:
    if choice is None:
        st.warning("Pick an answer first.")
        st.stop()
    if study.kind == "trust":
        answer = dict(design.TRUST_SCALE)[choice]
        score = answer if flag else -answer  # in favour of the stronger model
    else:
        answer = trial["classes"].index(choice)
        score = int(choice == trial["explained"])
    studies.guarded(store.record, token, trial_idx, position, shown, answer, score)
    st.rerun()  # the next trial appears only after the answer is committed
