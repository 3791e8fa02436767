"""Free GPUs per flavour, on a Kubernetes cluster or a Slurm cluster (full GPUs and MIG slices).

Kubernetes: `gpu_availability(nodes, pods)` is pure: from Node and Pod objects
(plain API JSON) it adds up each node's allocatable `nvidia.com/*` resources and
what pods bound to it request. `KubeAvailability` is the thin I/O: two list
calls, cached for a TTL so a spawn form opened by many users costs at most one
read per TTL.

Slurm: `slurm_gpu_availability(text)` is pure: from `sinfo -N -O` lines (node,
configured GRES, GRES in use, state) it adds up the GPUs of each GRES type on
usable nodes. Type names are the flavours of `catalog.Profile.flavour`
(`h100`, `h100_1g.10gb`). `SlurmAvailability` runs `sinfo` with a timeout and
caches the answer (or the failure) for a TTL.

`profile_availability` maps either to catalog profiles: how many more servers
of each GPU profile fit now.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

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


def kube_resource(profile: Profile) -> tuple[str, int] | None:
    """The Kubernetes extended resource a profile asks for, and how many."""
    return profile.gpu_resource


def slurm_resource(profile: Profile) -> tuple[str, int] | None:
    """The Slurm GRES type (= flavour) a profile would hold, and how many."""
    return (profile.flavour, profile.units) if profile.flavour else None


def profile_availability(
    profiles: Iterable[Profile],
    flavours: Mapping[str, Flavour],
    resource_of: Callable[[Profile], tuple[str, int] | None] = kube_resource,
) -> dict[str, int | None]:
    """How many more servers of each profile fit now; None for CPU profiles (not tracked here).

    A GPU profile whose resource the cluster does not offer gets 0.
    """
    out: dict[str, int | None] = {}
    for profile in profiles:
        resource = resource_of(profile)
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


# --- Slurm -----------------------------------------------------------------------------------------

#: `sinfo` fields: node name, configured GRES, GRES in use, long state; `|`-separated, no width limit.
SINFO_ARGV = ("sinfo", "--noheader", "--Node", "--Format", "NodeHost:0|,Gres:0|,GresUsed:0|,StateLong:0|")
#: Node states in which new work can start (suffixes such as `*` "not responding" exclude a node).
_USABLE_STATES = ("idle", "mixed", "completing", "planned")
_GRES_ITEM = re.compile(r"^(?P<name>[^:()]+)(?::(?P<type>[^:()]+))?:(?P<count>\d+)")


def split_gres(text: str) -> list[str]:
    """Split a GRES list on commas outside parentheses (`gpu:h100:2(IDX:0,2)` stays one item).

    >>> split_gres("gpu:h100:2(IDX:0,2),gpu:h100_1g.10gb:1(IDX:4)")
    ['gpu:h100:2(IDX:0,2)', 'gpu:h100_1g.10gb:1(IDX:4)']
    """
    items, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return [i.strip() for i in items if i.strip()]


def parse_gres(text: str) -> dict[str, int]:
    """GPU count per GRES type; an untyped `gpu:N` counts as type `gpu`.

    >>> parse_gres("gpu:h100:4(S:0-1),gpu:h100_1g.10gb:2,shard:8")
    {'h100': 4, 'h100_1g.10gb': 2}
    >>> parse_gres("(null)")
    {}
    """
    out: dict[str, int] = {}
    for item in split_gres(text):
        m = _GRES_ITEM.match(item)
        if not m or m.group("name") != "gpu":
            continue
        kind = m.group("type") or "gpu"
        out[kind] = out.get(kind, 0) + int(m.group("count"))
    return out


def slurm_gpu_availability(text: str) -> dict[str, Flavour]:
    """Configured, used and free GPUs per GRES type from `sinfo` output (see SINFO_ARGV).

    Nodes listed once per partition are counted once. A node that cannot take
    new work (down, drained, allocated, not responding) contributes what it has
    as used, so it shows no free GPU.

    >>> line = "vm|gpu:h100:4,gpu:h100_1g.10gb:2|gpu:h100:1(IDX:0),gpu:h100_1g.10gb:0(IDX:N/A)|mixed|"
    >>> slurm_gpu_availability(line)["h100"].free
    3
    """
    total: dict[str, int] = {}
    used: dict[str, int] = {}
    seen: set[str] = set()
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 4 or not fields[0] or fields[0] in seen:
            continue
        seen.add(fields[0])
        configured, in_use, state = parse_gres(fields[1]), parse_gres(fields[2]), fields[3].lower()
        usable = state in _USABLE_STATES
        for kind, count in configured.items():
            total[kind] = total.get(kind, 0) + count
            used[kind] = used.get(kind, 0) + (min(in_use.get(kind, 0), count) if usable else count)
    return {k: Flavour(k, total[k], used.get(k, 0)) for k in sorted(total)}


class SlurmAvailability:
    """Runs `sinfo` (with SLURM_CONF when given) and caches the answer, or the failure, for `ttl` seconds.

    `flavours()` returns None when Slurm did not answer within `timeout` seconds
    or failed; the form then says "unknown" rather than waiting.
    """

    def __init__(
        self, conf: str = "", ttl: float = 30.0, timeout: float = 5.0, clock=time.monotonic,
        argv: Sequence[str] = SINFO_ARGV,
    ):
        self.conf = conf
        self.ttl = ttl
        self.timeout = timeout
        self.clock = clock
        self.argv = tuple(argv)
        self.calls = 0
        self.error = ""
        self._cached: tuple[float, dict[str, Flavour] | None] | None = None
        self._lock = asyncio.Lock()

    async def flavours(self) -> dict[str, Flavour] | None:
        async with self._lock:
            if self._cached and self.clock() - self._cached[0] < self.ttl:
                return self._cached[1]
            result = await self._read()
            self._cached = (self.clock(), result)
            return result

    async def _read(self) -> dict[str, Flavour] | None:
        self.calls += 1
        env = {**os.environ, "SLURM_CONF": self.conf} if self.conf else None
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            self.error = f"{self.argv[0]}: {exc.strerror or exc}"
            return None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            self.error = f"{self.argv[0]} did not answer within {self.timeout:g}s"
            return None
        if proc.returncode != 0:
            self.error = f"{self.argv[0]} failed ({proc.returncode}): {err.decode(errors='replace').strip()[:200]}"
            return None
        self.error = ""
        return slurm_gpu_availability(out.decode(errors="replace"))
