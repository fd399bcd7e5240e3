"""Evaluation: how well networks paint, measured as Gatys et al. measure it.

- :mod:`~fastnst.evaluation.metrics`: the distances (:class:`Judge`, :func:`color_kept`).
- :mod:`~fastnst.evaluation.gatys`: the optimisation reference, cached.
- :mod:`~fastnst.evaluation.report`: ``fastnst evaluate``'s reports, sheets and frontier plots.
- :mod:`~fastnst.evaluation.targets`: each network over Gatys, and the targets it misses.
"""

from fastnst.evaluation.gatys import GatysRun, cached_gatys, steps_to_match
from fastnst.evaluation.metrics import Judge, Scores, color_kept
from fastnst.evaluation.report import (
    checkpoint_labels,
    contact_sheet,
    evaluate,
    evaluate_paintings,
    frontier_plot,
    painting_sheet,
)
from fastnst.evaluation.targets import QualityTargets, gatys_methods, gatys_ratios, gatys_steps_sentence

__all__ = [
    "GatysRun", "Judge", "QualityTargets", "Scores", "cached_gatys", "checkpoint_labels", "color_kept",
    "contact_sheet", "evaluate", "evaluate_paintings", "frontier_plot", "gatys_methods", "gatys_ratios",
    "gatys_steps_sentence", "painting_sheet", "steps_to_match",
]  # fmt: skip
