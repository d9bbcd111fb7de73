"""The search's Optuna study: where it is stored, what it is called, and opening it (created, or loaded to go on).

Storage, first to last: `hydra.sweeper.storage` (any Optuna RDB URL); else, for a local MLflow store (SQLite or a
folder), SQLite `optuna.db` beside it. A tracking server (http…) or a database URI names no database facebias may
use for the study (MLflow's own database must not hold Optuna's tables: both keep an `alembic_version`), so there
the storage must be given. The study's name joins `hydra.sweeper.study_name` and a key of the search command, so
rerunning the same command loads the same study and goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from facebias.errors import ConfigError
from facebias.identity import sweep_key
from facebias.redaction import redacted

STUDY_FILE = "optuna.db"
"""The study's SQLite file, beside a local MLflow store."""
POSTGRESQL_DRIVER = "postgresql+psycopg2"
"""SQLAlchemy's name of the PostgreSQL driver facebias installs (psycopg2-binary)."""
RUN_IDS_ATTR = "run_ids"
"""A trial's user attribute: the MLflow run ids of its seeds, in seed order."""
SEEDS_ATTR = "seeds"
"""A trial's user attribute: its seeds."""


def study_storage(configured: str | None, tracking_uri: str | None, store_dir: Path) -> str:
    """The study's RDB URL: `configured`, else `optuna.db` beside the local MLflow store (`store_dir` when tracking
    is disabled, `tracking_uri` None)."""
    if configured:
        return _with_installed_driver(configured)
    if tracking_uri is None:
        folder = store_dir
    elif tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri.removeprefix("sqlite:///")).parent
    elif tracking_uri.startswith("file:") or "://" not in tracking_uri:
        folder = Path(urlparse(tracking_uri).path if tracking_uri.startswith("file:") else tracking_uri)
    else:
        raise ConfigError(f"the search records to {redacted(tracking_uri)}, whose database facebias does not know: "
                          "give the study one with hydra.sweeper.storage=postgresql://USER@HOST/DATABASE "
                          "(docs/search.md).")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder.resolve() / STUDY_FILE}"


def _with_installed_driver(storage: str) -> str:
    """`storage` with PostgreSQL's driver named: a bare `postgresql://` URL means psycopg 3 to SQLAlchemy ≥ 2.1, while
    facebias installs psycopg2 (`postgresql+psycopg2://`, as MLflow's team server uses)."""
    scheme, separator, rest = storage.partition("://")
    return f"{POSTGRESQL_DRIVER}://{rest}" if separator and scheme == "postgresql" else storage


def study_name(name: str, task_overrides: Sequence[str], experiment: str, seeds: int) -> str:
    """`<name>-<key>`: the key is the command's overrides (any order), the experiment and the number of seeds, so a
    rerun of the same command finds its study, and another command or number of replicates starts its own."""
    return f"{name}-{sweep_key([*task_overrides, f'hydra.sweeper.seeds={seeds}'], experiment)[:12]}"


def open_study(name: str, storage: str, directions: Sequence[str], sampler: Any) -> Any:
    """The study `name` in `storage`, created if new, else loaded with what it holds (an optuna.Study)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                               directions=[optuna.study.StudyDirection[d.upper()] for d in directions],
                               load_if_exists=True)
