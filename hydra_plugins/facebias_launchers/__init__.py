"""facebias's Slurm launcher as Hydra finds it: Hydra takes launchers only from classes defined in hydra_plugins.

The code lives in facebias.run.slurm; conf/hydra/launcher/slurm.yaml and slurm_gpu.yaml name the class below.
"""

from facebias.run import slurm


class SlurmLauncher(slurm.SlurmLauncher):
    """facebias.run.slurm.SlurmLauncher: every job of the array waited for, a job Slurm ended failing only itself."""
