"""The Pareto front: non-domination by hand, and the table built from a sweep's runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facebias.report.pareto import FRONT, non_dominated, pareto_table


def test_non_dominated_rows_by_hand() -> None:
    values = np.array([[1, 5], [2, 3], [3, 4], [2, 3], [4, 1], [5, 5], [1, 6]])
    # (3,4) is beaten by (2,3); (5,5) by everything but (1,6); (1,6) by (1,5); ties (2,3) dominate neither other.
    assert non_dominated(values).tolist() == [True, True, False, True, True, False, False]


def test_the_table_keeps_finished_trials_the_varying_params_and_flags_the_front() -> None:
    children = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d"],
            "status": ["FINISHED", "FINISHED", "FINISHED", "FAILED"],
            "tags.facebias.job_num": ["0", "1", "2", "3"],
            "params.head.dropout": ["0.1", "0.3", "0.1", "0.2"],
            "params.backbone.name": ["small_cnn"] * 4,
            "metrics.val/mae": [8.0, 9.0, 7.5, np.nan],
            "metrics.val/mean_bias": [3.6, 2.0, 3.5, np.nan],
        }
    )
    table = pareto_table(children, ("val/mae", "val/mean_bias"))
    assert list(table.columns) == ["job", "run_id", "head.dropout", "val/mae", "val/mean_bias", FRONT]
    assert table["run_id"].tolist() == ["c", "b", "a"], "front first (by val/mae), then the others"
    assert table[FRONT].tolist() == [True, True, False]
