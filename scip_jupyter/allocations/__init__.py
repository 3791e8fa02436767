"""GPU allocations: quotas (`quotas.py`), pure decisions (`policy.py`), the atomic ledger (`ledger.py`).

See docs/allocations.md. The spawner mixin (scip_jupyter/spawners/base.py) is the one caller that
reserves and releases; everything else only reads.
"""
