"""The ARC bridge: Dask workers on national Slurm clusters from a notebook (see docs/arc.md).

`ARCCluster` is imported lazily so that light users (tags, states, the CLI)
do not pay for dask-jobqueue and distributed.
"""


def __getattr__(name):
    if name == "ARCCluster":
        from .cluster import ARCCluster

        return ARCCluster
    raise AttributeError(name)


__all__ = ["ARCCluster"]
