"""The TensorFlow-free metric API: scores (MAE, per-group MAE, bias) and their uncertainty (docs/metrics.md).

    from facebias.metrics import bias_scores, group_mae_table, bias_intervals, permutation_null
"""

from facebias.metrics.scores import (
    BIAS_ATTRIBUTES,
    EmptyGroupWarning,
    bias_scores,
    group_mae_table,
    mean_absolute_error,
    pairwise_bias,
)
from facebias.metrics.uncertainty import SCORES, NullResult, bias_intervals, permutation_null

__all__ = [
    "BIAS_ATTRIBUTES",
    "SCORES",
    "EmptyGroupWarning",
    "NullResult",
    "bias_intervals",
    "bias_scores",
    "group_mae_table",
    "mean_absolute_error",
    "pairwise_bias",
    "permutation_null",
]
