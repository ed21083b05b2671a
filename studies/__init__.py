"""Human studies after Selvaraju et al. (section 5): two-model "which robot is more reliable"
trust tests and class-discrimination tests. Designs with fixed, rendered trials; blinded,
balanced schedules per participant; append-only storage through SQLAlchemy (SQLite by default,
any database URL by configuration); the paper's statistics.

Names are imported on first use (PEP 562): a participant's page needs storage and scoring, not
the model stack that designing a study loads (``studies.design`` imports torch)."""
from importlib import import_module

__all__ = ["StudyDesign", "DesignError", "build_study", "Store", "ParticipantStore", "AdminStore", "StorageError", "StudyNotFound",
           "StudyClosed", "default_url", "reliability_summary", "discrimination_summary", "score_answer",
           "schedule", "TRUST_SCALE", "MIN_PARTICIPANTS_FOR_CI", "per_participant", "per_image", "arm_comparison"]

_WHERE = {
    "StudyDesign": "design", "DesignError": "design", "build_study": "design",
    "reliability_summary": "stats", "discrimination_summary": "stats", "MIN_PARTICIPANTS_FOR_CI": "stats",
    "per_participant": "stats", "per_image": "stats", "arm_comparison": "stats",
    "Store": "storage", "ParticipantStore": "participants", "AdminStore": "admin", "StorageError": "storage", "StudyClosed": "storage", "StudyNotFound": "storage",
    "default_url": "storage",
    "score_answer": "participation", "schedule": "participation", "TRUST_SCALE": "participation",
}


def __getattr__(name):
    if name in _WHERE:
        value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
