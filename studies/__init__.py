"""Human studies after Selvaraju et al. (section 5): two-model "which robot is more reliable"
trust tests and class-discrimination tests. Designs with fixed, rendered trials; blinded,
balanced schedules per participant; append-only storage through SQLAlchemy (SQLite by default,
any database URL by configuration); the paper's statistics."""
from .design import DesignError, StudyDesign, build_study
from .stats import discrimination_summary, reliability_summary
from .storage import (StorageError, Store, StudyClosed, StudyNotFound, default_url)

__all__ = ["StudyDesign", "DesignError", "build_study", "Store", "StorageError", "StudyNotFound",
           "StudyClosed", "default_url", "reliability_summary", "discrimination_summary"]
