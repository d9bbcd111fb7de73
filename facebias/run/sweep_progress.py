"""A sweep's progress in the terminal that started it: jobs done out of the total, and the job running now.

The jobs of a sweep may run in other processes (Hydra's submitit launcher), so the multirun's own process follows
the sweep folder: each job writes `facebias_jobs/<num>.started` (its overrides) when it begins and
`<num>.json` (its outcome) when it ends. A bar (tqdm, like Keras' `fit`) shows on a terminal only.
"""

from __future__ import annotations

import threading
from pathlib import Path

from omegaconf import DictConfig

from facebias.progress import bar, shown

POLL_S = 1.0


def sweep_size(config: DictConfig) -> int | None:
    """How many jobs Hydra's basic sweeper makes of this multirun (None for another sweeper, or if unknown)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = config.hydra.sweeper
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        return None
    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    instance = GlobalHydra.instance()
    parser = OverridesParser.create(config_loader=instance.config_loader() if instance.is_initialized() else None)
    try:
        overrides = parser.parse_overrides([*params, *config.hydra.overrides.task])
        return sum(len(batch) for batch in BasicSweeper.split_arguments(overrides, None))
    except Exception:
        return None


class SweepProgress:
    """A bar of the sweep's jobs, updated from the sweep folder by a background thread until `stop`."""

    def __init__(self, jobs_dir: Path, total: int | None) -> None:
        self.jobs_dir = jobs_dir
        self.total = total
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._follow, name="facebias-sweep-progress", daemon=True)

    def start(self) -> SweepProgress:
        if shown():
            self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()

    def state(self) -> tuple[int, str]:
        """(jobs ended, the overrides of the latest job begun and not ended — or "")."""
        ended = {path.stem for path in self.jobs_dir.glob("*.json")}
        running = sorted((path for path in self.jobs_dir.glob("*.started") if path.stem not in ended),
                         key=lambda path: int(path.stem))
        current = f"job {running[-1].stem}: {running[-1].read_text().strip()}" if running else ""
        return len(ended), current

    def _follow(self) -> None:
        with bar(self.total, "sweep", "job") as shown_bar:
            while True:
                done, current = self.state() if self.jobs_dir.is_dir() else (0, "")
                shown_bar.update(done - shown_bar.n)
                shown_bar.set_postfix_str(current, refresh=True)
                if self.stopped.wait(POLL_S):
                    return
