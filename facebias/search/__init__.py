"""The accuracy-vs-fairness search (`+search=fair_pareto`): facebias' Hydra sweeper over Optuna's ask-and-tell API.

`space` turns Hydra sweep overrides into Optuna distributions and a trial into its jobs' overrides, `study` opens the
persistent study, `sweeper` runs the trials (each `seeds` jobs), `front` writes the Pareto front at the end.
Hydra finds the sweeper as `hydra_plugins.facebias_search`.
"""
