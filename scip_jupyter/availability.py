"""Free GPUs per flavour on a Kubernetes cluster (full GPUs and MIG slices).

`gpu_availability(nodes, pods)` is pure: from Node and Pod objects (plain API
JSON) it adds up each node's allocatable `nvidia.com/*` resources and what
pods bound to it request. `profile_availability` maps that to catalog
profiles. `KubeAvailability` is the thin I/O: two list calls, cached for a TTL
so a spawn form opened by many users costs at most one read per TTL.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .catalog import Profile

GPU_PREFIX = "nvidia.com/"
_DONE = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Flavour:
    """One extended resource (e.g. nvidia.com/mig-1g.10gb) across schedulable nodes."""

    resource: str
    allocatable: int
    requested: int
    pending: int = 0  # requested by pods not yet bound to a node

    @property
    def free(self) -> int:
        return max(self.allocatable - self.requested, 0)


def _count(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:  # extended resources are whole numbers; anything else is not ours
        return 0


def _schedulable(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = [c for c in conditions if c.get("type") == "Ready"]
    return not ready or ready[0].get("status") == "True"


def pod_gpu_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """GPU resources a pod holds: container requests, else limits (extended resources default requests to limits)."""
    out: dict[str, int] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for key, value in merged.items():
            if key.startswith(GPU_PREFIX):
                out[key] = out.get(key, 0) + _count(value)
    return out


def gpu_availability(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> dict[str, Flavour]:
    """Allocatable, requested and free count per `nvidia.com/*` resource.

    >>> node = {"metadata": {"name": "g1"}, "status": {"allocatable": {"nvidia.com/mig-1g.10gb": "7"}}}
    >>> pod = {"spec": {"nodeName": "g1", "containers": [{"resources": {"limits": {"nvidia.com/mig-1g.10gb": "1"}}}]},
    ...        "status": {"phase": "Running"}}
    >>> gpu_availability([node], [pod])["nvidia.com/mig-1g.10gb"].free
    6
    """
    allocatable: dict[str, int] = {}
    names = set()
    for node in nodes:
        if not _schedulable(node):
            continue
        names.add(node["metadata"]["name"])
        for key, value in ((node.get("status") or {}).get("allocatable") or {}).items():
            if key.startswith(GPU_PREFIX):
                allocatable[key] = allocatable.get(key, 0) + _count(value)
    requested: dict[str, int] = {}
    pending: dict[str, int] = {}
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in _DONE:
            continue
        node_name = (pod.get("spec") or {}).get("nodeName")
        target = requested if node_name in names else pending if not node_name else None
        if target is None:  # bound to a node we do not count (cordoned, not ready)
            continue
        for key, value in pod_gpu_requests(pod).items():
            target[key] = target.get(key, 0) + value
    keys = sorted(set(allocatable) | set(requested) | set(pending))
    return {k: Flavour(k, allocatable.get(k, 0), requested.get(k, 0), pending.get(k, 0)) for k in keys}


def profile_availability(profiles: Iterable[Profile], flavours: Mapping[str, Flavour]) -> dict[str, int | None]:
    """How many more servers of each profile fit now; None for CPU profiles (not tracked here)."""
    out: dict[str, int | None] = {}
    for profile in profiles:
        resource = profile.gpu_resource
        if resource is None:
            out[profile.slug] = None
            continue
        flavour = flavours.get(resource[0])
        out[profile.slug] = flavour.free // resource[1] if flavour else 0
    return out


class KubeAvailability:
    """Reads nodes and pods through a kubernetes_asyncio CoreV1Api, cached for `ttl` seconds."""

    def __init__(self, api: Any, ttl: float = 30.0, clock=time.monotonic):
        self.api = api
        self.ttl = ttl
        self.clock = clock
        self._cached: tuple[float, dict[str, Flavour]] | None = None
        self._lock = asyncio.Lock()

    async def flavours(self) -> dict[str, Flavour]:
        async with self._lock:  # concurrent form renders share one read
            if self._cached and self.clock() - self._cached[0] < self.ttl:
                return self._cached[1]
            nodes = await self._items(self.api.list_node)
            pods = await self._items(
                self.api.list_pod_for_all_namespaces, field_selector="status.phase!=Succeeded,status.phase!=Failed"
            )
            result = gpu_availability(nodes, pods)
            self._cached = (self.clock(), result)
            return result

    @staticmethod
    async def _items(method, **kwargs) -> list[dict[str, Any]]:
        # Raw JSON rather than model objects: the pure function reads API field names.
        response = await method(_preload_content=False, **kwargs)
        try:
            return (await response.json())["items"]
        finally:
            response.release()
