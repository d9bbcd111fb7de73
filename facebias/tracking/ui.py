"""Links into the MLflow UI that open an experiment's runs in its "Model training" mode.

MLflow 3's UI opens a fresh browser in its GenAI mode (traces); the runs page's `workflowType=machine_learning`
parameter switches it to "Model training", and its `searchFilter` parameter fills the runs search box (a sweep's
link lists the runs whose `mlflow.parentRunId` tag is its parent). A local store's UI is what `mlflow ui
--backend-store-uri <store>` serves, at `DEFAULT_UI`; a tracking server is its own UI. URIs are shown without
their password (`facebias.redaction`).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from facebias.redaction import redacted
from facebias.tracking.server import is_http
from facebias.tracking.store import TrackingStore, connect

DEFAULT_UI = "http://127.0.0.1:5000"
"""Where `mlflow ui` serves by default."""
MODEL_TRAINING = {"workflowType": "machine_learning"}
"""The runs page's query parameter for "Model training" mode."""


def runs_link(ui: str, experiment_id: str, parent_run_id: str | None = None) -> str:
    """The link to experiment `experiment_id`'s runs in Model training mode on UI `ui`; with `parent_run_id`, only
    that sweep's runs."""
    query = dict(MODEL_TRAINING)
    if parent_run_id is not None:
        query["searchFilter"] = f"tags.mlflow.parentRunId = '{parent_run_id}'"
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?{urlencode(query, quote_via=quote)}"


def view_hint(tracking_uri: str, experiment_id: str, parent_run_id: str | None = None) -> str:
    """How to look at the runs: open the link on a tracking server; for any other store, the `mlflow ui` command
    to start and the link to open."""
    if is_http(tracking_uri):
        return f"open {runs_link(redacted(tracking_uri), experiment_id, parent_run_id)}"
    return (f"mlflow ui --backend-store-uri {redacted(tracking_uri)} and open "
            f"{runs_link(DEFAULT_UI, experiment_id, parent_run_id)}")


def sweep_view_hint(store: TrackingStore, parent_run_id: str) -> str:
    """`view_hint` for the runs of the sweep whose parent run is `parent_run_id`."""
    _, experiment_id = connect(store)
    return view_hint(store.uri, experiment_id, parent_run_id)
