"""Design a study (admin): two models and the one believed stronger (trust) or one model
(class discrimination), the methods, the images and their filter, the number of trials, the
instructions. The study is saved with its fixed trial list, rendered maps, settings and seed."""
import streamlit as st

import studies as studies_lib
from explainers import get_method, method_names
from studies import field
from studies import plan as plan_lib
from ui import cache, routing, studies
from ui.text import count

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Design a study")
studies.require_admin()
store = studies.store()

DEFAULT_TITLES = {"trust": "Which robot do you trust?", "discrimination": "Which shape does the robot see?",
                  "simulate": "What will the robot say?", "bias": "What does the robot rely on?"}
DEFAULT_INSTRUCTIONS = {
    "trust": "Two robots were trained to recognise shapes. For each picture both robots give the "
             "same answer. You will see what each robot looked at to decide. Tell us which robot "
             "you would trust more to get such pictures right, on a 5-point scale.",
    "discrimination": "A robot looked at a picture with two shapes and shows you what it looked "
                      "at for one of them. The picture itself is hidden. Which shape is it showing?",
    "simulate": "A robot names the shape in each picture. First you see a few pictures with its answer and "
                "where it looked. Then its answer is hidden: say what you think it will answer (not what the "
                "shape really is).",
    "bias": "A robot names the shape in each picture. The colours show where it looked to decide. Tell us "
            "what you think it relies on.",
}

ready, _ = cache.available_models()
kind = st.radio("Kind of study", ["trust", "discrimination", "simulate", "bias"], horizontal=True, key="design_kind",
                format_func={"trust": "Which robot is more reliable (two models)",
                             "discrimination": "Which class does the map show (one model)",
                             "simulate": "Predict what the model will say (simulatability)",
                             "bias": "What does the model rely on (bias discovery)"}.get)
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
    default = ready.index("shapes-biased") if kind in ("simulate", "bias") and "shapes-biased" in ready else 0
    models = (st.selectbox("Model", ready, index=default, key=f"design_model_{kind}"),)
    stronger = None
    if kind in ("simulate", "bias"):
        st.caption("shapes-biased reads the corner mark: right where the mark matches the shape, wrong where it "
                   "names another; its maps show why. Half the test scenes are of each kind (simulatability).")
arms = st.checkbox("Between subjects: each participant sees one visualisation (an arm), drawn when they join "
                   "so that the arms stay balanced; \"no explanation\" can be an arm", key="design_arms")
offered = method_names() + (["none"] if arms else [])
methods = st.multiselect("Visualisations (one study can compare several)", offered,
                         default=["guided_backprop", "guided_gradcam"],
                         format_func=lambda m: "No explanation (the prediction alone)" if m == "none" else
                         get_method(m).title, key="design_methods")
blind = [get_method(m).title for m in methods if m != "none" and not get_method(m).class_discriminative]
if blind and kind == "discrimination":
    st.warning(f"{', '.join(blind)}: not class-discriminative, so its map hardly changes with the class "
               "shown; participants cannot tell the classes apart from it (a useful control, not a test).")
source_kind = st.radio("Images", ["shapes"] if kind in ("simulate", "bias") else ["shapes", "folder"], horizontal=True,
                       key="design_source_task" if kind in ("simulate", "bias") else "design_source",
                       format_func={"shapes": "Shapes world (labels known)",
                                    "folder": "A folder of my images on this server"}.get)
if source_kind == "shapes":
    a, b = st.columns(2)
    source = {"source": "shapes", "seed": int(a.number_input("World seed", 0, 10**6, 31000, key="design_world_seed")),
              "candidates": int(b.number_input("Candidate scenes", 1, 5000, 300, key="design_candidates"))}
    if kind == "discrimination":
        st.caption("Two-object scenes are used: each trial shows the map of one of the two shapes.")
    if kind == "simulate":
        source["learn"] = int(st.number_input("Learning scenes (shown with the robot's answer first)", 1, 50, 4,
                                              key="design_learn"))
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
    made = st.session_state.get("design_made", 0)  # studies made in this session: each starts its codes empty
    completion_code = c.text_input("Completion code (shown at the end; Prolific's redirect uses it)",
                                   key=f"design_completion_{made}",
                                   help="Each study needs its own: it is not carried over to the next design.")
    a, b = st.columns(2)
    no_consent_code = a.text_input("No-consent code (Prolific: a participant who declines goes back with it)",
                                   key=f"design_no_consent_code_{made}")
    failed_check_code = b.text_input("Failed-check code (ends the study for a participant who fails more checks "
                                     "than allowed, back to Prolific with it; empty: they go on)",
                                     key=f"design_failed_check_code_{made}")
    a, b, c = st.columns(3)
    max_failed = int(a.number_input("Exclude after more failed checks than", 0, 50, 0, key="design_max_failed"))
    min_median = float(b.number_input("Exclude a median answer time below (s)", 0.0, 60.0, 0.0, 0.5,
                                      key="design_min_median"))
    require_complete = c.checkbox("Exclude incomplete participants", value=True, key="design_complete")
