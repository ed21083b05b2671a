"""Take part in a study: reached with a study code (``?study=CODE`` shows this page alone), and
from a recruitment platform with its identifiers (Prolific's PROLIFIC_PID, STUDY_ID, SESSION_ID;
Mechanical Turk's workerId, assignmentId, hitId, turkSubmitTo; or a generic pid). The same
platform id coming back resumes its own participant. Consent first when the study asks for it
(declining stores nothing but the decline), optional demographics, a practice trial, then one
trial at a time, blinded, attention checks among them; each answer is committed before the next
trial appears (its time measured on the server from the trial's first showing), and a reload or
another replica continues at the next unanswered trial. At the end: the completion code and the
way back to the platform. Nothing the URL carries is rendered as Markdown, and a participant never
sees a database address or a driver's error: the chosen answer is kept in the session from the
moment it is submitted (the button's callback, before any database call), so a database that fails
before or during the save loses nothing, and the trial shows it selected with a retry button."""
import streamlit as st

from studies import field, participation
from ui import routing, studies

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

store = studies.store(participant=True)
heading = st.empty()  # the title sits above the code box, and becomes the study's once it is known
code = st.query_params.get("study") or st.text_input("Study code", key="participate_code",
                                                      help="The code the researcher gave you.")
if not code:
    heading.title("Take part in a study")
    st.info("Enter the study code you were given.")
    st.stop()
study = studies.guarded(store.study, code, participant=True)
settings = field.FieldSettings.from_config(study.config)
heading.title(study.title)
try:
    recruit = field.recruitment_from(st.query_params)
except ValueError as err:
    st.error(f"This study link is not valid: {studies.plain(err)}. Please open the link from the platform again.")
    st.stop()

token = st.query_params.get("p")
if not token and recruit.identified:  # the same platform id again: their own participant, resumed
    token = studies.guarded(store.recruit_token, study.code, recruit.platform, recruit.platform_id,
                            participant=True)
    if token:
        st.query_params["p"] = token
pending_key = f"participate_pending_{token}"  # {"trial", "choice"}: an answer given and not yet saved
if token and st.session_state.get(pending_key):
    st.info("Your last answer is kept on this page; it is saved as soon as you go on.")
if token:
    owner, seed = studies.guarded(store.participant, token, participant=True)
    if owner != study.code:
        st.error("This participant link belongs to another study; start again from the study link.")
        st.stop()
else:
    if st.session_state.get(f"declined_{study.code}"):
        st.info("You chose not to take part. Nothing about you was stored. Thank you for your time.")
        back = field.redirect(settings.no_consent_code, recruit, "Back to Prolific")
        if back.url:
            st.markdown(f"Your no-consent code: **{studies.plain(back.code)}**")
            st.link_button(back.label, back.url, type="primary")
        elif recruit.platform == "prolific":
            st.markdown("Please return the study on Prolific (the \"Return\" button on your submission), so "
                        "that nothing counts against you.")
        elif back.code:
            st.markdown(f"Your no-consent code: **{studies.plain(back.code)}**")
        else:
            st.caption("You may close this page.")
        st.stop()
    if study.closed:
        st.error("This study is closed and takes no more answers. Thank you for your interest.")
        st.stop()
    st.markdown(study.config.get("instructions") or "")
    one_arm = study.config["methods"][0] if study.config.get("arms") else None  # the arms are of equal length
    trials_total = sum(1 for t in studies.guarded(store.trials, study.code, participant=True)
                       if t.get("role", "trial") not in ("practice", "learn") and (one_arm is None or t.get("method") == one_arm))
    st.caption(f"{trials_total} short questions. Your answers are saved as you go; if you reload "
               "the page you continue where you left off.")
    if recruit.preview:
        st.info("This is a preview of the task. Accept the HIT to start; the questions appear then.")
        st.stop()

    def start():
        joined = studies.guarded(store.enrol, study.code, recruit.platform, recruit.platform_id, recruit.meta,
                                 participant=True)
        st.query_params["study"] = study.code
        st.query_params["p"] = joined.token
        st.rerun()

    if settings.consent:
        st.subheader("Consent")
        st.markdown(studies.plain(settings.consent))
        a, b = st.columns(2)
        if a.button("I agree and want to take part", type="primary", key="participate_consent"):
            start()
        if b.button("I do not agree", key="participate_decline"):
            studies.guarded(store.decline, study.code, participant=True)
            st.session_state[f"declined_{study.code}"] = True
            st.rerun()
    elif st.button("Start", type="primary", key="participate_start"):
        start()
    st.stop()

if settings.demographics and not studies.guarded(store.has_demographics, token, participant=True):
    with st.form(key="demographics"):
        st.markdown("A few questions about you. Each is optional: leave any of them unanswered if you prefer.")
        answers = {q: st.radio(field.DEMOGRAPHICS[q][0], field.DEMOGRAPHICS[q][1], index=None, key=f"demo_{q}")
                   for q in settings.demographics}
        sent = st.form_submit_button("Continue", type="primary")
    if sent:  # unanswered questions are stored as not answered (None), never asked for again
        studies.guarded(store.save_demographics, token, answers, participant=True)
        st.rerun()
    st.stop()

