"""`python -m facebias.data.prepare data=… data.root=…`: validate and cache a data source, print its dataset card.

It takes the same overrides as training and loads the data the way a run does (facebias.data.sources), so a
real source is prepared (facebias.data.prepared) once, before any training.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from facebias.config import register_configs, to_train_config
from facebias.data.card import dataset_card
from facebias.data.sources import load_dataset
from facebias.errors import FacebiasError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def main(argv: list[str] | None = None) -> int:
    """Validate and cache a data source, then print its dataset card; 1 with one sentence on stderr on bad input."""
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            config = to_train_config(compose(config_name="train", overrides=list(argv or sys.argv[1:])))
        dataset = load_dataset(config.data)
    except FacebiasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(dataset_card(dataset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
