"""PseudoSampler: takes every positive and negative of an AssignResult as it is (what all five heads use)."""
from __future__ import annotations


class PseudoSampler:
    """No sampling; see AssignResult.pos_inds / neg_inds. num_pos is counted as max(positives, 1) per image."""
