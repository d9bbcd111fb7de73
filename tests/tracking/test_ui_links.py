"""The links a run and a sweep print to the MLflow UI: Model training mode, a sweep's filtered to its parent, no
password (hand-written expectations; the browser test follows a printed one)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from facebias.tracking.ui import view_hint


def test_a_local_store_gets_the_command_and_the_model_training_link() -> None:
    assert view_hint("sqlite:////data/mlruns/mlflow.db", "7") == (
        "mlflow ui --backend-store-uri sqlite:////data/mlruns/mlflow.db and open "
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")


def test_a_sweeps_link_on_a_server_is_filtered_to_its_parent_without_the_password() -> None:
    hint = view_hint("https://alice:s3cret@mlflow.example.org", "3", "abc123")
    assert hint == ("open https://alice:***@mlflow.example.org/#/experiments/3/runs?workflowType=machine_learning"
                    "&searchFilter=tags.mlflow.parentRunId%20%3D%20%27abc123%27")
    route, _, query = urlsplit(hint.removeprefix("open ")).fragment.partition("?")
    assert route == "/experiments/3/runs"
    assert parse_qs(query) == {"workflowType": ["machine_learning"],
                               "searchFilter": ["tags.mlflow.parentRunId = 'abc123'"]}
