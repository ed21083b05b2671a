"""Design a study (admin): two models and the one believed stronger (trust) or one model
(class discrimination), the methods, the images and their filter, the number of trials, the
instructions. The study is saved with its fixed trial list, rendered maps, settings and seed."""
import streamlit as st

import studies as studies_lib
from explainers import get_method, method_names
from studies import field
from ui import cache, routing, studies
from ui.text import count

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Design a study")
studies.require_admin()
store = studies.store()

DEFAULT_TITLES = {"trust": "Which robot do you trust?", "discrimination": "Which shape does the robot see?"}
DEFAULT_INSTRUCTIONS = {
    "trust": "Two robots were trained to recognise shapes. For each picture both robots give the "
             "same answer. You will see what each robot looked at to decide. Tell us which robot "
             "you would trust more to get such pictures right, on a 5-point scale.",
    "discrimination": "A robot looked at a picture with two shapes and shows you what it looked "
                      "at for one of them. The picture itself is hidden. Which shape is it showing?",
}

ready, _ = cache.available_models()
kind = st.radio("Kind of study", ["trust", "discrimination"], horizontal=True, key="design_kind",
                format_func={"trust": "Which robot is more reliable (two models)",
                             "discrimination": "Which class does the map show (one model)"}.get)
title = st.text_input("Title (participants see it: do not name the models)", DEFAULT_TITLES[kind],
                      key=f"design_title_{kind}")
if kind == "trust":
    a, b, c = st.columns(3)
    first = a.selectbox("Model 1", ready, index=0, key="design_model_a")
    second = b.selectbox("Model 2", [m for m in ready if m != first],
                         index=min(1, len(ready) - 2) if len(ready) > 2 else 0, key="design_model_b")
    stronger = c.radio("Which do you believe is stronger?", [first, second], key="design_stronger")
    models = (first, second)
else:
    models = (st.selectbox("Model", ready, key="design_model"),)
    stronger = None
methods = st.multiselect("Visualisations (one study can compare several)", method_names(),
                         default=["guided_backprop", "guided_gradcam"], format_func=lambda m: get_method(m).title,
                         key="design_methods")
blind = [get_method(m).title for m in methods if not get_method(m).class_discriminative]
if blind and kind == "discrimination":
    st.warning(f"{', '.join(blind)}: not class-discriminative, so its map hardly changes with the class "
               "shown; participants cannot tell the classes apart from it (a useful control, not a test).")
source_kind = st.radio("Images", ["shapes", "folder"], horizontal=True, key="design_source",
                       format_func={"shapes": "Shapes world (labels known)",
                                    "folder": "A folder of my images on this server"}.get)
if source_kind == "shapes":
    a, b = st.columns(2)
    source = {"source": "shapes", "seed": int(a.number_input("World seed", 0, 10**6, 31000, key="design_world_seed")),
              "candidates": int(b.number_input("Candidate scenes", 1, 5000, 300, key="design_candidates"))}
    if kind == "discrimination":
        st.caption("Two-object scenes are used: each trial shows the map of one of the two shapes.")
else:
    path = st.text_input("Folder path (optional labels.csv inside: file,label)", key="design_folder")
    source = {"source": "folder", "path": path.strip()}
    if not path.strip():
        st.info("Enter the path of a folder of images on this server.")
a, b, c = st.columns(3)
n_images = int(a.number_input("Images (trials = images x visualisations)", 1, 500, 20, key="design_n"))
require_correct = b.checkbox("Only images the models get right", value=kind == "trust", key="design_correct")
seed = int(c.number_input("Seed", 0, 10**6, 0, key="design_seed"))
instructions = st.text_area("Instructions", DEFAULT_INSTRUCTIONS[kind], key=f"design_instructions_{kind}")

