"""facebias' search sweeper as Hydra finds it (Hydra takes sweepers only from classes defined in hydra_plugins),
and its config, `hydra/sweeper=facebias_search`, which conf/search/fair_pareto.yaml chooses.

The code lives in facebias.search.sweeper; Optuna is imported only when a search starts.
"""

from hydra.core.config_store import ConfigStore

from facebias.search import sweeper


class SearchSweeper(sweeper.FacebiasSearchSweeper):
    """facebias.search.sweeper.FacebiasSearchSweeper: Optuna ask-and-tell, a persistent study, seeds per trial."""


ConfigStore.instance().store(group="hydra/sweeper", name="facebias_search", node=sweeper.SearchSweeperConf,
                             provider="facebias")
