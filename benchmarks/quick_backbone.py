"""Benchmark: a quick-mode job with its backbone cut after the first block (`trainer.truncate_backbone`, on in
`trainer=smoke`) against the same job with the whole backbone, side by side in one run.

Runs the quick grid's slowest job — study experiment 8 (InceptionResNetV2, MLP head, three stages), random
initialisation, the tests' 240 / 96 / 96 synthetic images, one epoch of one batch per stage, 32 images evaluated per
split — as a user would (`python -m facebias.train …`, each in a fresh folder, one TensorFlow thread per pool as
the tests run it), alternating whole and truncated, `--pairs` times. Prints each job's CPU seconds (user + system of
the process) and wall time, the medians and the ratio whole / truncated.

    python benchmarks/quick_backbone.py [--pairs 3] [--experiment exp8_irv2_mlp_three_stage]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from side_by_side import alternate, timed_train

QUICK_JOB = ["trainer=smoke", "trainer.max_epochs_cap=1", "trainer.max_train_batches=1", "trainer.max_eval_samples=32",
             "data.n_train=240", "data.n_valid=96", "data.n_test=96", "pretrained.inception_resnet_v2=null",
             "pretrained.resnet50=null", "trainer.verbose=0"]
WHOLE, TRUNCATED = "whole", "truncated"


def timed_job(experiment: str, way: str, folder: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one quick job in `folder`, its backbone cut (`way` TRUNCATED) or whole."""
    return timed_train([f"experiment={experiment}", *QUICK_JOB,
                        f"trainer.truncate_backbone={str(way == TRUNCATED).lower()}"], folder, folder / "cache")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--experiment", default="exp8_irv2_mlp_three_stage")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facebias-quick-backbone-") as scratch:
        median = alternate(args.pairs, [WHOLE, TRUNCATED],
                           lambda way, pair: timed_job(args.experiment, way, Path(scratch) / f"{pair}-{way}"))
    print(f"{args.experiment}, quick mode, medians of {args.pairs}: whole backbone {median[WHOLE][0]:.1f} s CPU "
          f"({median[WHOLE][1]:.1f} s wall), truncated {median[TRUNCATED][0]:.1f} s CPU ({median[TRUNCATED][1]:.1f} s "
          f"wall): {median[WHOLE][0] / median[TRUNCATED][0]:.2f}x less CPU")


if __name__ == "__main__":
    main()
