"""facebias: Hydra-composed, MLflow-tracked experiments on fairness-aware apparent-age estimation."""

__version__ = "0.1.0"
