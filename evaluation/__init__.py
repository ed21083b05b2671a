"""The paper's quantitative protocols and later ones, as a library: weakly supervised
localisation (threshold at 15% of the max, box around the largest segment), the pointing game
and its recall-aware variant, faithfulness against occlusion, deletion / insertion AUC, Average
Drop / Increase in Confidence, and cascading randomisation sanity checks."""
from .data import Object, Sample, from_spec, shapes, voc_folder
from .run import SCORES, all_methods, baselines, evaluate, to_csv

__all__ = ["evaluate", "all_methods", "baselines", "SCORES", "Sample", "Object", "shapes", "voc_folder",
           "from_spec", "to_csv"]
