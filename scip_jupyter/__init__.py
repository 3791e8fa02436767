"""SCIP Jupyter: GPU notebooks on Kubernetes, Dask bursts to national Slurm, courses as a unit."""

__version__ = "0.1.0"

#: Prefix of every label, annotation and Slurm job tag this platform writes.
LABEL_PREFIX = "scip.ca"


def _jupyter_server_extension_points():
    return [{"module": "scip_jupyter.server"}]
