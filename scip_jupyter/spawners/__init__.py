"""SCIP spawners: one mixin (`base.SCIPSpawnerMixin`) and two small backends.

- `kube.SCIPKubeSpawner` (KubeSpawner) with the pure pod builders in `k8s_objects`;
- `local.SCIPLocalSpawner` (the embedded default) with the pure environment
  builders in `local_env`.

The backends are imported lazily so that the local spawner never imports the
Kubernetes client. Entry points: `scip-kube` and `scip-local`.
"""

from __future__ import annotations

__all__ = ["SCIPSpawnerMixin", "SCIPKubeSpawner", "SCIPLocalSpawner"]


def __getattr__(name: str):
    if name == "SCIPSpawnerMixin":
        from .base import SCIPSpawnerMixin

        return SCIPSpawnerMixin
    if name == "SCIPKubeSpawner":
        from .kube import SCIPKubeSpawner

        return SCIPKubeSpawner
    if name == "SCIPLocalSpawner":
        from .local import SCIPLocalSpawner

        return SCIPLocalSpawner
    raise AttributeError(name)
