"""A Kubernetes API for tests: kmock's in-memory emulator, shimmed, plus a fake kubelet.

kmock (PyPI) serves the real Kubernetes REST API from memory, with watch
streams. A few gaps matter to KubeSpawner and are shimmed HERE, in tests only:

* kubernetes_asyncio sends `?watch=True`; kmock only recognises `watch=true`.
* created objects get no `metadata.uid`, `resourceVersion`, `creationTimestamp`
  or `status`; KubeSpawner's reflector reads `resourceVersion` from every event.
* label and field selectors are ignored; equality-based ones are applied here.

`FakeKubelet` plays scheduler and node: it watches pods over HTTP and patches
each new pod to be bound to its node and Running with a loopback pod IP and
ready containers, which is all KubeSpawner's start waits for. Nothing listens
on that IP (unless `runner` is set: then it starts the pod's command, see
tests/fixtures/k8s_hub.py). `trouble(pod)` may instead return one of
UNSCHEDULABLE, IMAGE_PULL, CRASH: the kubelet then reports it as a real cluster
does (a Warning event and the pod's status), and the pod stays Pending.

Both are used by tests/fixtures/k8s.py and benchmarks/kube_spawn.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import attrs
import kmock
from kmock._internal import enums, rendering  # the emulator's own request model

KUBELET_AGENT = "scip-fake-kubelet"
UNSCHEDULABLE, IMAGE_PULL, CRASH = "unschedulable", "image-pull", "crash"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector_matches(selector: str | None, values: dict[str, Any]) -> bool:
    """Equality-based selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated."""
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if values.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if values.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in values:
                return False
        elif term not in values:
            return False
    return True


def _field_values(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    values = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}
    for key, value in (obj.get("involvedObject") or {}).items():
        values[f"involvedObject.{key}"] = value
    values["status.phase"] = (obj.get("status") or {}).get("phase")
    return values


def _matches(request: rendering.Request, obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return _selector_matches(request.params.get("labelSelector"), labels) and _selector_matches(
        request.params.get("fieldSelector"), _field_values(obj)
    )


@attrs.define(kw_only=True)
class ShimmedEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the gaps above filled in (test shim, not product code)."""

    _versions: Any = attrs.field(factory=lambda: itertools.count(1), init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources["v1/pods"] = kmock.ResourceInfo(namespaced=True, kind="Pod", subresources={"status"})
        self.resources["v1/events"] = kmock.ResourceInfo(namespaced=True, kind="Event")
        self.resources["v1/nodes"] = kmock.ResourceInfo(namespaced=False, kind="Node")

    async def _handle(self, request: rendering.Request):
        if request.method == enums.method.GET and request.params.get("watch") in ("True", "1"):
            original, request = request, attrs.evolve(request, action=enums.action.WATCH)
            # kmock routes by identity among its recorded requests: record the fixed one instead.
            self._requests[next(i for i, r in enumerate(self._requests) if r is original)] = request
        if request.action in (enums.action.CREATE, enums.action.UPDATE) and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta["resourceVersion"] = str(next(self._versions))
            if request.action == enums.action.CREATE:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                if request.namespace:
                    meta.setdefault("namespace", request.namespace)
                if request.resource == "v1/pods":
                    request.data.setdefault("status", {"phase": "Pending"})
        return await super()._handle(request)

    async def _serve_list(self, request: rendering.Request):
        payload = await super()._serve_list(request)
        payload["items"] = [o for o in payload["items"] if _matches(request, o)]
        payload["metadata"] = {"resourceVersion": "0"}
        return payload

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        async for event in super()._serve_watch(request):
            if not isinstance(event, dict) or _matches(request, event.get("object", {})):
                yield event

    def spawner_requests(self, since: int = 0) -> list[rendering.Request]:
        """Requests sent by kubernetes_asyncio (KubeSpawner), not by the fake kubelet or tests."""
        return [r for r in list(self)[since:] if r.headers.get("User-Agent", "").startswith("OpenAPI-Generator")]

    def live_pods(self, namespace: str) -> list[dict[str, Any]]:
        return [
            obj.raw
            for (resource, ns, _name), obj in self.objects.items()
            if resource == "v1/pods" and ns == namespace and not obj.deleted
        ]


class FakeKubelet:
    """Binds each new pod to `node_name` and marks it Running with a loopback pod IP
    (over the API, as the scheduler and a node would; kmock has no binding subresource)."""

    def __init__(self, url: str, node_name: str = "kmock-node"):
        self.url = url.rstrip("/")
        self.node_name = node_name
        self.started = 0
        #: pod -> None (run it) or UNSCHEDULABLE / IMAGE_PULL / CRASH (tests set it)
        self.trouble: Callable[[dict[str, Any]], str | None] = lambda pod: None
        #: what runs a pod's containers: async start(pod) and stop(pod) (tests set it; None: nothing runs)
        self.runner: Any = None
        self.troubles_reported: list[tuple[str, str]] = []
        self._task: asyncio.Task | None = None
        self._ips = itertools.count(1)

    async def __aenter__(self) -> "FakeKubelet":
        self._session = aiohttp.ClientSession(headers={"User-Agent": KUBELET_AGENT})
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready))
        await asyncio.wait_for(ready.wait(), 10)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._session.close()

    async def _run(self, ready: asyncio.Event) -> None:
        async with self._session.get(f"{self.url}/api/v1/pods", params={"watch": "true"}) as resp:
            resp.raise_for_status()
            ready.set()
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                pod = event.get("object", {})
                if event.get("type") == "ADDED" and (pod.get("status") or {}).get("phase") == "Pending":
                    await self._run_pod(pod)
                elif event.get("type") == "DELETED" and self.runner is not None:
                    await self.runner.stop(pod)

    async def _run_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        trouble = self.trouble(pod)
        if trouble:
            await self._report(pod, trouble)
            return
        n = next(self._ips)
        containers = [c["name"] for c in pod["spec"]["containers"]]
        patch = {
            "spec": {"nodeName": self.node_name},
            "status": {
                "phase": "Running",
                "podIP": f"127.0.{n // 250 + 1}.{n % 250 + 1}",
                "startTime": _now(),
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": c, "ready": True, "restartCount": 0, "image": "", "imageID": "",
                     "state": {"running": {"startedAt": _now()}}}
                    for c in containers
                ],
            }
        }
        url = f"{self.url}/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if self.runner is not None:
            await self.runner.start({**pod, "status": {**pod.get("status", {}), **patch["status"]}})
        await self._patch(url, patch)
        self.started += 1

    async def _patch(self, url: str, patch: dict[str, Any]) -> None:
        async with self._session.patch(
            url, data=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"}
        ) as resp:
            resp.raise_for_status()

    async def _report(self, pod: dict[str, Any], trouble: str) -> None:
        """What the scheduler or the kubelet says about a pod that cannot run."""
        meta = pod["metadata"]
        container = pod["spec"]["containers"][0]
        limits = (container.get("resources") or {}).get("limits") or {}
        gpu = next((k for k in limits if k.startswith("nvidia.com/")), "cpu")
        if trouble == UNSCHEDULABLE:
            message = f"0/8 nodes are available: 8 Insufficient {gpu}. preemption: 0/8 nodes are available: 8 No preemption victims found for incoming pod."
            reason, status = "FailedScheduling", {"conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}
        elif trouble == IMAGE_PULL:
            message = f'Failed to pull image "{container["image"]}": rpc error: code = NotFound desc = failed to pull and unpack image: not found'
            reason, status = "Failed", {"containerStatuses": [
                {"name": container["name"], "ready": False, "restartCount": 0, "image": container["image"], "imageID": "",
                 "state": {"waiting": {"reason": "ErrImagePull", "message": message}}}]}
        else:
            message = "Back-off restarting failed container notebook in pod"
            reason, status = "BackOff", {"containerStatuses": [
                {"name": container["name"], "ready": False, "restartCount": 5, "image": container["image"], "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": message}}}]}
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:8]}", "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid", "")},
            "reason": reason, "message": message, "type": "Warning", "count": 1,
            "firstTimestamp": _now(), "lastTimestamp": _now(), "source": {"component": "default-scheduler"},
        }
        async with self._session.post(f"{self.url}/api/v1/namespaces/{meta['namespace']}/events", json=event) as resp:
            resp.raise_for_status()
        await self._patch(f"{self.url}/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", {"status": status})
        self.troubles_reported.append((meta["name"], trouble))


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig pointing at the emulator (KubeSpawner loads config through KUBECONFIG)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "test", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test", "namespace": "default"}}],
        "current-context": "kmock",
    }
    path.write_text(json.dumps(config))
    return path


@contextlib.asynccontextmanager
async def kube_api() -> AsyncIterator[tuple[ShimmedEmulator, FakeKubelet, str]]:
    """Start the emulator on 127.0.0.1 and a fake kubelet; yields (emulator, kubelet, url)."""
    async with ShimmedEmulator() as emulator, kmock.Server(emulator, host="127.0.0.1") as server:
        url = str(server.url).rstrip("/")
        async with FakeKubelet(url) as kubelet:
            yield emulator, kubelet, url
