"""Study results (admin): included and excluded participants with the reason (the rule fixed in
the design), then, on the included participants' counted trials only, per method the relative
reliability in favour of the stronger model with a bootstrap interval, a sign test and a
permutation test (trust), or the accuracy per method (class discrimination); per participant and
per image; the pre-registration record, the platform's approval list and the raw answers."""
import plotly.graph_objects as go
import streamlit as st

import studies as studies_lib
from studies import field
from ui import routing, studies
from ui.text import count

routing.guard()  # a deep link on a fresh server runs through dashboard.py's navigation

st.title("Study results")
studies.require_admin()
store = studies.store()
all_studies = studies.guarded(store.studies)
if not all_studies:
    st.info("No study yet: design one on the Design a study page.")
    st.stop()
# open or closed is said under the picker, not in its labels: the browser keeps showing a keyed
# selectbox's old label for the chosen option when only the label changes (seen in Chromium)
labels = {s.code: f"{s.code}: {s.title} ({s.kind})" for s in all_studies}
code = st.selectbox("Study", list(labels), format_func=labels.get, key="results_study")
study = studies.guarded(store.study, code)
trials = studies.guarded(store.trials, code)
rows = studies.guarded(store.responses, code)
participants, answers = studies.guarded(store.counts, code)
cfg = study.config


made = field.trial_counts(trials)
sizes = (f"{count(made['trials'], 'trial')}" + (f" (and {count(made['attention'], 'attention check')})"
                                                 if made["attention"] else "")
         + f"; {count(participants, 'participant')}, {count(answers, 'answer')}")
if study.kind == "trust":
    st.markdown(f"Models: **{cfg['stronger']}** (believed stronger) vs "
                f"**{next(m for m in cfg['models'] if m != cfg['stronger'])}**; methods: {', '.join(cfg['methods'])}; "
                f"{sizes}.")
else:
    st.markdown(f"Model: **{cfg['models'][0]}**; methods: {', '.join(cfg['methods'])}; {sizes}.")
confirming = f"results_confirm_close_{code}"
if study.closed:
    st.info("This study is closed: it takes no more participants or answers.")
elif st.session_state.get(confirming):
    st.warning(f"Close the study {studies.plain(study.title)} ({code}) for good? It then takes no more participants "
               "or answers, also from participants in the middle of it; this cannot be undone. The answers stay.")
    yes, no = st.columns(2)
    if yes.button("Yes, close it", type="primary", key="results_close_yes"):
        studies.guarded(store.close_study, code)
        del st.session_state[confirming]
        st.rerun()
    if no.button("Cancel", key="results_close_cancel"):
        del st.session_state[confirming]
        st.rerun()
else:
    st.caption("This study is open: it takes participants and answers.")
    if st.button("Close the study (no more participants or answers)...", key="results_close"):
        st.session_state[confirming] = True
        st.rerun()
settings = field.FieldSettings.from_config(cfg)
roles = [t.get("role", "trial") for t in trials]
try:
    record, record_hash = store.preregistration(code)
    st.download_button(f"Pre-registration record (JSON, sha256 {record_hash[:12]}...)", record,
                       f"study_{code}_preregistration.json", "application/json", key="results_prereg",
                       help=f"The frozen design written when the study was made; sha256 {record_hash}")
except studies_lib.StudyNotFound as err:
    st.caption(studies.plain(str(err)))
except studies_lib.StorageError as err:
    st.error(f"{studies.plain(str(err))}. Try again in a moment.")
declined = studies.guarded(store.declines, code)
tokens = studies.guarded(store.participant_tokens, code)
arm_of_token = studies.guarded(store.arms, code)  # between subjects: who saw which arm (empty: no arms)
excluded = field.exclusions(tokens, rows, roles, settings,
                            {t: field.arm_trials(trials, a) for t, a in arm_of_token.items()})
out = {p: why for p, why in excluded.items() if why}
recruits = studies.guarded(store.recruits, code)
platform_ids = {r["token"]: r["platform_id"] for r in recruits}  # participants by their platform id
rule = [f"incomplete (fewer than {count(made['trials'], 'counted trial')})"
        if settings.require_complete else None,
        f"more than {count(settings.max_failed_checks, 'failed attention check')}"
        if made["attention"] else None,
        f"median answer time below {settings.min_median_seconds:g} s" if settings.min_median_seconds > 0 else None]
st.markdown(f"**Participants**: {len(tokens) - len(out)} included, {len(out)} excluded"
            + (f", {declined} declined consent" if declined else "") + ". Exclusion rule fixed in the design: "
            + ("; ".join(r for r in rule if r) or "none") + f". Attention checks per participant: "
            f"{made['attention']}; practice trials: {made['practice']} (neither is counted).")
if out:
    st.dataframe([{"participant": platform_ids.get(p) or p[:8], "excluded because": why,
                   "action": field.approval_action(why)} for p, why in out.items()], hide_index=True,
                 key="results_excluded")
if recruits:
    approvals = field.approval_rows(recruits, excluded)
    st.download_button(f"Approval list for the platform (CSV: approve / reject / return, "
                       f"{count(len(approvals), 'participant')})",
                       field.csv_text(approvals),
                       f"study_{code}_approvals.csv", "text/csv", key="results_approvals")
all_rows = rows
if all_rows:  # every stored answer, whoever is excluded: offered before the statistics, which may have none
    st.download_button("Raw answers (CSV)", field.raw_answers_csv(all_rows, trials, excluded, platform_ids),
                       f"study_{code}.csv", "text/csv", key="results_csv")
