"""GPU allocations: quotas (`quotas.py`), pure decisions (`policy.py`), the atomic ledger (`ledger.py`,
Alembic `migrations/`), GPU-hours of Slurm jobs from sacct (`usage_sacct.py`), the check before
`sbatch` (`burst.py`), usage reports (`usage.py`, `usage_cli.py`, `usage_model.py`) and the hub
wiring (`hub.py`: hub id, the `scip-usage` service).

See docs/allocations.md. The spawner mixin (scip_jupyter/spawners/base.py) is the one caller that
reserves and releases servers; the sacct reconciler records Slurm jobs; everything else only reads.
"""
