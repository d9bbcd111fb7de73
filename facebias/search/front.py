"""The end of a search: its front, the front's hypervolume, and the front's trials on the test split.

The front is read from the study: every COMPLETE trial with its parameters and its objectives (validation means
over its seeds). The front was chosen on those validation scores, so they flatter it (the winner's curse); the
front's trials — and only they, once, here — get their test objectives, the means over the same seeds of their
runs' `test/…` metrics, reported beside the validation ones. pareto.md, pareto.csv and pareto.png are written to
`<sweep dir>/pareto` and, with the hypervolume and its reference point as metrics, logged to the search's parent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebias.report.pareto import FRONT, RUN_IDS, TRIAL, hypervolume_2d, non_dominated, reference_point, write_pareto
from facebias.run.sweep import BIAS_OBJECTIVE, OBJECTIVE
from facebias.search.study import RUN_IDS_ATTR
from facebias.tracking.runs import log_folder
from facebias.tracking.store import TrackingStore, client_for, with_retries

log = logging.getLogger(__name__)

OBJECTIVES = (OBJECTIVE, BIAS_OBJECTIVE)
TEST_OBJECTIVES = tuple(name.replace("val/", "test/", 1) for name in OBJECTIVES)
HYPERVOLUME_METRIC = "pareto/hypervolume"
REFERENCE_METRICS = tuple(f"pareto/reference/{name}" for name in OBJECTIVES)


def trials_table(study: Any) -> pd.DataFrame:
    """One row per COMPLETE trial: number, parameters, validation objectives, run ids; `pareto_front` flagged."""
    import optuna

    rows = [{TRIAL: t.number, **t.params, **dict(zip(OBJECTIVES, t.values, strict=True)),
             RUN_IDS: ";".join(run for run in t.user_attrs.get(RUN_IDS_ATTR, []) if run)}
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    table = pd.DataFrame(rows)
    if not table.empty:
        table[FRONT] = non_dominated(table[list(OBJECTIVES)].to_numpy())
    return table


def mean_test_objectives(store: TrackingStore, run_ids: Sequence[str]) -> list[float]:
    """The means over runs `run_ids` of their test objectives (NaN where a run lacks one)."""
    client = client_for(store.uri)
    metrics = [with_retries(lambda run=run: client.get_run(run), "read a run").data.metrics for run in run_ids]
    return [float(np.mean([m.get(name, math.nan) for m in metrics])) if metrics else math.nan
            for name in TEST_OBJECTIVES]


def finish_search(study: Any, store: TrackingStore | None, parent_run_id: str | None, folder: Path,
                  configured_reference: Sequence[float] | None) -> pd.DataFrame | None:
    """Write the front (with test objectives when tracked), print its hypervolume, log both to the parent."""
    table = trials_table(study)
    if table.empty:
        log.warning("no trial of the search finished: no Pareto front")
        return None
    values = table[list(OBJECTIVES)].to_numpy()
    reference = reference_point(values, configured_reference)
    volume = hypervolume_2d(values, reference)
    for name in TEST_OBJECTIVES:
        table[name] = math.nan
    if store is not None:
        for index in table.index[table[FRONT]]:
            runs = [run for run in table.at[index, RUN_IDS].split(";") if run]
            table.loc[index, list(TEST_OBJECTIVES)] = mean_test_objectives(store, runs)
    columns = [c for c in table.columns if c not in (*TEST_OBJECTIVES, RUN_IDS, FRONT)]
    table = table[[*columns, *TEST_OBJECTIVES, RUN_IDS, FRONT]]
    table = table.sort_values([FRONT, OBJECTIVES[0]], ascending=[False, True]).reset_index(drop=True)
    how = "configured" if configured_reference is not None else "the worst observed values × 1.1"
    summary = (f"Hypervolume of the front: {volume:.6g} (reference point {OBJECTIVES[0]} {reference[0]:.6g}, "
               f"{OBJECTIVES[1]} {reference[1]:.6g}: {how}; years²). Trials were chosen on the validation "
               f"objectives (means over their seeds); the front's test objectives, read once at the end, are "
               f"the honest estimate.")
    write_pareto(table, OBJECTIVES, folder, f"Pareto front of study {study.study_name}", summary)
    log.info("%s\nPareto front of the search (also in %s):\n%s", summary, folder,
             table[table[FRONT]].drop(columns=[FRONT, RUN_IDS]).to_string(index=False))
    if store is not None and parent_run_id is not None:
        client = client_for(store.uri)
        metrics = {HYPERVOLUME_METRIC: volume, **dict(zip(REFERENCE_METRICS, reference, strict=True))}
        for key, value in metrics.items():
            with_retries(lambda key=key, value=value: client.log_metric(parent_run_id, key, float(value),
                                                                        step=len(table)), "log the hypervolume")
        log_folder(store, parent_run_id, folder, "pareto")
    return table