rows = field.included_rows(rows, roles, excluded)
if not rows:
    st.info("No answers yet." if not all_rows else "No counted answers from included participants yet.")
    st.stop()
method_of = {i: t["method"] for i, t in enumerate(trials)}

if study.kind == "trust":
    summary = studies_lib.reliability_summary(rows, method_of, seed=int(cfg.get("seed", 0)))
    st.dataframe([{"method": r["method"], "answers": r["answers"], "participants": r["participants"],
                   "relative reliability": round(r["relative_reliability"], 3),
                   "95% CI": f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]" if r["ci_low"] == r["ci_low"] else
                   f"none (fewer than {studies_lib.MIN_PARTICIPANTS_FOR_CI} participants)",
                   "favour stronger / non-zero": f"{r['favour_stronger']} / {r['non_zero']}",
                   "sign test p": f"{r['sign_test_p']:.3g}", "permutation p": f"{r['permutation_p']:.3g}"}
                  for r in summary], hide_index=True, width="stretch", key="results_summary")
    st.caption("Relative reliability: the mean answer in favour of the stronger model (+2 clearly "
               "stronger ... -2 clearly weaker), as in the paper. 95% CI: percentile bootstrap, 10,000 "
               "resamples of the participants (drawn with replacement, each with all of their answers, "
               "since one person's answers are not independent); with fewer than "
               f"{studies_lib.MIN_PARTICIPANTS_FOR_CI} participants no interval is given, as so few say little "
               "about anyone else. Sign test: exact, over non-zero answers. Permutation: sign flips of "
               "participants' means.")
    fig = go.Figure(go.Bar(x=[r["method"] for r in summary], y=[r["relative_reliability"] for r in summary],
                           error_y=dict(type="data", symmetric=False,  # NaN: no interval, no bar
                                        array=[r["ci_high"] - r["relative_reliability"] for r in summary],
                                        arrayminus=[r["relative_reliability"] - r["ci_low"] for r in summary])))
    fig.update_layout(height=320, title="Relative reliability in favour of the stronger model",
                      yaxis=dict(range=[-2, 2]), margin=dict(l=0, r=0, t=30, b=0))
    st.plotly_chart(fig, key="results_chart")
    hist = go.Figure([go.Histogram(x=[r["score"] for r in rows if method_of[r["trial_idx"]] == m], name=m,
                                   xbins=dict(start=-2.5, end=2.5, size=1)) for m in cfg["methods"]])
    hist.update_layout(height=280, barmode="group", title="Answers (in favour of the stronger model)",
                       margin=dict(l=0, r=0, t=30, b=0))
    st.plotly_chart(hist, key="results_hist")
else:  # discrimination, simulatability, bias discovery: a share of right answers against chance
    chance = {"bias": 1 / 3}.get(study.kind, 0.5)
    summary = studies_lib.discrimination_summary(rows, method_of, chance=chance)
    st.dataframe([{"method": r["method"], "answers": r["answers"], "participants": r["participants"],
                   "accuracy": f"{r['accuracy']:.1%}", "95% CI": f"[{r['ci_low']:.1%}, {r['ci_high']:.1%}]",
                   f"binomial p (vs {chance:.0%})": f"{r['binomial_p']:.3g}"} for r in summary],
                 hide_index=True, width="stretch", key="results_summary")
    fig = go.Figure(go.Bar(x=[r["method"] for r in summary], y=[r["accuracy"] for r in summary],
                           error_y=dict(type="data", symmetric=False,
                                        array=[r["ci_high"] - r["accuracy"] for r in summary],
                                        arrayminus=[r["accuracy"] - r["ci_low"] for r in summary])))
    fig.update_layout(height=320, title={"simulate": "Share of answers that predict what the model says",
                                         "bias": "Share of answers naming the model's shortcut (the corner mark)"}
                      .get(study.kind, "Share of answers naming the explained class"), yaxis=dict(range=[0, 1]),
                      margin=dict(l=0, r=0, t=30, b=0))
    st.plotly_chart(fig, key="results_chart")

if cfg.get("arms"):  # between subjects: each arm against the control (no explanation, or the first arm)
    st.subheader("Arms compared (participants as the unit)")
    arm_of = arm_of_token
    arms = list(cfg["methods"])
    control = "none" if "none" in arms else arms[0]
    compared = [studies_lib.arm_comparison(rows, arm_of, a, control, seed=int(cfg.get("seed", 0)))
                for a in arms if a != control]
    st.dataframe([{"arm": c["first"], "against": c["second"],
                   "participants": f"{c['participants_first']} / {c['participants_second']}",
                   "difference of means": round(c["difference"], 3),
                   "95% CI": f"[{c['ci_low']:.2f}, {c['ci_high']:.2f}]" if c["ci_low"] == c["ci_low"] else
                   f"none (fewer than {studies_lib.MIN_PARTICIPANTS_FOR_CI} participants in an arm)",
                   "permutation p": f"{c['permutation_p']:.3g}" if c["permutation_p"] == c["permutation_p"] else "-"}
                  for c in compared], hide_index=True, width="stretch", key="results_arms")
    st.caption("Each participant saw one arm, drawn when they joined (balanced: the arms' sizes differ by at most "
               "one). A participant's score is the mean of their answers; the difference of the arms' means has a "
               "percentile bootstrap interval (participants resampled within each arm) and a permutation test of "
               "the arm labels.")

st.subheader("Per participant")
st.dataframe(studies_lib.per_participant(rows, method_of, platform_ids), hide_index=True, width="stretch",
             key="results_participants")
st.subheader("Per image")
st.dataframe(studies_lib.per_image(rows, trials), hide_index=True, width="stretch", key="results_images")