field_settings = {"consent": consent, "demographics": list(demographics), "practice": practice,
                  "attention_rate": float(attention_rate), "min_median_seconds": min_median,
                  "max_failed_checks": max_failed, "require_complete": require_complete,
                  "completion_code": completion_code.strip(), "no_consent_code": no_consent_code.strip(),
                  "failed_check_code": failed_check_code.strip()}

with st.expander("Plan before you pay: participants needed for a given power, and the cost"):
    trials_each = n_images * (1 if arms else max(1, len(methods)))  # a participant's trials
    analyses = list(plan_lib.ANALYSES)
    a, b, c = st.columns(3)
    analysis = a.selectbox("Analysis", analyses, index=analyses.index("arms" if arms else "sign" if kind == "trust"
                                                                      else "binomial"),
                           format_func=plan_lib.ANALYSES.get, key=f"plan_analysis_{kind}_{arms}")
    alpha = b.number_input("Alpha (two-sided)", 0.001, 0.2, 0.05, 0.005, format="%.3f", key="plan_alpha")
    target = c.number_input("Power wanted", 0.5, 0.99, 0.8, 0.05, key="plan_power")
    pilots = [s for s in studies.guarded(store.studies) if s.kind == kind]
    source_of_effect = st.radio("Effect size", ["entered", "pilot"], horizontal=True, key="plan_effect_source",
                                format_func={"entered": "Enter it", "pilot": "From a pilot study's answers"}.get)
    pilot_minutes, effect = None, None
    if source_of_effect == "pilot" and not pilots:
        st.info(f"No {kind} study has been run here yet to serve as a pilot: enter the effect instead.")
    elif source_of_effect == "pilot":
        pilot = st.selectbox("Pilot study", pilots, format_func=lambda s: f"{s.code}: {s.title}", key="plan_pilot")
        rows = studies.guarded(store.responses, pilot.code)
        pilot_methods = {i: t["method"] for i, t in enumerate(studies.guarded(store.trials, pilot.code))}
        method = st.selectbox("Method of the pilot", sorted(set(pilot_methods.values())), key="plan_pilot_method")
        try:
            effect = plan_lib.effect_from_pilot(analysis, rows, pilot_methods, method)
        except ValueError as err:
            st.info(f"Cannot plan from this pilot: {studies.plain(err)}.")
        pilot_minutes = plan_lib.minutes_per_participant(rows) or None
    if effect is not None and source_of_effect == "pilot":
        st.caption(f"The pilot: {len(effect.pilot)} participants; share of non-zero answers favouring the stronger "
                   f"model {effect.favour:.2f}, ties {effect.ties:.2f}, participants' mean score {effect.mean:.2f} "
                   f"(sd {effect.sd:.2f}).")
    elif source_of_effect == "entered":
        a, b, c = st.columns(3)
        if analysis == "binomial":
            effect = plan_lib.Effect(accuracy=a.number_input("Expected accuracy", 0.5, 1.0, 0.7, 0.01,
                                                             key="plan_accuracy"))
        elif analysis == "sign":
            effect = plan_lib.Effect(favour=a.number_input("Share of non-zero answers favouring the stronger model",
                                                           0.5, 1.0, 0.7, 0.01, key="plan_favour"),
                                     ties=b.number_input("Share of 'about the same' answers", 0.0, 0.9, 0.2, 0.05,
                                                         key="plan_ties"))
        else:
            what = "Difference between the arms' mean scores" if analysis == "arms" else "Participants' mean score"
            effect = plan_lib.Effect(mean=a.number_input(what, 0.0, 4.0, 0.5, 0.05, key="plan_mean"),
                                     sd=b.number_input("Spread of participants' means (sd)", 0.05, 4.0, 1.0, 0.05,
                                                       key="plan_sd"))
    a, b, c, d = st.columns(4)
    pay = a.number_input("Pay per participant", 0.0, 1000.0, 1.5, 0.1, key="plan_pay")
    fee = b.number_input("Platform fee (share of the pay)", 0.0, 1.0, 0.333, 0.01, format="%.3f", key="plan_fee",
                         help="Prolific's service fee on top of the pay: 0.333 for a third (check your account).")
    minimum = c.number_input("Platform's minimum pay per hour", 0.0, 100.0, 9.0, 0.5, key="plan_minimum")
    per_trial = d.number_input("Seconds per trial (your estimate until a pilot measures it)", 1.0, 300.0, 10.0, 1.0,
                               key="plan_seconds", disabled=pilot_minutes is not None)
    arms_n = int(st.number_input("Arms (between subjects; the arms analysis compares two)", 1, 8, 2 if analysis ==
                                 "arms" else 1, key="plan_arms"))
    if st.button("Plan", key="plan_run", disabled=effect is None):
        with st.spinner("Computing the power..."):
            got = plan_lib.plan(analysis, trials_each, effect, alpha, target, pay, fee, minimum, arms=arms_n,
                                pilot_minutes=pilot_minutes, seconds_per_trial=per_trial, draws=400)
        st.session_state["plan_record"] = got.record()
    planned = st.session_state.get("plan_record")
    if planned:
        if planned["participants"] is None:
            st.warning(f"Even {plan_lib.MAX_PARTICIPANTS} participants give a power of {planned['power']:.2f} "
                       f"({planned['how']}): the expected effect is too small for this design.")
        else:
            unit = " per arm" if planned["analysis"] == "arms" else ""
            money = planned["cost"]
            st.success(f"**{planned['participants']} participants{unit}** for a power of {planned['power']:.2f} "
                       f"at alpha {planned['alpha']:g} ({planned['how']}; {planned['trials']} trials each). "
                       f"Cost: {money['participants']} x {money['pay']:.2f} + fee = **{money['total']:.2f}** "
                       f"({money['minutes']:.1f} minutes each, {money['minutes_source']}; "
                       f"{money['hourly']:.2f} an hour).")
            if money["warning"]:
                st.warning(f"The pay is too low: {money['warning']}.")
            st.caption("This plan is stored in the study's pre-registration record when you create the study.")

