"""The Kubernetes API stops answering during a spawn (kmock emulator + fake kubelet).

The spawner reaches the session's emulator through a TCP forwarder of this
test's own; "stopping the API" closes the forwarder and cuts every connection
through it, so other tests (and the emulator's state) are untouched. The
person's spawn fails with a message (no hang: bounded by the spawner's
timeouts), nothing is left running once the hub stops the failed server, and a
spawn after the API is back works.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest
from kubernetes_asyncio.client import Configuration
from kubespawner import clients as kube_clients
from tornado import web

from scip_jupyter.i18n import use_locale
from scip_jupyter.spawners.kube import SCIPKubeSpawner
from tests.fixtures.common import free_port
from tests.fixtures.k8s import make_spawner, make_user

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio(loop_scope="session")]


class Forwarder:
    """127.0.0.1:port -> the emulator; `stop()` is the API going away, `start()` it coming back."""

    def __init__(self, target: str):
        url = urlparse(target)
        self.host, self.port_to = url.hostname, url.port
        self.port = free_port()
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.requests = 0
        self.pod_created = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe(self, reader, writer, upstream: bool):
        try:
            while data := await reader.read(65536):
                if upstream:
                    self.requests += 1
                    if data.startswith(b"POST ") and b"/pods " in data.split(b"\r\n", 1)[0]:
                        self.pod_created.set()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _client(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port_to)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False))

    async def start(self):
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port, reuse_address=True)

    async def stop(self):
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()


@pytest.fixture
async def api_through_forwarder(kube_api):
    forwarder = Forwarder(kube_api.url)
    await forwarder.start()
    saved_cache, saved_config = dict(kube_clients._client_cache), Configuration.get_default_copy()
    kube_clients._client_cache.clear()  # this test's spawners get clients for the forwarder
    try:
        yield forwarder
    finally:
        for client in kube_clients._client_cache.values():
            try:
                await client.api_client.close()
            except Exception:
                pass
        kube_clients._client_cache.clear()
        kube_clients._client_cache.update(saved_cache)
        Configuration.set_default(saved_config)
        if forwarder.server is not None and forwarder.server.is_serving():
            await forwarder.stop()


def _spawner(kube_api, forwarder, namespace):
    spawner = make_spawner(SCIPKubeSpawner, kube_api, make_user("sam", "students"), namespace,
                           {"profile": "cpu-small"}, k8s_api_host=forwarder.url)
    spawner.start_timeout = 10
    spawner.k8s_api_request_timeout = 3
    spawner.k8s_api_request_retry_timeout = 6
    return spawner


async def test_api_stopped_during_a_spawn_fails_clearly_and_recovers(kube_api, kube_namespace, api_through_forwarder):
    forwarder = api_through_forwarder
    spawner = _spawner(kube_api, forwarder, kube_namespace)
    start = asyncio.ensure_future(spawner.start())
    await asyncio.wait_for(forwarder.pod_created.wait(), 30)
    await forwarder.stop()  # the API goes away right after the pod was asked for
    with pytest.raises(Exception) as err:
        await asyncio.wait_for(start, 90)  # a bound on a hang, not a timing assertion
    message = getattr(err.value, "jupyterhub_message", None) or str(err.value)
    assert message  # what the hub shows the person: "Spawn failed: <message>"
    print("person sees:", type(err.value).__name__, message[:300])

    await forwarder.start()  # the API is back
    await asyncio.wait_for(spawner.stop(), 60)  # what the hub does after a failed start
    for _ in range(100):
        if not kube_api.emulator.live_pods(kube_namespace):
            break
        await asyncio.sleep(0.2)
    assert kube_api.emulator.live_pods(kube_namespace) == []  # nothing left running

    again = _spawner(kube_api, forwarder, kube_namespace)
    url = await asyncio.wait_for(again.start(), 60)
    assert url.endswith(":8888")
    await again.stop()
    # the person's words: what happened (the platform's cluster stopped answering), that nothing
    # is kept, what to do; never the client library's class name
    assert err.type is web.HTTPError and err.value.status_code == 503
    assert "Kubernetes" in message and "try again" in message and "released" in message
    assert "ServerDisconnected" not in message and "aiohttp" not in message
    assert getattr(err.value, "jupyterhub_message", None) == err.value.log_message
    with use_locale("fr"):
        assert "réessayer" in spawner._scip_api_lost(ConnectionError()).log_message
