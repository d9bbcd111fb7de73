"""The Pareto front: non-domination and the hypervolume by hand, and the files written for a search's parent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facebias.report.pareto import FRONT, RUN_IDS, TRIAL, hypervolume_2d, non_dominated, reference_point, write_pareto


def test_non_dominated_rows_by_hand() -> None:
    values = np.array([[1, 5], [2, 3], [3, 4], [2, 3], [4, 1], [5, 5], [1, 6]])
    # (3,4) is beaten by (2,3); (5,5) by everything but (1,6); (1,6) by (1,5); ties (2,3) dominate neither other.
    assert non_dominated(values).tolist() == [True, True, False, True, True, False, False]


def test_the_hypervolume_of_a_three_point_front_by_hand() -> None:
    # Front (1,5), (2,3), (4,1); (3,4) is dominated by (2,3). Reference (5,6). Slicing the dominated region by the
    # second objective: y in [5,6] starts at x=1 (width 4), y in [3,5] at x=2 (width 3), y in [1,3] at x=4 (width 1):
    # 4·1 + 3·2 + 1·2 = 12.
    front = np.array([[1.0, 5.0], [3.0, 4.0], [2.0, 3.0], [4.0, 1.0]])
    assert hypervolume_2d(front, (5.0, 6.0)) == pytest.approx(12.0, rel=1e-15)
    # A duplicate adds nothing; a point beyond the reference on either objective adds nothing.
    assert hypervolume_2d(np.vstack([front, [[2.0, 3.0], [0.5, 7.0], [6.0, 0.5]]]), (5.0, 6.0)) == 12.0
    # One point: its rectangle. (2,3) alone against (5,6): 3·3.
    assert hypervolume_2d(np.array([[2.0, 3.0]]), (5.0, 6.0)) == 9.0
    assert hypervolume_2d(np.array([[6.0, 7.0]]), (5.0, 6.0)) == 0.0


def test_the_default_reference_point_is_the_worst_observed_values_times_1_1() -> None:
    values = np.array([[10.0, 2.0], [8.0, 3.0], [12.0, 1.5]])
    assert reference_point(values).tolist() == pytest.approx([13.2, 3.3], rel=1e-15)
    assert reference_point(values, [20.0, 5.0]).tolist() == [20.0, 5.0]
    # With the default point, the hypervolume by hand: sorted by x, (8,3): (13.2-8)(3.3-3) = 1.56; (10,2):
    # (13.2-10)(3-2) = 3.2; (12,1.5): (13.2-12)(2-1.5) = 0.6; 5.36 in all.
    assert hypervolume_2d(values, reference_point(values)) == pytest.approx(5.36, rel=1e-12)


def test_the_files_list_the_front_with_its_test_objectives_and_every_trial(tmp_path: Path) -> None:
    table = pd.DataFrame({TRIAL: [0, 1, 2], "weighting": ["none", "group", "group"],
                          "val/mae": [8.0, 9.0, 7.5], "val/mean_bias": [3.6, 2.0, 3.5],
                          "test/mae": [np.nan, 9.4, 7.9], "test/mean_bias": [np.nan, 2.2, 3.8],
                          RUN_IDS: ["a;b", "c;d", "e;f"]})
    table[FRONT] = non_dominated(table[["val/mae", "val/mean_bias"]].to_numpy())
    paths = write_pareto(table, ("val/mae", "val/mean_bias"), tmp_path, "Front", "Hypervolume of the front: 1")
    assert [path.name for path in paths] == ["pareto.md", "pareto.csv", "pareto.png"]
    markdown = paths[0].read_text()
    assert "Hypervolume of the front: 1\n\nNon-dominated trials (2 of 3 finished):" in markdown
    assert "| 1 | group | 9 | 2 | 9.4 | 2.2 |" in markdown and "| 2 | group | 7.5 | 3.5 | 7.9 | 3.8 |" in markdown
    assert "| 0 |" not in markdown, "trial 0 is dominated by trial 2"
    assert RUN_IDS not in markdown and "c;d" not in markdown, "run ids in the csv only"
    written = pd.read_csv(paths[1])
    assert written[RUN_IDS].tolist() == ["a;b", "c;d", "e;f"]
    assert written[FRONT].tolist() == [False, True, True] and written["test/mae"].isna().tolist() == [True, False,
                                                                                                         False]