with st.expander("In the field: consent, checks, exclusions, completion (fixed before anyone takes part)"):
    consent = st.text_area("Consent text (empty: no consent step; declining stores nothing but the decline)",
                           "", key="design_consent")
    demographics = st.multiselect("Demographics questions", list(field.DEMOGRAPHICS), key="design_demographics",
                                  format_func=lambda q: field.DEMOGRAPHICS[q][0])
    a, b, c = st.columns(3)
    practice = a.checkbox("One practice trial first (not counted)", key="design_practice")
    attention_rate = b.number_input("Attention checks per trial (0.1: one per ten)", 0.0, 0.5, 0.0, 0.05,
                                    key="design_attention",
                                    help="Trust: one robot's map is pure noise; class discrimination: the "
                                         "question names the option to choose. Never counted as trials.")
    completion_code = c.text_input("Completion code (shown at the end; Prolific's redirect uses it)",
                                   key="design_completion")
    a, b, c = st.columns(3)
    max_failed = int(a.number_input("Exclude after more failed checks than", 0, 50, 0, key="design_max_failed"))
    min_median = float(b.number_input("Exclude a median answer time below (s)", 0.0, 60.0, 0.0, 0.5,
                                      key="design_min_median"))
    require_complete = c.checkbox("Exclude incomplete participants", value=True, key="design_complete")
field_settings = {"consent": consent, "demographics": list(demographics), "practice": practice,
                  "attention_rate": float(attention_rate), "min_median_seconds": min_median,
                  "max_failed_checks": max_failed, "require_complete": require_complete,
                  "completion_code": completion_code.strip()}

missing_folder = source["source"] == "folder" and not source["path"]
if st.button("Create study", type="primary", key="design_create", disabled=missing_folder):
    design = studies_lib.StudyDesign(kind=kind, title=title, models=models, methods=tuple(methods),
                                     stronger=stronger, source=source, n_images=n_images,
                                     require_correct=require_correct, instructions=instructions, seed=seed,
                                     field_settings=field_settings)
    bar = st.progress(0.0, text="Running the models on candidate images...")
    try:
        config, trials, stimuli = studies_lib.build_study(
            design, progress=lambda done, total: bar.progress(done / total, text=f"{done} of {total} images kept"),
            load=cache.load_model)
    except studies_lib.DesignError as err:
        bar.empty()
        st.error(f"The study cannot be made: {err}")
        st.stop()
    bar.empty()
    code = studies.guarded(store.save_study, title, kind, config, trials, stimuli)
    st.session_state["design_last_code"] = code
    made = field.trial_counts(trials)
    st.success(f"Study saved: code **{code}**, {count(made['trials'], 'trial')} from {config['images_kept']} images "
               f"({config['candidates_seen']} candidates looked at)"
               + (f", {count(made['attention'], 'attention check')}" if made["attention"] else "")
               + (", a practice trial" if made["practice"] else "") + ". Its pre-registration record "
               "(settings, trials, stimuli hashes, weights sha256) was written with it.")
    if config["images_kept"] < n_images:
        st.warning(f"You asked for {n_images} images; only {config['images_kept']} of the "
                   f"{config['candidates_seen']} candidates passed the filter, so the study has "
                   f"{count(made['trials'], 'trial')}. Add candidates or loosen the filter for more.")
    unreadable = config.get("unreadable_files") or []
    if unreadable:
        st.warning(f"{len(unreadable)} file(s) in the folder could not be read and were left out: "
                   + "; ".join(studies.plain(f"{name} ({why})") for name, why in unreadable[:10])
                   + (" ..." if len(unreadable) > 10 else ""))

last = st.session_state.get("design_last_code")
if last:
    link = studies.participant_link(last)
    st.markdown("Participants open this link (copy it with the button at its right): they see that "
                "study and nothing else.")
    st.code(link, language=None)
    st.caption("From Prolific add `&PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID="
               "{{%SESSION_ID%}}`; Mechanical Turk's external question adds workerId, assignmentId, hitId and "
               "turkSubmitTo itself; any other platform: `&pid=<id>`. The same id coming back resumes.")

st.subheader("Studies")
rows = []
for s in studies.guarded(store.studies):
    participants, answers = studies.guarded(store.counts, s.code)
    made = field.trial_counts(studies.guarded(store.trials, s.code))  # counted as the Design message counts
    rows.append({"code": s.code, "title": s.title, "kind": s.kind, "models": ", ".join(s.config["models"]),
                 "trials": made["trials"], "attention checks": made["attention"], "practice": made["practice"],
                 "participants": participants, "answers": answers,
                 "status": "closed" if s.closed else "open", "created": s.created_at})
st.dataframe(rows, hide_index=True, width="stretch", key="design_studies")
