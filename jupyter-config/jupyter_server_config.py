"""SCIP Jupyter defaults every single-user server loads (installed into <prefix>/etc/jupyter/).

Dask's scratch space per person: without this, every account's Dask writes to the
one /tmp/dask-scratch-space, and whoever comes second gets a PermissionError. The
kernels (and the Slurm workers they submit, which inherit the environment) use a
folder in the person's own home instead. A value the deployment already set wins.
"""

import os

os.environ.setdefault("DASK_TEMPORARY_DIRECTORY", os.path.join(os.path.expanduser("~"), ".cache", "dask-scratch"))
