"""The TensorFlow-free metric API: scores (MAE, per-group MAE, bias), their intervals, the de-biased bias scores and
the permutation test of each bias (docs/metrics.md).

    from facebias.metrics import bias_scores, group_mae_table, bias_intervals, debiased_bias_scores, permutation_null
"""

from facebias.metrics.intervals import (
    DEBIASED_SUFFIX,
    DebiasedScore,
    bias_intervals,
    debiased_bias_scores,
    score_uncertainty,
)
from facebias.metrics.permutation import NullResult, permutation_null
from facebias.metrics.scores import (
    BIAS_ATTRIBUTES,
    EmptyGroupWarning,
    bias_scores,
    group_mae_table,
    mean_absolute_error,
    pairwise_bias,
)
from facebias.metrics.uncertainty import SCORES

__all__ = [
    "BIAS_ATTRIBUTES",
    "DEBIASED_SUFFIX",
    "SCORES",
    "DebiasedScore",
    "EmptyGroupWarning",
    "NullResult",
    "bias_intervals",
    "bias_scores",
    "debiased_bias_scores",
    "group_mae_table",
    "mean_absolute_error",
    "pairwise_bias",
    "permutation_null",
    "score_uncertainty",
]