missing_folder = source["source"] == "folder" and not source["path"]
if st.button("Create study", type="primary", key="design_create", disabled=missing_folder):
    design = studies_lib.StudyDesign(kind=kind, title=title, models=models, methods=tuple(methods),
                                     stronger=stronger, source=source, n_images=n_images,
                                     require_correct=require_correct, instructions=instructions, seed=seed,
                                     field_settings=field_settings, plan=st.session_state.get("plan_record") or {},
                                     arms=arms)
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
    # a study's codes and plan are its own: the next design starts with empty fields (new widgets)
    st.session_state["design_made"] = st.session_state.get("design_made", 0) + 1
    st.session_state.pop("plan_record", None)
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
    made_study = studies.guarded(store.study, last)
    arms_made = list(made_study.config.get("methods") or [])
    if made_study.kind in ("simulate", "bias") and made_study.config.get("arms") and len(arms_made) >= 2:
        with st.expander("Screen this design with simulated participants before paying"):
            st.caption("Simulated participants who read the maps (where each map's peak is) in the map arms and "
                       "guess in the no-explanation arm take the study many times; the share of those studies "
                       "where the map arm beats the control (permutation test) is the power this design would "
                       "have had. Real people read maps less well: take it as an upper bound.")
            per_arm = int(st.number_input("Participants in all", 2, 400, 20, key="screen_n"))
            if st.button("Screen", key="screen_run"):
                from studies import simulate
                with st.spinner("Running simulated studies..."):
                    got = simulate.screen_design(made_study.kind, studies.guarded(store.trials, last), arms_made,
                                                 per_arm, draws=100)
                st.success(f"Power {got['power']:.2f} with {per_arm} participants ({got['how']}; mean difference "
                           f"{got['mean_difference']:+.2f} between {got['arms'][0]} and {got['arms'][1]}).")
    link = studies.participant_link(last)
    st.markdown("Participants open this link (copy it with the button at its right): they see that "
                "study and nothing else.")
    st.code(link, language=None)
    st.markdown("For Prolific, paste this URL as the study's link (Prolific fills in the placeholders):")
    st.code(field.platform_link(link, "prolific"), language=None)
    st.caption("Mechanical Turk: the link above as the external question's URL (MTurk adds workerId, "
               "assignmentId, hitId and turkSubmitTo itself); any other platform: add `&pid=<id>`. The same "
               "id coming back resumes.")

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