trials = studies.guarded(store.trials, study.code, participant=True)
roles = [t.get("role", "trial") for t in trials]
arm = studies.guarded(store.arm, token, participant=True)  # between subjects: drawn at joining, kept
plan = field.plan(roles, seed, only=field.arm_trials(trials, arm))
done = studies.guarded(store.answered, token, participant=True)
remaining = [item for item in plan if item.trial not in done]
counted = [item for item in plan if item.role not in ("practice", "learn")]
answered = sum(1 for item in counted if item.trial in done)
st.progress(answered / max(1, len(counted)), text=f"{answered} of {len(counted)} answered")
if not remaining:
    st.success("All your answers are saved. Thank you for taking part!")
    end = field.completion(settings, recruit)
    if end.code:
        st.markdown(f"Your completion code: **{studies.plain(end.code)}**")
    if end.url and end.fields:  # MTurk: its external-submit form, by POST
        st.html(end.form_html())
    elif end.url:
        st.link_button(end.label, end.url, type="primary")
    st.stop()
if study.closed:
    st.error("This study has been closed; your earlier answers are saved. Thank you!")
    st.stop()
if settings.failed_check_code and "attention" in roles and field.failed_checks(
        studies.guarded(store.own_scores, token, participant=True), roles) > settings.max_failed_checks:
    st.warning("The study ends here: more attention questions were missed than the study allows. Your answers "
               "are saved. Thank you for your time.")
    back = field.redirect(settings.failed_check_code, recruit, "Back to Prolific")
    st.markdown(f"Your code: **{studies.plain(back.code)}**")
    if back.url:
        st.link_button(back.label, back.url, type="primary")
    st.stop()

item = remaining[0]
position, trial_idx, flag = item.position, item.trial, item.flag
trial = trials[trial_idx]
studies.guarded(store.mark_shown, token, trial_idx, participant=True)  # the answer's clock starts here
kept = st.session_state.get(pending_key)  # an answer given whose save failed or never ran: kept, not lost
if kept and kept["trial"] != trial_idx:  # its trial is answered (the save went through after all)
    del st.session_state[pending_key]
    kept = None
pending = kept["choice"] if kept else None


def keep_answer(answer_key: str, trial_: int) -> None:
    """The submit button's callback: it runs before the page, so a database that fails before
    the save (reading the trials, marking one shown) cannot lose the answer just given."""
    if st.session_state.get(answer_key) is not None:
        st.session_state[pending_key] = {"trial": trial_, "choice": st.session_state[answer_key]}


if item.role == "practice":
    st.info("A practice question first, to get to know the task; it does not count.")
elif item.role == "learn":
    st.info("First, a few pictures with the robot's answer, to learn how it decides. Nothing to answer yet.")
elif "learn" in roles and answered == 0:
    st.info("Now the robot's answer is hidden: say what you think it will answer.")
elif "practice" in roles and answered == 0:
    st.info("That was the practice. From here on, every question counts.")
with st.form(key=f"trial_{position}", clear_on_submit=True):
    if study.kind == "trust":
        first, second = participation.trust_slots(flag)
        st.markdown(("Both robots say this image shows **{}**." if trial["method"] == "none" else
                     "Both robots say this image shows **{}**. Here is what each one looked at.")
                    .format(studies.plain(trial["label"])))
        studies.stimulus_pair(st, studies.guarded(store.stimulus, study.code, trial_idx, first, participant=True),
                              studies.guarded(store.stimulus, study.code, trial_idx, second, participant=True))
        options = [label for label, _ in participation.TRUST_SCALE]
        question = "Which robot is more reliable?"
        shown = {"robot_a": first, "robot_b": second, "role": item.role}
    elif item.role == "learn":  # the learning phase: the robot's answer and its map, nothing to choose
        studies.stimulus(st, studies.guarded(store.stimulus, study.code, trial_idx, "map", participant=True))
        st.markdown("The robot says this picture shows **{}**{}.".format(
            studies.plain(trial["model_says"]), "" if trial["method"] == "none" else "; the colours show where it "
            "looked to decide"))
        options, question = ["Seen"], "Look at the picture and what the robot said, then go on."
        shown = {"role": "learn"}
    elif study.kind in ("simulate", "bias"):
        options = list(trial["options"]) if flag else list(trial["options"])[::-1]
        studies.stimulus(st, studies.guarded(store.stimulus, study.code, trial_idx, "map", participant=True))
        question = ("What will the robot say this picture shows?" if study.kind == "simulate" else
                    "What does the robot rely on to decide?")
        shown = {"options": options, "role": item.role}
    else:
        options = participation.discrimination_options(trial, flag)
        studies.stimulus(st, studies.guarded(store.stimulus, study.code, trial_idx, "map", participant=True))
        question = "Which of these does the picture show?"
        if item.role == "attention":
            question = f"To show you are reading: choose \"{studies.plain(trial['explained'])}\" here."
        shown = {"options": list(options), "role": item.role}
    choice = st.radio(question, options, index=options.index(pending) if pending in options else
                      0 if item.role == "learn" else None, key=f"answer_{position}")
    submitted = st.form_submit_button("Save answer and continue", type="primary", on_click=keep_answer,
                                      args=(f"answer_{position}", trial_idx))


def save(choice_: str) -> None:
    """Score and commit; on a database failure keep the answer (pending) and show the retry."""
    st.session_state[pending_key] = {"trial": trial_idx, "choice": choice_}
    if studies.save_answer(store, study.kind, token, trial, trial_idx, position, shown, flag, choice_):
        del st.session_state[pending_key]
    st.rerun()  # the next trial appears only after the answer is committed


if submitted:
    if choice is None:
        st.warning("Pick an answer first.")
        st.stop()
    save(choice)
if pending is not None:
    st.warning("Saving failed, retrying: your answer is kept. We retried a few times; press \"Retry saving "
               "my answer\" in a moment. Nothing you answered before is lost.")
    if st.button("Retry saving my answer", key="participate_retry"):
        save(pending)
